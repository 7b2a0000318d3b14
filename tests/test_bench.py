from __future__ import annotations

import numpy as np
import torch

from mmbert.bench import batches, document_lengths, prepared, throughput
from mmbert.config import BenchConfig

CFG = BenchConfig(models=["xlmr-base"], documents=500, fixed_length=128, variable_mean=64, variable_sd=16, threads=2,
                  batch_size=8, repeats=2, warmup=0)


def test_fixed_and_variable_lengths_follow_the_paper_scheme():
    assert (document_lengths(CFG, "fixed", 512, 0) == 128).all()
    assert (document_lengths(CFG, "fixed", 100, 0) == 100).all()  # capped by the model
    lengths = document_lengths(CFG, "variable", 512, 0)
    assert lengths.min() >= 1 and lengths.max() <= 128
    assert abs(lengths.mean() - 64) < 3 and abs(lengths.std() - 16) < 3


def test_batches_pad_and_mask_exactly_the_real_tokens():
    lengths = np.array([3, 7, 5])
    out = batches(lengths, 2, vocab=100, pad_id=1, seed=0)
    assert [ids.shape for ids, _ in out] == [(2, 7), (1, 5)]
    assert [int(m.sum()) for _, m in out] == [10, 5]
    assert (out[0][0][0, 3:] == 1).all()


def test_throughput_counts_real_tokens_only():
    data = batches(np.array([4, 6]), 2, vocab=50, pad_id=0, seed=0)
    calls = []
    result = throughput(calls.append, data, 10, CFG)
    assert result["tokens"] == 10 and result["tokens_per_second"] > 0
    assert len(calls) == CFG.repeats * len(data)


def test_unpadded_models_run_the_same_batches_through_mmbert_unpadded():
    """`<name>:unpadded` gives the padded model's hidden states on the real tokens, from
    flat inputs prepared before timing."""
    from transformers import ModernBertModel

    from mmbert.config import ModelConfig
    from mmbert.modeling import build_config

    arch = ModelConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48,
                       local_attention=8, global_attn_every_n_layers=3, max_position_embeddings=64,
                       attention_output_dropout=0.0, attention_probs_dropout=0.0, norm_eps=1e-5, initializer_range=0.02)
    torch.manual_seed(0)
    model = ModernBertModel(build_config(arch, 50)).eval()
    data = batches(np.array([9, 30, 17]), 3, vocab=50, pad_id=0, seed=0)
    run, items = prepared("paper-small:unpadded", model, data)
    (ids, mask), (flat, docs) = data[0], items[0]
    assert flat.shape == (56,) and docs.cu_seqlens.tolist() == [0, 9, 39, 56]
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state[mask.bool()]
        assert torch.allclose(run(items[0]), expected, atol=1e-5)
        padded_run, same = prepared("paper-small", model, data)
        assert same is data and torch.equal(padded_run(data[0]).last_hidden_state, model(input_ids=ids, attention_mask=mask).last_hidden_state)
