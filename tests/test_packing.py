from __future__ import annotations

import numpy as np
import pytest

from mmbert.packing import pack_documents, packing_efficiency

CLS, SEP, PAD = 2, 1, 0


def test_packs_every_token_in_order_and_pads_only_the_tail():
    docs = [[10, 11, 12], [20], list(range(30, 45)), [50, 51]]
    packed = pack_documents(docs, 8, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    stream = [t for d in docs for t in [CLS, *d, SEP]]
    assert packed.shape == (-(-len(stream) // 8), 8)
    flat = packed.reshape(-1)
    assert flat[: len(stream)].tolist() == stream
    assert (flat[len(stream):] == PAD).all()
    assert (packed[:-1] != PAD).all()


def test_efficiency_counts_real_tokens():
    packed = pack_documents([[5] * 6], 4, cls_id=CLS, sep_id=SEP, pad_id=PAD)  # 8 tokens -> 2 full rows
    assert packing_efficiency(packed, PAD) == 1.0
    packed = pack_documents([[5] * 3], 4, cls_id=CLS, sep_id=SEP, pad_id=PAD, dtype=np.dtype(np.uint16))
    assert packing_efficiency(packed, PAD) == pytest.approx(5 / 8)
    assert packed.dtype == np.uint16


def test_too_short_rows_are_rejected():
    with pytest.raises(ValueError, match="seq_len"):
        pack_documents([[1]], 2, cls_id=CLS, sep_id=SEP, pad_id=PAD)
