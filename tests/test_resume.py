"""A training stage whose driver dies continues where it stopped, and never from a stale
checkpoint: the resume rules in-process, then a real kill through DVC and Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import copy_repo, micro_config
from mmbert.train.loop import PhasePaths
from mmbert.train.resume import ResumableRun
from mmbert.train.state import write_manifest


def _fake_checkpoint(folder: Path, step: int) -> None:
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "model.safetensors").write_bytes(b"w" * step)
    (folder / "state").mkdir()
    (folder / "state" / "progress.json").write_text(json.dumps({"step": step}))
    write_manifest(folder)


@pytest.fixture()
def phase_inputs(tmp_path):
    mix, tok = tmp_path / "mix", tmp_path / "tok"
    mix.mkdir()
    tok.mkdir()
    (mix / "manifest.json").write_text('{"rows": 1}')
    (tok / "tokenizer.json").write_text("{}")
    return micro_config(tmp_path / "out"), PhasePaths(mix=str(mix), tokenizer=str(tok), init_model=None)


def _interrupted_run(cfg, paths, steps=(25, 50)) -> ResumableRun:
    run = ResumableRun.for_phase(cfg, "pretrain", paths)
    assert run.prepare() is None  # a first run starts from scratch
    for i, step in enumerate(steps):
        _fake_checkpoint(run.run_dir / f"checkpoint_{i}", step)
    return run


def test_same_inputs_resume_from_the_newest_complete_checkpoint(phase_inputs):
    cfg, paths = phase_inputs
    run = _interrupted_run(cfg, paths)
    (run.run_dir / "checkpoint_1" / "model" / "model.safetensors").write_bytes(b"cut")  # copy cut short
    again = ResumableRun.for_phase(cfg, "pretrain", paths)
    resume_from = again.prepare()
    assert resume_from == again.resume_dir and again.resumed_step == 25
    assert json.loads((resume_from / "state" / "progress.json").read_text())["step"] == 25
    assert not again.run_dir.exists()  # Ray's new run starts in a clean folder


@pytest.mark.parametrize("change", ["params", "input", "code"])
def test_changed_inputs_never_resume(phase_inputs, change, monkeypatch):
    cfg, paths = phase_inputs
    run = _interrupted_run(cfg, paths)
    if change == "params":
        phase = cfg.phases["pretrain"].model_copy(update={"mask_rate": 0.2})
        cfg = cfg.model_copy(update={"phases": {**cfg.phases, "pretrain": phase}})
    elif change == "input":
        (Path(paths.mix) / "manifest.json").write_text('{"rows": 2}')
    else:
        import mmbert.stages

        monkeypatch.setattr(mmbert.stages, "STAGE_DATA", {"train": ["mmbert/presets/micro.yaml"]})
    again = ResumableRun.for_phase(cfg, "pretrain", paths)
    assert again.fingerprint != run.fingerprint
    assert again.prepare() is None and again.resumed_step is None
    assert not again.resume_dir.exists() and not again.run_dir.exists()


def test_runtime_settings_do_not_change_the_fingerprint(phase_inputs):
    cfg, paths = phase_inputs
    other = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"log_every": 7, "checkpoint_every": 3,
                                                                               "torch_threads": 2})})
    assert ResumableRun.for_phase(cfg, "pretrain", paths).fingerprint == \
        ResumableRun.for_phase(other, "pretrain", paths).fingerprint


# --- the real thing: SIGKILL the stage's driver after a checkpoint, re-run through DVC --------


def _dvc(repo: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", "repro", *args], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _newest_checkpoint(repo: Path) -> int | None:
    """The step of the newest complete checkpoint the stage left, if any."""
    from mmbert.train.state import checkpoint_step

    steps = [checkpoint_step(p) for p in (repo / "outputs" / ".checkpoints" / "pretrain").glob("checkpoint_*")]
    return max((s for s in steps if s is not None), default=None)


def _wait_for_checkpoint(repo: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the stage ended before it wrote a checkpoint"
        if _newest_checkpoint(repo) is not None:
            return
        time.sleep(0.5)
    raise TimeoutError("no checkpoint was written")


def _kill_driver(dvc_proc: subprocess.Popen) -> None:
    # DVC may start the command through `sh -c` (which may or may not exec), so match the
    # python process itself: its argv holds "mmbert.train" as its own word, the shell's does not
    drivers = [p for p in psutil.Process(dvc_proc.pid).children(recursive=True)
               if "mmbert.train" in p.cmdline()]
    assert len(drivers) == 1, drivers
    drivers[0].send_signal(signal.SIGKILL)
    dvc_proc.wait(timeout=120)
    assert dvc_proc.returncode != 0


@pytest.mark.slow
def test_killed_driver_resumes_to_the_straight_run(tmp_path):
    from tasks.ray_head import local_ray_cluster

    killed = copy_repo(tmp_path / "killed", "micro")
    env = dict(os.environ, MMBERT_RAY_TMP=f"/tmp/mmbert-ray-resume-{os.getpid()}")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with local_ray_cluster() as head:
        env.update({"RAY_ADDRESS": head.address, **head.auth})
        _dvc(killed, env, "mix@pretrain")
        # the straight run's repo: the same inputs, as DVC recorded them (its cache and lock included)
        straight = Path(shutil.copytree(killed, tmp_path / "straight", symlinks=True))
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", "train@pretrain"], cwd=killed,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_checkpoint(killed, proc, timeout=300)
        _kill_driver(proc)
        # more checkpoints may have been written between the first one and the kill: the
        # re-run must continue from the newest complete one
        at = _newest_checkpoint(killed)
        time.sleep(3)  # Ray ends the dead driver's job and workers
        resumed = _dvc(killed, env, "--single-item", "train@pretrain")
        _dvc(straight, env, "--single-item", "train@pretrain")
    metrics = json.loads((killed / "outputs" / "train" / "pretrain" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == at, resumed.stdout[-2000:]
    assert f"continuing from step {at}" in resumed.stdout + resumed.stderr
    out = Path("outputs") / "train" / "pretrain"
    for name in ("model/model.safetensors", "loss.tsv"):
        assert (killed / out / name).read_bytes() == (straight / out / name).read_bytes(), name
    assert not (killed / "outputs" / ".checkpoints" / "pretrain").exists()  # cleaned once the output is written
