from __future__ import annotations

import pytest
import torch

from mmbert.masking import IGNORE_INDEX, mask_tokens

PAD, SEP, CLS, UNK, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, SEP, CLS, UNK, MASK]
VOCAB = 1000


def _batch(rows=256, length=512, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=gen)
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[:, -64:-1] = PAD  # padded tail
    return ids


@pytest.mark.parametrize("rate", [0.30, 0.15, 0.05])
def test_rate_is_exact_in_expectation(rate):
    ids = _batch()
    _, labels = mask_tokens(ids, rate, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB,
                            generator=torch.Generator().manual_seed(1))
    eligible = ~torch.isin(ids, torch.tensor(SPECIAL))
    observed = (labels != IGNORE_INDEX).sum().item() / eligible.sum().item()
    assert observed == pytest.approx(rate, abs=0.01)


def test_80_10_10_split_of_selected_tokens():
    ids = _batch()
    inputs, labels = mask_tokens(ids, 0.3, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB,
                                 generator=torch.Generator().manual_seed(2))
    selected = labels != IGNORE_INDEX
    n = selected.sum().item()
    masked = (inputs[selected] == MASK).sum().item() / n
    unchanged = (inputs[selected] == ids[selected]).sum().item() / n
    # A random replacement may hit the original token by chance (1 in ~1000).
    assert masked == pytest.approx(0.8, abs=0.01)
    assert unchanged == pytest.approx(0.1, abs=0.01)
    assert 1 - masked - unchanged == pytest.approx(0.1, abs=0.01)


def test_special_and_padding_never_selected_nor_drawn():
    ids = _batch()
    inputs, labels = mask_tokens(ids, 0.5, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB,
                                 generator=torch.Generator().manual_seed(3))
    special = torch.isin(ids, torch.tensor(SPECIAL))
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])
    replaced = (labels != IGNORE_INDEX) & (inputs != MASK) & (inputs != ids)
    assert replaced.any()
    assert not torch.isin(inputs[replaced], torch.tensor(SPECIAL)).any()
    # Labels hold the original token wherever selected.
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])


def test_same_generator_same_masks():
    ids = _batch(rows=8, length=64)
    a = mask_tokens(ids, 0.15, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB, generator=torch.Generator().manual_seed(7))
    b = mask_tokens(ids, 0.15, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1])
def test_rate_outside_open_interval_is_rejected(rate):
    with pytest.raises(ValueError, match="mask rate"):
        mask_tokens(_batch(rows=1, length=8), rate, mask_id=MASK, special_ids=SPECIAL, vocab_size=VOCAB)
