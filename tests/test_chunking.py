"""Chunking (chunked-<max>-<min>-<drop>-backfill-nodups) and best-fit packing, on literal cases."""

from __future__ import annotations

import numpy as np
import pytest

from mmbert.chunking import BestFitPacker, ChunkRule, chunk_document, pack_chunks

CLS, SEP, PAD = 2, 1, 0
RULE = ChunkRule(max_tokens=10, min_tokens=4, drop_below=2)


def lengths(doc_len: int, rule: ChunkRule = RULE) -> list[int]:
    return [len(c) for c in chunk_document(list(range(doc_len)), rule)]


def test_short_documents_stay_whole_and_tiny_ones_are_dropped():
    assert lengths(1) == []
    assert lengths(2) == [2]  # shorter than min_tokens but not split: kept whole
    assert lengths(10) == [10]


def test_long_documents_are_cut_at_the_maximum():
    assert lengths(20) == [10, 10]
    assert lengths(25) == [10, 10, 5]  # the rest reaches min_tokens: its own chunk


def test_a_short_last_piece_is_backfilled_without_repeating_tokens():
    doc = list(range(23))  # 10 + 10 + 3; 3 < min 4: borrow one token from the piece before
    chunks = chunk_document(doc, RULE)
    assert [len(c) for c in chunks] == [10, 9, 4]
    assert [t for c in chunks for t in c] == doc


def test_a_last_piece_below_the_drop_threshold_is_dropped():
    assert lengths(21) == [10, 10]


def test_the_rule_is_checked():
    with pytest.raises(ValueError, match="drop_below"):
        ChunkRule(max_tokens=10, min_tokens=4, drop_below=5)
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkRule(max_tokens=3, min_tokens=4, drop_below=1)


def packer(buffer_rows: int = 4, seq_len: int = 8) -> BestFitPacker:
    return BestFitPacker(seq_len, buffer_rows, cls_id=CLS, sep_id=SEP, pad_id=PAD, dtype=np.dtype(np.uint16))


def test_best_fit_fills_gaps_with_later_chunks_and_records_boundaries():
    chunks = [[10, 11, 12, 13], [20, 21, 22, 23, 24], [30], [40, 41]]
    rows = list(pack_chunks(chunks, packer()))
    # [CLS]10..13[SEP] (6) leaves 2; the 7-token chunk opens row 2 (1 left); [CLS]30[SEP] (3)
    # fits neither, row 3; [CLS]40 41[SEP] (4) fits row 3 best (5 left) -> rows in opening order.
    assert [r.input_ids.tolist() for r in rows] == [
        [CLS, 10, 11, 12, 13, SEP, PAD, PAD],
        [CLS, 20, 21, 22, 23, 24, SEP, PAD],
        [CLS, 30, SEP, CLS, 40, 41, SEP, PAD],
    ]
    assert [r.cu_seqlens.tolist() for r in rows] == [[0, 6], [0, 7], [0, 3, 7]]
    assert rows[0].input_ids.dtype == np.uint16 and rows[0].cu_seqlens.dtype == np.int32


def test_a_full_row_is_written_at_once_and_the_buffer_bounds_open_rows():
    p = packer(buffer_rows=1)
    first = list(p.add([5] * 6))  # exactly fills a row of 8
    assert [r.cu_seqlens.tolist() for r in first] == [[0, 8]]
    assert list(p.add([6] * 2)) == []  # one open row (4 left)
    emitted = list(p.add([7] * 3))  # needs 5: a second open row exceeds the buffer of 1,
    # and the fullest row (3 left, against 4) is written out
    assert [r.input_ids.tolist() for r in emitted] == [[CLS, 7, 7, 7, SEP, PAD, PAD, PAD]]
    assert [r.input_ids.tolist() for r in p.flush()] == [[CLS, 6, 6, SEP, PAD, PAD, PAD, PAD]]


def test_packing_keeps_every_chunk_exactly_once():
    rng = np.random.default_rng(0)
    chunks = [list(rng.integers(5, 100, size=int(n))) for n in rng.integers(1, 30, size=300)]
    rows = list(pack_chunks(chunks, packer(buffer_rows=16, seq_len=32)))
    found = []
    for row in rows:
        bounds = row.cu_seqlens.tolist()
        assert (row.input_ids[bounds[-1]:] == PAD).all()
        for a, b in zip(bounds, bounds[1:]):
            assert row.input_ids[a] == CLS and row.input_ids[b - 1] == SEP
            found.append(tuple(row.input_ids[a + 1 : b - 1].tolist()))
    assert sorted(found) == sorted(tuple(c) for c in chunks)
    real = sum(int(r.cu_seqlens[-1]) for r in rows)
    assert real == sum(len(c) + 2 for c in chunks)
    one_open_row = list(pack_chunks(chunks, packer(buffer_rows=1, seq_len=32)))
    assert (len(rows), len(one_open_row)) == (177, 200)  # the buffer saves 11% of the rows


def test_a_chunk_longer_than_a_row_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        list(packer().add(list(range(7))))
