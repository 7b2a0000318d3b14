"""Sequence packing: documents, each wrapped as [CLS] doc [SEP], concatenated into rows of
exactly `seq_len` tokens. A document longer than the room left continues on the next row,
so no token is dropped and only the very last row carries padding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def pack_documents(
    documents: Iterable[Sequence[int]],
    seq_len: int,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    dtype: np.dtype = np.dtype(np.int32),
) -> np.ndarray:
    """Pack token-id documents into a [rows, seq_len] array."""
    if seq_len < 3:
        raise ValueError(f"seq_len must leave room for [CLS] x [SEP], got {seq_len}")
    stream: list[int] = []
    for doc in documents:
        stream.append(cls_id)
        stream.extend(doc)
        stream.append(sep_id)
    rows = -(-len(stream) // seq_len)
    packed = np.full(rows * seq_len, pad_id, dtype=dtype)
    packed[: len(stream)] = stream
    return packed.reshape(rows, seq_len)


def packing_efficiency(packed: np.ndarray, pad_id: int) -> float:
    """Share of positions holding real tokens (1.0 means no padding at all)."""
    return float((packed != pad_id).mean()) if packed.size else 0.0
