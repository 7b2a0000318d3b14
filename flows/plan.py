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
    waves += [["merge"], evaluation_stages(cfg, None), ["bench"]]
    return waves


EVAL_SUITES = ("embedded", "glue", "xtreme", "lowres_qa", "mteb")


def evaluation_stages(cfg: PipelineConfig, suites: list[str] | None) -> list[str]:
    """The evaluation stages to run: all of them (None), or exactly the suites named. A suite
    that params.yaml does not enable runs in a moment: its stage records that it is off, so
    DVC finds every stage done after a flow run."""
    if suites is None:
        suites = list(EVAL_SUITES)
    unknown = [s for s in suites if s not in EVAL_SUITES]
    if unknown:
        raise ConfigError(f"suites {unknown}: unknown; expected some of {list(EVAL_SUITES)}")
    return ["eval" if s == "embedded" else f"eval-{s}" for s in suites]
