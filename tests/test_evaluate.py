from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from mmbert.evaluate.entropy import heldout_entropy, unigram_entropy
from mmbert.evaluate.mlm_loss import pooled
from mmbert.evaluate.report import decay_only_changes


def test_unigram_entropy_closed_form():
    assert unigram_entropy(Counter({1: 5, 2: 5})) == pytest.approx(math.log(2))
    assert unigram_entropy(Counter({1: 7})) == 0.0
    p = np.array([0.5, 0.25, 0.25])
    assert unigram_entropy(Counter({1: 2, 2: 1, 3: 1})) == pytest.approx(-(p * np.log(p)).sum())


def test_entropy_skips_special_tokens_and_pools_languages():
    rows = {"a": np.array([[2, 10, 10, 1, 0]]), "b": np.array([[2, 11, 11, 1, 0]])}
    result = heldout_entropy(rows, special_ids=[0, 1, 2, 3, 4])
    assert result["per_language"] == {"a": 0.0, "b": 0.0}
    assert result["pooled"] == pytest.approx(math.log(2))
    assert result["tokens"] == 4


def test_pooled_loss_weights_languages_by_tokens():
    per = {"a": {"loss": 1.0, "predictions": 1000, "tokens": 10}, "b": {"loss": 3.0, "predictions": 10, "tokens": 30}}
    assert pooled(per) == pytest.approx((1 * 10 + 3 * 30) / 40)
    assert pooled(per, {"a"}) == 1.0
    assert math.isnan(pooled(per, {"zzz"}))


def test_decay_only_change_is_relative_to_the_base():
    results = {name: {"heldout_loss": {"decay_only": loss}} for name, loss in
               [("midtrain", 5.0), ("decay-eng", 5.1), ("decay-all", 4.2)]}
    assert decay_only_changes(results, "midtrain") == {"decay-eng": pytest.approx(0.1), "decay-all": pytest.approx(-0.8)}
