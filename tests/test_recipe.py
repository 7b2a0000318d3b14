"""The paper presets carry the official numbers (../shared/reference/mmbert-recipe.md)."""

from __future__ import annotations

import csv

import pytest
import yaml

from mmbert.corpus.paper_languages import paper_languages

from mmbert.config import parse_config
from mmbert.modeling import architecture, build_config
from mmbert.preset import preset_values
from mmbert.schedules import batch_size_at

T = 1_000_000_000_000
B = 1_000_000_000

# (size, phase) -> expected values, transcribed from the recipe's tables.
RECIPE = {
    "small": {
        "arch": dict(hidden_size=384, num_hidden_layers=22, num_attention_heads=6, intermediate_size=1152,
                     local_attention=128, global_attn_every_n_layers=3, max_position_embeddings=8192),
        "params": (140e6, 42e6),
        "pretrain": dict(tokens=2.3 * T, seq_len=1024, batch=4608, batch_from=48, batch_warmup=100 * B, lr=8e-4,
                         warmup=4 * B, decay="none", wd=8e-5, mask=0.30, tau=0.7, langs=61, theta=10_000),
        "midtrain": dict(tokens=600 * B, seq_len=8192, batch=4608, lr=4e-4, decay="none", wd=4e-5, mask=0.15,
                         tau=0.5, langs=110, theta=160_000),
        "decay": dict(tokens=100 * B, seq_len=8192, batch=4608, lr=4e-4, decay="linear", final=0.04, wd=4e-5,
                      mask=0.05, tau=0.3, theta=160_000),
    },
    "base": {
        "arch": dict(hidden_size=768, num_hidden_layers=22, num_attention_heads=12, intermediate_size=1152,
                     local_attention=128, global_attn_every_n_layers=3, max_position_embeddings=8192),
        "params": (307e6, 110e6),
        "pretrain": dict(tokens=2.3 * T, seq_len=1024, batch=4608, batch_from=48, batch_warmup=60 * B, lr=8e-4,
                         warmup=3 * B, decay="none", wd=8e-5, mask=0.25, tau=0.7, langs=61, theta=10_000),
        "midtrain": dict(tokens=600 * B, seq_len=8192, batch=4608, lr=8e-4, decay="none", wd=8e-5, mask=0.15,
                         tau=0.5, langs=110, theta=160_000),
        "decay": dict(tokens=100 * B, seq_len=8192, batch=4608, lr=8e-4, decay="one_minus_sqrt", final=0.02, wd=8e-5,
                      mask=0.05, tau=0.3, theta=160_000),
    },
}
ENGLISH_SHARE = {"decay-eng": 0.179, "decay-cont": 0.132, "decay-all": 0.102}


@pytest.fixture(params=["small", "base"])
def preset(request):
    return request.param, parse_config(preset_values(f"paper-{request.param}"))


def _check_phase(phase, want):
    assert phase.data.tokens == want["tokens"]
    assert phase.data.seq_len == want["seq_len"]
    assert phase.batch.size == want["batch"]
    assert phase.lr.peak == want["lr"]
    assert phase.lr.decay == want["decay"]
    assert phase.weight_decay == want["wd"]
    assert phase.mask_rate == want["mask"]
    assert phase.data.temperature == want["tau"]
    assert phase.rope_theta_global == phase.rope_theta_local == want["theta"]


def test_preset_phases_match_the_recipe(preset):
    size, cfg = preset
    want = RECIPE[size]
    _check_phase(cfg.phases["pretrain"], want["pretrain"])
    pre = cfg.phases["pretrain"]
    assert (pre.batch.warmup, pre.batch.micro_batch_size, pre.batch.warmup_tokens) == (
        "micro_batches", want["pretrain"]["batch_from"], want["pretrain"]["batch_warmup"])
    assert pre.lr.warmup_tokens == want["pretrain"]["warmup"]
    assert len(paper_languages(pre.data.languages.removeprefix("paper:"))) == want["pretrain"]["langs"]
    _check_phase(cfg.phases["midtrain"], want["midtrain"])
    assert len(paper_languages(cfg.phases["midtrain"].data.languages.removeprefix("paper:"))) == want["midtrain"]["langs"]
    for name in ("decay-eng", "decay-cont", "decay-all"):
        phase = cfg.phases[name]
        _check_phase(phase, want["decay"])
        assert phase.init_from == "midtrain"
        assert phase.lr.final_fraction == want["decay"]["final"]
        assert phase.lr.decay_tokens == phase.data.tokens
        assert phase.data.pinned_shares == {"eng_Latn": ENGLISH_SHARE[name]}
    assert cfg.phases["decay-all"].data.languages == "paper:decay-all"
    assert (cfg.phases["decay-eng"].data.languages, cfg.phases["decay-cont"].data.languages) == (
        "paper:decay-eng", "paper:decay-mid")


def test_preset_architecture_and_size(preset):
    import torch
    from transformers import ModernBertForMaskedLM

    size, cfg = preset
    assert cfg.model.model_dump(include=set(RECIPE[size]["arch"])) == RECIPE[size]["arch"]
    assert (cfg.model.attention_output_dropout, cfg.model.attention_probs_dropout) == (0.1, 0.0)
    assert cfg.tokenizer.vocab_size == 256_000 and cfg.tokenizer.pretrained == "google/gemma-2-9b"
    arch, vocab = architecture(f"paper-{size}")
    with torch.device("meta"):
        model = ModernBertForMaskedLM(build_config(arch, vocab))
    total = sum(p.numel() for p in model.parameters())
    non_embedding = total - model.model.embeddings.tok_embeddings.weight.numel()
    want_total, want_non_embedding = RECIPE[size]["params"]
    assert total == pytest.approx(want_total, rel=0.03)
    assert non_embedding == pytest.approx(want_non_embedding, rel=0.05)


def test_language_counts_match_the_paper_table(repo_root):
    """61 pre-training languages (60 + code), 110 mid-training, 1834 in decay-all."""
    with (repo_root / "mmbert" / "data" / "mmbert_language_counts.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    active = {col: sum(int(r[col]) > 0 for r in rows) for col in ("pretrain", "ext", "decay-eng", "decay-all")}
    raw = yaml.safe_load((repo_root / "mmbert" / "presets" / "paper-small.yaml").read_text())
    phases = raw["phases"]
    assert phases["pretrain"]["data"]["languages"] == "paper:pretrain" and active["pretrain"] == 61
    assert phases["midtrain"]["data"]["languages"] == "paper:ext" and active["ext"] == 110
    assert phases["decay-eng"]["data"]["languages"] == "paper:decay-eng" and active["decay-eng"] == 110
    assert active["decay-all"] == 1834 and phases["decay-all"]["data"]["languages"] == "paper:decay-all"


# From JHU-CLSP/mmBERT configs/mmBERT-{small,base}{,-ext,-decay}.yaml (recipe, "Corrections").
OFFICIAL = {
    "small": {"micro": {"pretrain": 48, "midtrain": 8, "decay": 8}, "seed": 21},
    "base": {"micro": {"pretrain": 48, "midtrain": 6, "decay": 6}, "seed": 21},
}


def test_presets_follow_the_official_training_configs(preset):
    """StableAdamW with decoupled decay and no global clipping, betas (0.9, 0.95), eps 1e-8;
    dropout on the attention output only; batch warmup from one micro-batch per GPU."""
    size, cfg = preset
    opt = cfg.train.optimizer
    assert (opt.name, tuple(opt.betas), opt.eps, opt.grad_clip) == ("stable_adamw", (0.9, 0.95), 1e-8, 0.0)
    assert (cfg.model.attention_output_dropout, cfg.model.attention_probs_dropout) == (0.1, 0.0)
    assert cfg.train.precision == "bf16" and cfg.seed == OFFICIAL[size]["seed"]
    micro = OFFICIAL[size]["micro"]
    for name, phase in cfg.phases.items():
        assert phase.batch.micro_batch_size == micro["decay" if name.startswith("decay") else name]
    pre = cfg.phases["pretrain"]
    workers = cfg.train.num_workers
    assert batch_size_at(0, pre.batch, workers) == workers * 48  # one micro-batch per GPU
    assert batch_size_at(pre.batch.warmup_tokens, pre.batch, workers) == 4608
    assert {batch_size_at(t, pre.batch, workers) % (workers * 48) for t in range(0, pre.batch.warmup_tokens, 10**9)} == {0}
    assert all(p.batch.warmup == "none" for n, p in cfg.phases.items() if n != "pretrain")
