"""Small pipelines built in-process for tests: the micro preset's corpus, tokenizer and a
phase mix, written under a temporary folder by the same functions the stages use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


from mmbert.config import PipelineConfig, parse_config
from mmbert.preset import preset_values

REPO = Path(__file__).resolve().parents[1]


def micro_config(output_dir: Path, **overrides) -> PipelineConfig:
    raw = preset_values("micro")
    raw["output_dir"] = str(output_dir)
    raw.update(overrides)
    return parse_config(raw)


def phase_paths(out: Path, phase: str, init: Path | None = None):
    """A phase's inputs under `out`, starting from the checkpoint `init` (or from scratch)."""
    from mmbert.train.loop import PhasePaths

    return PhasePaths(mix=str(out / "mix" / phase), tokenizer=str(init or out / "tokenizer"),
                      init_model=str(init) if init else None)


def build_inputs(cfg: PipelineConfig, phases: list[str]) -> None:
    """corpus → tokenizer → mix@phase, as the stages write them."""
    import argparse

    from mmbert import mix, tokenizer
    from mmbert.corpus import __main__ as corpus

    corpus.main(cfg, argparse.Namespace())
    tokenizer.main(cfg, argparse.Namespace())
    for phase in phases:
        mix.main(cfg, argparse.Namespace(phase=phase))


def copy_repo(dest: Path, preset: str | None = None) -> Path:
    """The working tree as git sees it (tracked and not ignored) in a fresh git+DVC repo at
    `dest`, with no dvc.lock, and `preset` written into its params.yaml."""
    from mmbert.preset import apply_preset

    dest.mkdir(parents=True, exist_ok=True)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    if preset:
        apply_preset(dest / "params.yaml", preset)
    (dest / "dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def dvc_repro(repo: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`dvc repro ARGS` in `repo`, which must succeed."""
    import sys

    result = subprocess.run([sys.executable, "-m", "dvc", "repro", *args], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def kill_stage_driver(dvc_proc: subprocess.Popen, module: str = "mmbert.train") -> None:
    """SIGKILL the stage's python process under a `dvc repro` (DVC may start the command
    through `sh -c`, which may or may not exec: match the process whose argv holds `module`)."""
    import signal

    import psutil

    drivers = [p for p in psutil.Process(dvc_proc.pid).children(recursive=True) if module in p.cmdline()]
    assert len(drivers) == 1, drivers
    drivers[0].send_signal(signal.SIGKILL)
    dvc_proc.wait(timeout=120)
    assert dvc_proc.returncode != 0


def stage_env(**extra: str) -> dict:
    """This environment with the test interpreter's bin first on PATH (DVC runs `python`)."""
    import os
    import sys

    env = dict(os.environ, **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env
