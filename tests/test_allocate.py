"""The language allocation rule (mmbert.mixing.allocate): temperature sampling on tokens,
languages held at max_repeats x their tokens, the freed share spread over the rest."""

from __future__ import annotations

import pytest

from mmbert.mixing.allocate import allocate
from mmbert.schedules import temperature_probabilities


def test_without_a_cap_it_is_temperature_sampling():
    sizes = {"a": 5_000_000, "b": 300_000, "c": 1_200, "d": 7}
    got = allocate(sizes, 1e6, 0.5).shares
    assert got == pytest.approx(temperature_probabilities(sizes, 0.5), rel=1e-12)


def test_capped_languages_hold_their_cap_and_the_rest_takes_their_share():
    # by hand: weights (n/1000)^0.3 = 1, 0.5012, 0.1259 -> 614.6, 308.0, 77.4 tokens of 1000;
    # b and c exceed 2x their tokens (200, 2) and are held there; a takes the 798 left
    got = allocate({"a": 1000, "b": 100, "c": 1}, 1000, 0.3, max_repeats=2)
    assert got.shares == pytest.approx({"a": 0.798, "b": 0.2, "c": 0.002}, abs=1e-12)
    assert [got.repeats(lang) for lang in "abc"] == pytest.approx([0.798, 2.0, 2.0])
    assert got.capped(2) == ["b", "c"] and got.capped(None) == []


def test_the_freed_share_can_push_another_language_over_its_cap():
    # round 1: c (1 token) is over 3x; its freed share lifts b from 2.93x to 3.30x -> held in round 2
    sizes = {"a": 1000.0, "b": 60.0, "c": 1.0}
    got = allocate(sizes, 620, 0.3, max_repeats=3)
    w = {k: (v / 1000) ** 0.3 for k, v in sizes.items()}
    first_b = 620 * w["b"] / sum(w.values())
    assert first_b < 180 < (620 - 3) * w["b"] / (w["a"] + w["b"])  # b is only over after c's share returns
    assert got.budget("c") == pytest.approx(3) and got.budget("b") == pytest.approx(180)
    assert got.budget("a") == pytest.approx(620 - 183)
    assert sum(got.shares.values()) == pytest.approx(1.0, abs=1e-12)


def test_pinned_shares_are_kept_and_outside_the_cap():
    # the 500 unpinned tokens: x 399.6, y 100.4 by temperature; y is held at 20, x takes 480
    got = allocate({"eng": 10_000, "x": 1000, "y": 10}, 1000, 0.3, max_repeats=2, pinned={"eng": 0.5})
    assert got.shares["eng"] == 0.5
    assert got.budget("y") == pytest.approx(20) and got.budget("x") == pytest.approx(480)


def test_impossible_allocations_are_refused_naming_why():
    with pytest.raises(ValueError, match="cannot be drawn from these languages at most 2 times"):
        allocate({"a": 10, "b": 5}, 100, 0.3, max_repeats=2)
    with pytest.raises(ValueError, match=r"pinned shares would repeat eng \(5.0x its 100 tokens\)"):
        allocate({"eng": 100, "b": 1000}, 1000, 0.3, max_repeats=2, pinned={"eng": 0.5})
    with pytest.raises(ValueError, match=r"pinned languages \['zzz'\]"):
        allocate({"a": 10}, 5, 0.3, pinned={"zzz": 0.1})
