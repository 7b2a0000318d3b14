"""A training stage whose driver dies continues where it stopped, and never from a stale
checkpoint: the resume rules in-process (the real kill through DVC and Ray: test_resilience.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import micro_config
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
        _fake_checkpoint(Path(run.run_dir) / f"checkpoint_{i}", step)
    return run


def test_same_inputs_resume_from_the_newest_complete_checkpoint(phase_inputs):
    cfg, paths = phase_inputs
    run = _interrupted_run(cfg, paths)
    (Path(run.run_dir) / "checkpoint_1" / "model" / "model.safetensors").write_bytes(b"cut")  # copy cut short
    again = ResumableRun.for_phase(cfg, "pretrain", paths)
    resume_from = again.prepare()
    assert resume_from == again.resume_dir and again.resumed_step == 25
    assert json.loads((Path(resume_from) / "state" / "progress.json").read_text())["step"] == 25
    assert not Path(again.run_dir).exists()  # Ray's new run starts in a clean folder


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
    assert not Path(again.resume_dir).exists() and not Path(again.run_dir).exists()


def test_runtime_settings_do_not_change_the_fingerprint(phase_inputs):
    cfg, paths = phase_inputs
    other = cfg.model_copy(update={"runtime": cfg.runtime.model_copy(update={"log_every": 7, "checkpoint_every": 3,
                                                                               "torch_threads": 2})})
    assert ResumableRun.for_phase(cfg, "pretrain", paths).fingerprint == \
        ResumableRun.for_phase(other, "pretrain", paths).fingerprint


# The real thing (SIGKILL of a stage's driver through DVC and Ray, the re-run equal to a straight
# run) is tests/test_resilience.py's, beside the object-store and two-node cases it shares a run with.
