"""Continuing a training stage whose driver died.

Ray recovers a failed *worker* from the run's last checkpoint by itself. When the *driver*
dies, the stage is simply run again (by DVC, Prefect's retry or by hand); this module then
finds the newest complete checkpoint the killed run left in its storage and hands it to the
new run, but only if the stage's fingerprint (params values, code, input files: see
mmbert.stages.fingerprint) equals the one the killed run recorded. Anything else starts the
phase from step 0: a stale checkpoint is never resumed.

Layout under `<output_dir>/.checkpoints/`, or under `runtime.storage` on an object store
(mmbert.storage): `<phase>/` (Ray's storage of the current run), `<phase>.resume/` (the
checkpoint being resumed from), `<phase>.fingerprint`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from mmbert.cli import output_dir
from mmbert.config import PipelineConfig
from mmbert.stages import fingerprint
from mmbert.storage import Store, open_store
from mmbert.train.loop import PhasePaths

log = logging.getLogger("mmbert.train")
def input_files(paths: PhasePaths) -> list[Path]:
    """The files whose content decides a phase's result: its mix and where it starts from."""
    mix = Path(paths.mix)
    start = Path(paths.init_model or paths.tokenizer)
    return [mix / "manifest.json"] + sorted(p for p in start.iterdir() if p.is_file())


@dataclass
class ResumableRun:
    store: Store
    name: str
    fingerprint: str
    resumed_step: int | None = field(default=None)

    @classmethod
    def for_phase(cls, cfg: PipelineConfig, phase: str, paths: PhasePaths) -> ResumableRun:
        return cls(state_store(cfg), phase, fingerprint(cfg, f"train@{phase}", input_files(paths)))

    @property
    def run_dir(self) -> str:
        return self.store.path(self.name)

    @property
    def resume_dir(self) -> str:
        return self.store.path(f"{self.name}.resume")

    @property
    def fingerprint_file(self) -> str:
        return self.store.path(f"{self.name}.fingerprint")

    def _newest_checkpoint(self) -> tuple[int, str] | None:
        found = [(self.store.checkpoint_step(p), p) for p in self.store.dirs(self.run_dir, "checkpoint_")]
        if self.store.exists(self.resume_dir):
            found.append((self.store.checkpoint_step(self.resume_dir), self.resume_dir))
        complete = [(step, path) for step, path in found if step is not None]
        return max(complete, key=lambda item: item[0]) if complete else None

    def prepare(self) -> str | None:
        """Clear the storage for a new Ray run; return the checkpoint to resume from, if any."""
        recorded = (self.store.read_text(self.fingerprint_file) or "").strip() or None
        newest = self._newest_checkpoint() if recorded == self.fingerprint else None
        if newest and newest[1] != self.resume_dir:
            # A move, not a copy, on a disk: the run folder is cleared next, and at scale a
            # checkpoint is GBs (an object store has no rename: there it is copied once).
            self.store.move_dir(newest[1], self.resume_dir)
        if newest:
            self.resumed_step = newest[0]
            log.info("train@%s: continuing from step %d, the last checkpoint of an interrupted run with the same "
                     "inputs, params and code (%s)", self.name, newest[0], self.store.uri)
        else:
            if recorded is not None and recorded != self.fingerprint:
                log.info("train@%s: inputs, params or code changed since the interrupted run; starting afresh",
                         self.name)
            self.store.delete(self.resume_dir)
        self.store.delete(self.run_dir)
        self.store.write_text(self.fingerprint_file, self.fingerprint + "\n")
        return self.resume_dir if newest else None

    def finish(self) -> None:
        """The stage's output is written: its checkpoints are no longer needed."""
        for path in (self.run_dir, self.resume_dir, self.fingerprint_file):
            self.store.delete(path)


def state_store(cfg: PipelineConfig) -> Store:
    """runtime.storage, or <output_dir>/.checkpoints on this machine."""
    return open_store(cfg.runtime.storage or str(output_dir(cfg, ".checkpoints")))
