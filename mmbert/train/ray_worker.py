"""The Ray Train side of a phase: one function per worker, checkpoints reported to Ray so
that a failed worker group restarts from the last one instead of from scratch."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mmbert.cli import setup_logging
from mmbert.storage import local_copy, open_store, remove_local_copy
from mmbert.train.live import LiveLog
from mmbert.train.loop import PhasePaths, PhaseTrainer

log = logging.getLogger("mmbert.train")


def _metrics(trainer: PhaseTrainer) -> dict[str, Any]:
    last = trainer.progress.history[-1] if trainer.progress.history else {}
    return {"step": trainer.progress.step, "tokens": trainer.progress.tokens, "loss": last.get("loss", float("nan"))}


def train_loop_per_worker(setup: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch

    setup_logging()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    log.info("worker rank %d of %d on node %s", rank, world, ray.get_runtime_context().get_node_id())
    trainer = PhaseTrainer(setup["cfg"], setup["phase"], PhasePaths(**setup["paths"]),
                           rank=rank, world=world, wrap=ray.train.torch.prepare_model)
    # A worker restarted within this run resumes from this run's checkpoint; a new run of a
    # stage whose driver died resumes from the checkpoint mmbert.train.resume handed over.
    resumed = ray.train.get_checkpoint()
    if resumed:
        with resumed.as_directory() as folder:
            trainer.restore(Path(folder))
    elif setup.get("resume_from"):
        store = open_store(setup["storage"])
        local = local_copy(store, setup["resume_from"])  # the store's folder itself where it is a disk
        try:
            trainer.restore(local)
        finally:
            remove_local_copy(store, local)

    def report(t: PhaseTrainer, final: bool) -> None:
        metrics = {**_metrics(t), "final": final}
        if rank != 0:
            ray.train.report(metrics)
            return
        metrics["tokens_per_second"] = t.tokens_per_second
        with tempfile.TemporaryDirectory() as folder:
            t.save(Path(folder))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))

    live = LiveLog(Path(setup["live"]), resume=bool(resumed or setup.get("resume_from"))) if rank == 0 else None
    trainer.run(on_checkpoint=report, on_log=live)
