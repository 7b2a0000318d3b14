"""Where the pipeline keeps a model it names: a phase's final checkpoint, a fetched external
checkpoint (checkpoints.<name>), or the merge."""

from __future__ import annotations

from pathlib import Path

from mmbert.cli import output_dir
from mmbert.config import PipelineConfig


def model_dir(cfg: PipelineConfig, name: str) -> Path:
    """'merged', a checkpoint's or a phase's name → its model folder."""
    if name == "merged":
        return output_dir(cfg, "merge", "model")
    if name in cfg.checkpoints:
        return output_dir(cfg, "checkpoints", name, "model")
    return output_dir(cfg, "train", name, "model")


def checkpoint_dir(cfg: PipelineConfig, name: str, key: str) -> Path:
    """model_dir, which must exist; `key` (the params key that named it) is in the error when
    the folder is not there yet."""
    path = model_dir(cfg, name)
    if not path.is_dir():
        raise SystemExit(f"error: {key} lists {name!r} but {path} does not exist; run its stage first")
    return path
