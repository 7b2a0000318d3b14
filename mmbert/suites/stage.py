"""Running a suite: as a pipeline stage (`python -m mmbert.suites.<suite>`, models named in
params.yaml, output in <output_dir>/suites/<suite>) or on any checkpoint
(`python -m mmbert.evaluate --model PATH_OR_ID --suite <suite>`).

Either way the trials run on a Ray cluster (the configured one, $RAY_ADDRESS, else a closed
local one), one GPU per trial where the cluster has GPUs. Outputs are written atomically:
metrics.json (scores per model and task, per language, the cost estimate), trials.json
(every trial), report.md (beside the paper's numbers) and the params the stage ran with.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

from mmbert.checkpoints import checkpoint_dir
from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig
from mmbert.io import atomic_dir, write_json
from mmbert.stages import write_record
from mmbert.suites.hub import DatasetUnavailable
from mmbert.suites.report import render

log = logging.getLogger("mmbert.suites")
# A suite's run: (models, config, work folder, connect) -> outcome. `connect` joins the Ray
# cluster and returns the trials' resource options (None: run here); a suite calls it once its
# datasets are checked, so a missing one fails before a cluster starts.
Connect = Callable[[], "dict | None"]
SuiteRun = Callable[[dict[str, str], PipelineConfig, Path, Connect], dict]


def remote_options(cfg: PipelineConfig) -> dict:
    """Join the cluster; a trial takes a GPU where there is one (and the suite may use it)."""
    from mmbert.train.cluster import connect

    connect(cfg.runtime)
    import ray

    if cfg.suites.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": cfg.runtime.cpus_per_trial}


def shutdown_ray() -> None:
    import sys

    ray = sys.modules.get("ray")  # imported only once connected: Ray reads its auth settings at import
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def run_and_write(suite: str, run: SuiteRun, models: dict[str, str], cfg: PipelineConfig, target: Path,
                  record_stage: str | None) -> dict:
    try:
        with atomic_dir(target) as tmp:
            outcome = run(models, cfg, tmp / ".trials", lambda: remote_options(cfg))
            metrics = {"suite": suite, "enabled": True, "compare_with": cfg.suites.compare_with,
                       "models": outcome["summary"], "estimate": outcome["estimate"], "protocol": outcome["protocol"]}
            write_json(tmp / "metrics.json", metrics)
            write_json(tmp / "trials.json", outcome["trials"])
            report = render(suite, outcome["summary"], cfg.suites.compare_with, outcome["columns"],
                            {"trials": outcome["estimate"]["trials"],
                             "estimated device-hours (upper bound)": f"{outcome['estimate']['device_hours']:.3f}"})
            (tmp / "report.md").write_text(report, encoding="utf-8")
            if record_stage:
                write_record(tmp, cfg, record_stage)
    except DatasetUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    finally:
        shutdown_ray()
    log.info("%s: results in %s\n%s", suite, target, report)
    return metrics


def write_disabled(suite: str, cfg: PipelineConfig, target: Path) -> None:
    with atomic_dir(target) as tmp:
        write_json(tmp / "metrics.json", {"suite": suite, "enabled": False})
        (tmp / "report.md").write_text(f"# {suite}\n\nNot run: suites.{suite}.enabled is false.\n", encoding="utf-8")
        write_record(tmp, cfg, f"eval-{suite}")
    log.info("%s: suites.%s.enabled is false; recorded that in %s", suite, suite, target)


def stage_main(suite: str, run: SuiteRun) -> None:
    """The DVC stage eval-<suite>."""

    def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
        section = getattr(cfg.suites, suite)
        target = output_dir(cfg, "suites", suite)
        if not section.enabled:
            write_disabled(suite, cfg, target)
            return
        models = {name: str(checkpoint_dir(cfg, name, f"suites.{suite}.models")) for name in section.models}
        run_and_write(suite, run, models, cfg, target, f"eval-{suite}")

    run_stage(main, stage_parser(f"Stage eval-{suite}: the paper's {suite} evaluation of the pipeline's models."))
