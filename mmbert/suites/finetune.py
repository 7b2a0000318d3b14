"""The fine-tuning loop every task kind shares: the NLU recipe of the paper's evaluation code
(AdamW, linear warmup over the first `warmup_ratio` of the steps, then linear decay to 0),
bf16 autocast on a GPU when asked, batches padded per batch."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch

log = logging.getLogger("mmbert.suites")


@dataclass(frozen=True)
class Recipe:
    lr: float
    epochs: int
    batch_size: int
    warmup_ratio: float
    weight_decay: float
    seed: int
    precision: str  # fp32 | bf16 (autocast, GPU only)


def device_for(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def autocast(device: torch.device, precision: str):
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def batches(features: list[dict], size: int, collate: Callable[[list[dict]], dict], rng: random.Random | None
            ) -> Iterator[dict]:
    order = list(range(len(features)))
    if rng is not None:
        rng.shuffle(order)
    for start in range(0, len(order), size):
        yield collate([features[i] for i in order[start:start + size]])


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def fit(model: torch.nn.Module, features: list[dict], collate: Callable[[list[dict]], dict], recipe: Recipe,
        device: torch.device, what: str) -> list[float]:
    """Train in place; returns the loss of every step."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    steps = recipe.epochs * math.ceil(len(features) / recipe.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, round(recipe.warmup_ratio * steps), steps)
    model.to(device).train()
    losses = []
    for epoch in range(recipe.epochs):
        for batch in batches(features, recipe.batch_size, collate, rng):
            with autocast(device, recipe.precision):
                loss = model(**to_device(batch, device)).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        log.info("%s: epoch %d/%d, %d steps, last loss %.4f", what, epoch + 1, recipe.epochs, len(losses), losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def forward_all(model: torch.nn.Module, features: list[dict], collate: Callable[[list[dict]], dict], batch_size: int,
                device: torch.device, precision: str, outputs: Callable[[object], list]) -> list:
    """`outputs(model_output)` per batch, concatenated, in the features' order."""
    model.to(device).eval()
    found: list = []
    for batch in batches(features, batch_size, collate, None):
        with autocast(device, precision):
            found.extend(outputs(model(**to_device(batch, device))))
    return found
