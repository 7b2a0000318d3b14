"""The optimizer of a phase. Both choices decay weights fully decoupled from the learning
rate: the applied decay per step is weight_decay x lr / peak_lr (weight_decay at the peak),
never on biases and norms (the official `filter_bias_norm_wd`).

- stable_adamw (official): torch-optimi's StableAdamW with decouple_lr; each tensor's step
  is divided by max(1, RMS(g / sqrt(v))), which replaces global gradient clipping.
- adamw: torch's AdamW; its decay is lr x weight_decay, so it is given weight_decay / peak.
"""

from __future__ import annotations

import torch

from mmbert.config import OptimizerConfig, PhaseConfig


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """No weight decay on biases and norms (the paper's setting)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, phase: PhaseConfig, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    peak = phase.lr.peak
    if cfg.name == "stable_adamw":
        from optimi import StableAdamW

        return StableAdamW(decay_groups(model, phase.weight_decay), lr=peak, betas=tuple(cfg.betas), eps=cfg.eps,
                           weight_decay=phase.weight_decay, decouple_lr=True, max_lr=peak)
    return torch.optim.AdamW(decay_groups(model, phase.weight_decay / peak), lr=peak, betas=tuple(cfg.betas),
                             eps=cfg.eps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def applied_weight_decay(optimizer: torch.optim.Optimizer) -> float:
    """The decay factor the next step applies to decayed weights (before StableAdamW's
    per-tensor RMS scaling, which divides lr and decay alike)."""
    group = optimizer.param_groups[0]
    if "max_lr" in group and group.get("decouple_lr"):
        return group["weight_decay"] * group["lr"] / group["max_lr"]
    return group["weight_decay"] * group["lr"]
