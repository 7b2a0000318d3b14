"""The order the flow runs DVC stages in: waves of stages whose inputs are all built, so
that independent stages (the mixes, the decay variants, eval and bench) run at once."""

from __future__ import annotations

from pathlib import Path

from mmbert.config import ConfigError, PipelineConfig


def check_dvc_matches(cfg: PipelineConfig, repo_dir: Path) -> None:
    """dvc.yaml must be the one params.yaml implies (its chain, fetch stages, deps)."""
    from mmbert.dvc_yaml import render

    path = repo_dir / "dvc.yaml"
    if not path.is_file() or path.read_text(encoding="utf-8") != render(cfg):
        raise ConfigError(f"{path} is not the pipeline params.yaml describes (phases.*.init_from, checkpoints, "
                          "merge and eval models): run `python -m mmbert.dvc_yaml` to regenerate it")


def stage_waves(cfg: PipelineConfig) -> list[list[str]]:
    waves = [["corpus"], ["tokenizer"], [f"fetch@{name}" for name in cfg.checkpoints] + [f"mix@{name}" for name in cfg.phases]]
    done: set[str | None] = {None, *cfg.checkpoints}
    pending = list(cfg.phases)
    while pending:
        ready = [name for name in pending if cfg.phases[name].init_from in done]
        waves.append([f"train@{name}" for name in ready])
        done.update(ready)
        pending = [name for name in pending if name not in ready]
    # bench last and alone: throughput measured beside another stage would measure the contention
    waves += [["merge"], evaluation_stages(cfg, None), ["bench"], ["report"]]
    if cfg.publish.enabled:  # last: a checkpoint goes out once everything about it has been measured
        waves.append(["publish"])
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
