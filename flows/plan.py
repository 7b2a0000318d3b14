"""The order the flow runs DVC stages in: waves of stages whose inputs are all built, so
that independent stages (the mixes, the decay variants, eval and bench) run at once."""

from __future__ import annotations

from pathlib import Path

import yaml

from mmbert.config import ConfigError, PipelineConfig


def dvc_phase_chain(repo_dir: Path) -> dict[str, str | None]:
    """{phase: base phase} as declared by dvc.yaml's train stages."""
    stages = yaml.safe_load((repo_dir / "dvc.yaml").read_text())["stages"]
    chain = {}
    for phase, item in stages["train"]["foreach"].items():
        parts = Path(item["init"]).parts
        chain[phase] = parts[-2] if parts[-1] == "model" else None
    return chain


def check_dvc_matches(cfg: PipelineConfig, repo_dir: Path) -> None:
    declared = dvc_phase_chain(repo_dir)
    configured = {name: phase.init_from for name, phase in cfg.phases.items()}
    if declared != configured:
        raise ConfigError(
            f"dvc.yaml's train stages {declared} do not match params.yaml's phases.*.init_from {configured}; "
            "edit both together"
        )


def stage_waves(cfg: PipelineConfig) -> list[list[str]]:
    waves = [["corpus"], ["tokenizer"], [f"mix@{name}" for name in cfg.phases]]
    done: set[str | None] = {None}
    pending = list(cfg.phases)
    while pending:
        ready = [name for name in pending if cfg.phases[name].init_from in done]
        waves.append([f"train@{name}" for name in ready])
        done.update(ready)
        pending = [name for name in pending if name not in ready]
    # bench last and alone: throughput measured beside another stage would measure the contention
    waves += [["merge"], ["eval"], ["bench"]]
    return waves
