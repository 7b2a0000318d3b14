"""Stage `train@<phase>`: a Ray Train run (TorchTrainer, DDP) that starts from the
previous phase's checkpoint and writes an HF checkpoint (tokenizer included), the state to
resume from, the loss per step and the held-out loss per language.

A stage whose driver died (the flow killed, a preemption) continues from its last checkpoint
when it is run again with the same inputs, params and code (see mmbert.train.resume)."""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import time
from dataclasses import asdict
from pathlib import Path

from mmbert.cards import write_phase_card
from mmbert.checkpoints import model_dir
from mmbert.cli import output_dir, phase_stage_parser, require_phase, run_stage
from mmbert.config import PipelineConfig
from mmbert.evaluate.mlm_loss import end_of_stage_heldout
from mmbert.external.compat import check_phase
from mmbert.external.errors import CheckpointError
from mmbert.io import atomic_dir, read_json, write_json
from mmbert.stages import write_record
from mmbert.train import cluster
from mmbert.train.loop import PhasePaths
from mmbert.train.live import write_history
from mmbert.train.resume import ResumableRun

log = logging.getLogger("mmbert.train")


def phase_paths(cfg: PipelineConfig, phase: str) -> PhasePaths:
    """The phase's inputs, each checked to exist before any worker starts.

    A phase after the first reads the tokenizer saved inside its base checkpoint, so it
    reads nothing beyond its declared DVC deps (its mix and its base checkpoint).
    """
    base = cfg.phases[phase].init_from
    init_model = model_dir(cfg, base).resolve() if base else None
    paths = PhasePaths(
        mix=str(output_dir(cfg, "mix", phase).resolve()),
        tokenizer=str(init_model or output_dir(cfg, "tokenizer").resolve()),
        init_model=str(init_model) if init_model else None,
    )
    for label, path in asdict(paths).items():
        if path and not Path(path).is_dir():
            raise SystemExit(f"error: train@{phase} needs {label} at {path}; run its stage first")
    if base in cfg.checkpoints:
        try:
            check_phase(cfg, phase, base, init_model)
        except CheckpointError as exc:
            raise SystemExit(f"error: {exc}") from None
    return paths


def fit(cfg: PipelineConfig, phase: str, paths: PhasePaths, run: ResumableRun):
    cluster.connect(cfg.runtime)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from mmbert.train.ray_worker import train_loop_per_worker

    resume_from = run.prepare()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "phase": phase, "paths": asdict(paths), "storage": run.store.uri,
                           "resume_from": resume_from,
                           "live": str(output_dir(cfg, "train", f"{phase}.live").resolve())},
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                     resources_per_worker={"CPU": cfg.runtime.cpus_per_worker},
                                     placement_strategy=cfg.runtime.placement_strategy),
        run_config=RunConfig(name=run.name, **run.store.ray_storage(),
                             checkpoint_config=CheckpointConfig(num_to_keep=2),
                             failure_config=FailureConfig(max_failures=1)),
    )
    return trainer.fit()


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    phase = require_phase(cfg, args.phase)
    paths = phase_paths(cfg, phase)
    started = time.perf_counter()
    run = ResumableRun.for_phase(cfg, phase, paths)
    result = fit(cfg, phase, paths, run)
    if result.error:
        raise SystemExit(f"error: train@{phase} failed: {result.error} (run it again to continue from its last "
                         f"checkpoint in {run.store.uri})")
    target = output_dir(cfg, "train", phase)
    with atomic_dir(target) as tmp, result.checkpoint.as_directory() as checkpoint:
        shutil.copytree(Path(checkpoint) / "model", tmp / "model")
        shutil.copytree(Path(checkpoint) / "state", tmp / "state")
        progress = read_json(tmp / "state" / "progress.json")
        last = [row["loss"] for row in progress["history"][-10:]]
        heldout = end_of_stage_heldout(output_dir(cfg, "corpus"), tmp / "model", cfg.train.heldout,
                                       cfg.runtime.torch_threads)
        write_json(tmp / "metrics.json", {
            "phase": phase,
            "steps": progress["step"],
            "tokens": progress["tokens"],
            "final_train_loss": statistics.fmean(last),
            "tokens_per_second": result.metrics.get("tokens_per_second"),
            "workers": cfg.train.num_workers,
            "resumed_from_step": run.resumed_step,
            "wall_seconds": time.perf_counter() - started,
            "heldout_loss": heldout["pooled"],
            "heldout_per_language": heldout["per_language"],
        })
        metrics = read_json(tmp / "metrics.json")
        # the summary leaves out what differs between a resumed run and a straight one (wall time)
        write_history(progress["history"], {key: metrics[key] for key in ("steps", "tokens", "final_train_loss",
                                                                           "heldout_loss")}, tmp / "dvclive")
        write_phase_card(cfg, phase, metrics, paths.init_model and Path(paths.init_model), tmp / "model")
        write_record(tmp, cfg, f"train@{phase}")
    run.finish()
    log.info("train@%s: %d steps, %d tokens, train loss %.3f, held-out loss %.3f -> %s",
             phase, progress["step"], progress["tokens"], statistics.fmean(last), heldout["pooled"], target)


if __name__ == "__main__":
    run_stage(main, phase_stage_parser(__doc__))
