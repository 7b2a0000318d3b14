"""One Prefect task run per DVC stage. DVC decides whether the stage is stale (no second
caching layer here); the task streams the stage's output into its log, shows training
progress as a progress artifact, and publishes the stage's metrics when it has some."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

STEP_LINE = re.compile(r"step (\d+)/(\d+)")
TOKENS_PER_S = re.compile(r"\| ([0-9.]+) tok/s")
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
    progress = None
    skipped = False
    with subprocess.Popen(command, cwd=repo_dir, env=stage_environment(ray_address), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            line = line.rstrip()
            if not line:
                continue
            logger.info(line)
            skipped = skipped or bool(SKIPPED.search(line))
            progress = _track_progress(line, stage, progress)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"DVC stage {stage} failed (exit {code}); its output is in this task's log")
    if not skipped:
        _publish_metrics(stage, Path(repo_dir) / output_dir)
    return "up to date" if skipped else "ran"


def _track_progress(line: str, stage: str, progress):
    """A progress bar per training stage on the run's page: steps done, tokens/s and the time
    left at the rate the stage's own log reports. `progress`: (artifact id, start time, first step)."""
    match = STEP_LINE.search(line)
    if not match:
        return progress
    step, total = int(match.group(1)), max(1, int(match.group(2)))
    rate = TOKENS_PER_S.search(line)
    if progress is None:
        progress = (create_progress_artifact(100.0 * step / total, key=f"{_artifact_key(stage)}-progress",
                                             description=f"{stage}: optimizer steps done"), time.monotonic(), step)
    artifact, started, first = progress
    elapsed = time.monotonic() - started
    left = (total - step) * elapsed / (step - first) if step > first and elapsed > 0 else None
    description = f"{stage}: step {step}/{total}" + (f", {float(rate.group(1)):,.0f} tokens/s" if rate else "") + (
        f", about {_duration(left)} left" if left is not None else "")
    update_progress_artifact(artifact, 100.0 * step / total, description=description)
    return progress


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s"


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
    elif stage == "report" and (outputs / "report" / "index.html").exists():
        _publish_figures(outputs / "report")
    elif stage == "bench" and (outputs / "bench" / "results.json").exists():
        results = json.loads((outputs / "bench" / "results.json").read_text())["models"]
        rows = [f"| {name} | {s} | {r['tokens_per_second']:.0f} |" for name, entry in results.items()
                for s, r in entry["scenarios"].items()]
        create_markdown_artifact("| model | scenario | tokens/s |\n|---|---|---|\n" + "\n".join(rows) + "\n",
                                 key="bench-throughput", description="inference throughput")
    elif stage == "publish" and (outputs / "publish" / "receipt.json").exists():
        receipt = json.loads((outputs / "publish" / "receipt.json").read_text())
        done = receipt.get("uploaded", {}).get("commit_url") or "dry run: nothing uploaded"
        rows = [f"| {f['path']} | {f['size']:,} | `{f['sha256'][:16]}…` |" for f in receipt["files"]]
        create_markdown_artifact(f"{receipt['repo_id']} ({receipt['revision']}): {done}\n\n| file | bytes | sha256 |\n"
                                 "|---|---|---|\n" + "\n".join(rows) + "\n", key="publish",
                                 description="what the publish stage uploaded (or would)")



def _publish_figures(folder: Path) -> None:
    """The report's figures on the flow run's page: one image artifact each (the PNG inline
    as a data: URI, so the UI shows it without a file server), and where the page lies."""
    import base64

    from prefect.artifacts import create_image_artifact

    from mmbert.report import FIGURES

    for name, title in FIGURES.items():
        png = folder / f"{name}.png"
        if png.is_file():
            uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
            create_image_artifact(uri, key=_artifact_key(name.replace("_", "-")), description=title)
    create_markdown_artifact(f"The run's report page (figures and result tables): `{folder / 'index.html'}`",
                             key="report-page", description="the self-contained report page")
