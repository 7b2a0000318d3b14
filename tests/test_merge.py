"""TIES through mergekit against a direct computation of TIES on the same tensors."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from mmbert.config import MergeConfig, ModelConfig
from mmbert.merge import check_loads, ties_merge
from mmbert.modeling import build_config, new_model

ARCH = ModelConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                   local_attention=8, global_attn_every_n_layers=2, max_position_embeddings=32,
                   attention_output_dropout=0.0, attention_probs_dropout=0.0, norm_eps=1e-5, initializer_range=0.02)


def direct_ties(base: torch.Tensor, models: list[torch.Tensor], density: float, weights: list[float]) -> torch.Tensor:
    """Trim each task vector to its top-density magnitudes, elect a sign per entry from the
    weighted sum, average the agreeing entries (weighted), add to the base."""
    trimmed = []
    for model, weight in zip(models, weights):
        delta = (model - base).flatten()
        keep = torch.zeros_like(delta)
        keep[delta.abs().argsort(descending=True)[: max(1, int(density * delta.numel()))]] = 1
        trimmed.append(weight * delta * keep)
    stacked = torch.stack(trimmed)
    elected = torch.where(stacked.sum(0) >= 0, 1.0, -1.0)
    agree = (stacked.sign() == elected).float()
    w = torch.tensor(weights)[:, None]
    divisor = (w * agree).sum(0)
    divisor[divisor == 0] = 1
    return base + ((stacked * agree).sum(0) / divisor).reshape(base.shape)


def _checkpoints(tmp_path):
    base = new_model(build_config(ARCH, 50), seed=0)
    base.save_pretrained(tmp_path / "base")
    paths = []
    for i in range(3):
        model = new_model(build_config(ARCH, 50), seed=0)
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.save_pretrained(tmp_path / f"m{i}")
        paths.append(tmp_path / f"m{i}")
    return tmp_path / "base", paths


def test_mergekit_ties_equals_direct_ties(tmp_path):
    base, models = _checkpoints(tmp_path)
    weights = [1.0, 0.5, 2.0]
    ties_merge(MergeConfig(method="ties", base="b", models=["x", "y", "z"], density=0.4, weights=weights, normalize=True), base, models, tmp_path / "out")
    merged = load_file(str(tmp_path / "out" / "model.safetensors"))
    base_w = load_file(str(base / "model.safetensors"))
    model_ws = [load_file(str(m / "model.safetensors")) for m in models]
    assert set(merged) == set(base_w)
    worst = 0.0
    for key, value in merged.items():
        expected = direct_ties(base_w[key], [m[key] for m in model_ws], 0.4, weights)
        worst = max(worst, (value - expected).abs().max().item())
    assert worst < 1e-6, f"max |mergekit - direct| = {worst}"


def test_merged_model_loads_complete(tmp_path):
    base, models = _checkpoints(tmp_path)
    ties_merge(MergeConfig(method="ties", base="b", models=["x", "y", "z"], density=0.5, weights=None, normalize=True), base, models, tmp_path / "out")
    assert check_loads(tmp_path / "out") > 0
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert model.decoder.weight is model.model.embeddings.tok_embeddings.weight
