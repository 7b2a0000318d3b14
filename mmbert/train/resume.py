"""Continuing a training stage whose driver died.

Ray recovers a failed *worker* from the run's last checkpoint by itself. When the *driver*
dies, the stage is simply run again (by DVC, Prefect's retry or by hand); this module then
finds the newest complete checkpoint the killed run left in its storage and hands it to the
new run, but only if the stage's fingerprint (params values, code, input files: see
mmbert.stages.fingerprint) equals the one the killed run recorded. Anything else starts the
phase from step 0: a stale checkpoint is never resumed.

Layout under `<output_dir>/.checkpoints/`: `<phase>/` (Ray's storage of the current run),
`<phase>.resume/` (the checkpoint being resumed from), `<phase>.fingerprint`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mmbert.cli import output_dir
from mmbert.config import PipelineConfig
from mmbert.stages import fingerprint
from mmbert.train.loop import PhasePaths
from mmbert.train.state import checkpoint_step

log = logging.getLogger("mmbert.train")
def input_files(paths: PhasePaths) -> list[Path]:
    """The files whose content decides a phase's result: its mix and where it starts from."""
    mix = Path(paths.mix)
    start = Path(paths.init_model or paths.tokenizer)
    return [mix / "manifest.json"] + sorted(p for p in start.iterdir() if p.is_file())


@dataclass
class ResumableRun:
    storage: Path
    name: str
    fingerprint: str
    resumed_step: int | None = field(default=None)

    @classmethod
    def for_phase(cls, cfg: PipelineConfig, phase: str, paths: PhasePaths) -> ResumableRun:
        storage = output_dir(cfg, ".checkpoints").resolve()
        return cls(storage, phase, fingerprint(cfg, f"train@{phase}", input_files(paths)))

    @property
    def run_dir(self) -> Path:
        return self.storage / self.name

    @property
    def resume_dir(self) -> Path:
        return self.storage / f"{self.name}.resume"

    @property
    def fingerprint_file(self) -> Path:
        return self.storage / f"{self.name}.fingerprint"

    def _newest_checkpoint(self) -> tuple[int, Path] | None:
        found = [(checkpoint_step(p), p) for p in self.run_dir.glob("checkpoint_*") if p.is_dir()]
        if self.resume_dir.is_dir():
            found.append((checkpoint_step(self.resume_dir), self.resume_dir))
        complete = [(step, path) for step, path in found if step is not None]
        return max(complete, key=lambda item: item[0]) if complete else None

    def prepare(self) -> Path | None:
        """Clear the storage for a new Ray run; return the checkpoint to resume from, if any."""
        self.storage.mkdir(parents=True, exist_ok=True)
        recorded = self.fingerprint_file.read_text().strip() if self.fingerprint_file.exists() else None
        newest = self._newest_checkpoint() if recorded == self.fingerprint else None
        if newest and newest[1] != self.resume_dir:
            # A move, not a copy: the run folder is cleared next, and at scale a checkpoint is GBs.
            shutil.rmtree(self.resume_dir, ignore_errors=True)
            newest[1].rename(self.resume_dir)
        if newest:
            self.resumed_step = newest[0]
            log.info("train@%s: continuing from step %d, the last checkpoint of an interrupted run with the same "
                     "inputs, params and code", self.name, newest[0])
        else:
            if recorded is not None and recorded != self.fingerprint:
                log.info("train@%s: inputs, params or code changed since the interrupted run; starting afresh",
                         self.name)
            shutil.rmtree(self.resume_dir, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.fingerprint_file.write_text(self.fingerprint + "\n")
        return self.resume_dir if newest else None

    def finish(self) -> None:
        """The stage's output is written: its checkpoints are no longer needed."""
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.resume_dir, ignore_errors=True)
        self.fingerprint_file.unlink(missing_ok=True)
