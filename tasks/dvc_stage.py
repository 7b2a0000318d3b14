"""One Prefect task run per DVC stage. DVC decides whether the stage is stale (no second
caching layer here); the task streams the stage's output into its log, shows training
progress as a progress artifact, and publishes the stage's metrics when it has some."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

STEP_LINE = re.compile(r"step (\d+)/(\d+)")
SKIPPED = re.compile(r"Stage '.*' didn't change, skipping")


def stage_environment(ray_address: str | None) -> dict[str, str]:
    """The stage sees this interpreter's environment first on PATH (DVC runs `python`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    return env


def _artifact_key(stage: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", stage.lower())


@task(name="dvc-stage", task_run_name="{stage}")
def run_dvc_stage(stage: str, repo_dir: str, output_dir: str = "outputs", ray_address: str | None = None,
                  force: bool = False) -> str:
    """`dvc repro --single-item STAGE`; returns 'ran' or 'up to date'."""
    logger = get_run_logger()
    # stages of a wave run at once; each waits for the others' hold on DVC's repository lock
    # (held while dvc.lock is written) instead of failing at once
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", stage] + (
        ["--force"] if force else [])
    logger.info("$ %s", " ".join(command[2:]))
    progress_id = None
    skipped = False
    with subprocess.Popen(command, cwd=repo_dir, env=stage_environment(ray_address), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            logger.info(line)
            skipped = skipped or bool(SKIPPED.search(line))
            progress_id = _track_progress(line, stage, progress_id)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"DVC stage {stage} failed (exit {code}); its output is in this task's log")
    if not skipped:
        _publish_metrics(stage, Path(repo_dir) / output_dir)
    return "up to date" if skipped else "ran"


def _track_progress(line: str, stage: str, progress_id):
    match = STEP_LINE.search(line)
    if not match:
        return progress_id
    percent = 100.0 * int(match.group(1)) / max(1, int(match.group(2)))
    if progress_id is None:
        return create_progress_artifact(percent, key=f"{_artifact_key(stage)}-progress",
                                        description=f"{stage}: optimizer steps done")
    update_progress_artifact(progress_id, percent)
    return progress_id


def _publish_metrics(stage: str, outputs: Path) -> None:
    """Markdown artifacts for the Prefect UI: the eval reports, a phase's training summary."""
    if stage == "eval" and (outputs / "eval" / "report.md").exists():
        create_markdown_artifact((outputs / "eval" / "report.md").read_text(), key="eval-report",
                                 description="held-out loss, language ID, bitext retrieval")
    elif stage.startswith("eval-") and (outputs / "suites" / stage.removeprefix("eval-") / "report.md").exists():
        report = outputs / "suites" / stage.removeprefix("eval-") / "report.md"
        create_markdown_artifact(report.read_text(), key=f"{_artifact_key(stage)}-report",
                                 description=f"{stage}: our scores beside the paper's, with the gap per task")
    elif stage.startswith("train@"):
        metrics_file = outputs / "train" / stage.split("@", 1)[1] / "metrics.json"
        if metrics_file.exists():
            m = json.loads(metrics_file.read_text())
            table = "\n".join(f"| {k} | {m[k]} |" for k in ("steps", "tokens", "final_train_loss",
                                                            "heldout_loss", "tokens_per_second", "wall_seconds"))
            create_markdown_artifact(f"| metric | value |\n|---|---|\n{table}\n", key=f"{_artifact_key(stage)}-metrics",
                                     description=f"{stage} summary")
    elif stage == "bench" and (outputs / "bench" / "results.json").exists():
        results = json.loads((outputs / "bench" / "results.json").read_text())["models"]
        rows = [f"| {name} | {s} | {r['tokens_per_second']:.0f} |" for name, entry in results.items()
                for s, r in entry["scenarios"].items()]
        create_markdown_artifact("| model | scenario | tokens/s |\n|---|---|---|\n" + "\n".join(rows) + "\n",
                                 key="bench-throughput", description="inference throughput")

