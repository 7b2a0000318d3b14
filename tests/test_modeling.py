"""Our model construction against transformers' ModernBERT on the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForMaskedLM, ModernBertForMaskedLM

from mmbert.config import ModelConfig
from mmbert.modeling import SpecialIds, build_config, load_model, new_model

ARCH = ModelConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=48,
                   local_attention=8, global_attn_every_n_layers=3, max_position_embeddings=64,
                   attention_output_dropout=0.0, attention_probs_dropout=0.0, norm_eps=1e-5, initializer_range=0.02)


def test_architecture_follows_modernbert():
    config = build_config(ARCH, 100, rope_theta_global=160_000, rope_theta_local=160_000)
    assert config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    assert config.sliding_window == 4  # local_attention 8 -> half-window 4
    assert config.rope_parameters["full_attention"]["rope_theta"] == 160_000
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 160_000
    model = ModernBertForMaskedLM(config)
    names = dict(model.named_parameters())
    assert "model.layers.0.attn_norm.weight" not in names  # first block skips its attention pre-norm
    assert "model.layers.1.attn_norm.weight" in names
    assert not any(n.endswith(".bias") for n in names if "layers" in n)  # no bias in QKV, Wo, MLP
    assert model.decoder.weight is model.model.embeddings.tok_embeddings.weight  # tied
    assert config.pad_token_id == SpecialIds().pad and config.cls_token_id == SpecialIds().cls


def test_saved_checkpoint_matches_transformers_loading(tmp_path):
    model = new_model(build_config(ARCH, 100), seed=0).eval()
    model.save_pretrained(tmp_path)
    reference = AutoModelForMaskedLM.from_pretrained(tmp_path).eval()
    ours = load_model(tmp_path).eval()
    ids = torch.randint(5, 100, (2, 40))
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        got = ours(input_ids=ids).logits
        original = model(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()
    assert torch.allclose(original, expected, atol=1e-6)


def test_rope_theta_changes_on_load(tmp_path):
    new_model(build_config(ARCH, 100), seed=0).save_pretrained(tmp_path)
    base = load_model(tmp_path).eval()
    extended = load_model(tmp_path, rope_theta_global=160_000, rope_theta_local=160_000).eval()
    assert extended.config.rope_parameters["sliding_attention"]["rope_theta"] == 160_000
    ids = torch.randint(5, 100, (1, 48))
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, extended(input_ids=ids).logits)


def test_sdpa_and_eager_agree(tmp_path):
    new_model(build_config(ARCH, 100), seed=1).save_pretrained(tmp_path)
    ids = torch.randint(5, 100, (2, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    with torch.no_grad():
        sdpa = load_model(tmp_path, attn_implementation="sdpa").eval()(input_ids=ids, attention_mask=mask).logits
        eager = load_model(tmp_path, attn_implementation="eager").eval()(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(sdpa[mask.bool()], eager[mask.bool()], atol=1e-5)


@pytest.mark.parametrize("sparse", [True, False])
def test_sparse_prediction_gives_the_same_loss(tmp_path, sparse):
    new_model(build_config(ARCH, 100), seed=2).save_pretrained(tmp_path)
    ids = torch.randint(5, 100, (2, 32))
    labels = torch.full_like(ids, -100)
    labels[:, ::5] = ids[:, ::5]
    dense = load_model(tmp_path, sparse_prediction=False).eval()
    other = load_model(tmp_path, sparse_prediction=sparse).eval()
    with torch.no_grad():
        assert torch.allclose(dense(input_ids=ids, labels=labels).loss, other(input_ids=ids, labels=labels).loss, atol=1e-6)
