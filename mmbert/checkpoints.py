"""Where the pipeline keeps a model it names: a phase's final checkpoint, or the merge."""

from __future__ import annotations

from pathlib import Path

from mmbert.cli import output_dir
from mmbert.config import PipelineConfig


def checkpoint_dir(cfg: PipelineConfig, name: str, key: str) -> Path:
    """'merged' or a phase name → its model folder; `key` (the params key that named it) is in
    the error when the folder is not there yet."""
    path = output_dir(cfg, "merge", "model") if name == "merged" else output_dir(cfg, "train", name, "model")
    if not path.is_dir():
        raise SystemExit(f"error: {key} lists {name!r} but {path} does not exist; run its stage first")
    return path
