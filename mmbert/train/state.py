"""Everything a phase needs to resume exactly: weights (an HF checkpoint beside this),
optimizer moments and counters (step, tokens, data position). Randomness needs no saved
state: every step seeds its own generators from (seed, stream, rank, step), mmbert.seeding."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmbert.io import read_json, write_json


@dataclass
class Progress:
    step: int = 0
    tokens: int = 0
    rows: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def save_state(folder: Path, optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"optimizer": optimizer.state_dict()}, folder / "optimizer.pt")
    write_json(folder / "progress.json", progress.to_json())


def load_state(folder: Path, optimizer: torch.optim.Optimizer) -> Progress:
    blob = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    return Progress(**read_json(folder / "progress.json"))


MANIFEST = "files.json"  # written last into a checkpoint: the size of every other file in it


def write_manifest(folder: Path) -> None:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / "state" / MANIFEST).write_text(json.dumps(files, indent=1), encoding="utf-8")


def checkpoint_step(folder: Path) -> int | None:
    """The step a checkpoint folder holds, or None if it is incomplete (a copy cut short)."""
    try:
        files = json.loads((folder / "state" / MANIFEST).read_text(encoding="utf-8"))
        if any((folder / name).stat().st_size != size for name, size in files.items()):
            return None
        return int(json.loads((folder / "state" / "progress.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError):
        return None
