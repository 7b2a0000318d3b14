from __future__ import annotations

import numpy as np
import torch

from mmbert.bench import batches, document_lengths, throughput
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
    class Identity(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return input_ids

    data = batches(np.array([4, 6]), 2, vocab=50, pad_id=0, seed=0)
    result = throughput(Identity(), data, CFG)
    assert result["tokens"] == 10 and result["tokens_per_second"] > 0
