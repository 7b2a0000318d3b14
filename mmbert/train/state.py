"""Everything a phase needs to resume exactly: weights (an HF checkpoint beside this),
optimizer moments and counters (step, tokens, data position). Randomness needs no saved
state: every step seeds its own generators from (seed, rank, step)."""

from __future__ import annotations

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


def step_seed(seed: int, rank: int, step: int) -> int:
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)
