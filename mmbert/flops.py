"""Model FLOPs of a training step, one formula for the training benchmark's MFU and the cost
plan: 6 FLOPs per parameter and token for every matrix multiply (forward 2, backward 4), the
decoder on masked tokens only (the official sparse prediction), and attention over the
query-key pairs each layer sees within its document (QK^T and AV: 2 multiplies x 2 FLOPs x 3).
Embedding lookups and elementwise work are left out, as in the usual MFU accounting."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def attention_pairs(n: int, window: int | None) -> int:
    """Query-key pairs of one document of n tokens, with keys within `window` each side."""
    if window is None or window >= n:
        return n * n
    i = np.arange(n)
    return int((np.minimum(n - 1, i + window) - np.maximum(0, i - window) + 1).sum())


def matmul_parameters(hidden: int, intermediate: int, layers: int) -> int:
    """Weights every token multiplies: per layer Wqkv (3h x h), Wo (h x h), the GeGLU's Wi
    (2i x h) and Wo (h x i); the head's dense layer (h x h). No biases (ModernBERT has none)."""
    return layers * (4 * hidden * hidden + 3 * intermediate * hidden) + hidden * hidden


def windows(layers: int, global_every: int, local_attention: int) -> list[int | None]:
    """Each layer's window each side (None: global), transformers' ModernBERT layout."""
    return [None if i % global_every == 0 else local_attention // 2 for i in range(layers)]


def training_flops(hidden: int, intermediate: int, layers: int, global_every: int, local_attention: int,
                   vocab: int, mask_rate: float, lengths: Iterable[int]) -> float:
    """FLOPs of one training pass over documents of the given lengths."""
    lengths = [int(n) for n in lengths]
    tokens = sum(lengths)
    pairs = sum(attention_pairs(n, w) for w in windows(layers, global_every, local_attention) for n in lengths)
    dense = matmul_parameters(hidden, intermediate, layers) + vocab * hidden * mask_rate
    return 6 * tokens * dense + 12 * pairs * hidden
