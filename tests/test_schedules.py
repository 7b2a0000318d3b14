from __future__ import annotations

import math

import pytest

from mmbert.config import BatchConfig, LRConfig
from mmbert.schedules import (
    active_languages,
    batch_size_at,
    lr_at,
    phase_lr_at,
    temperature_probabilities,
)

PEAK = 8e-4


@pytest.mark.parametrize(("tokens", "expected"), [(0, 0.0), (250, PEAK / 4), (500, PEAK / 2), (1000, PEAK), (5000, PEAK)])
def test_linear_warmup_then_constant(tokens, expected):
    assert lr_at(tokens, peak=PEAK, total_tokens=10_000, warmup_tokens=1000) == pytest.approx(expected)


@pytest.mark.parametrize("progress", [0.0, 0.04, 0.25, 0.5, 0.81, 1.0])
def test_one_minus_sqrt_decay_closed_form(progress):
    alpha, total, window = 0.02, 10_000, 4_000
    tokens = int(total - window + progress * window)
    expected = PEAK * (alpha + (1 - alpha) * (1 - math.sqrt(progress)))
    got = lr_at(tokens, peak=PEAK, total_tokens=total, decay="one_minus_sqrt", decay_tokens=window, final_fraction=alpha)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("progress", [0.0, 0.3, 1.0])
def test_linear_decay_closed_form(progress):
    alpha, total = 0.04, 1000
    tokens = int(progress * total)
    got = lr_at(tokens, peak=PEAK, total_tokens=total, decay="linear", decay_tokens=total, final_fraction=alpha)
    assert got == pytest.approx(PEAK * (alpha + (1 - alpha) * (1 - progress)))


def test_decay_reaches_the_floor_exactly():
    lr = LRConfig(peak=PEAK, decay="one_minus_sqrt", decay_tokens=100, final_fraction=0.02)
    assert phase_lr_at(100, lr, total_tokens=100) == pytest.approx(0.02 * PEAK)
    assert phase_lr_at(10**6, lr, total_tokens=100) == pytest.approx(0.02 * PEAK)


def test_batch_size_warmup_is_linear_and_rounded_to_workers():
    batch = BatchConfig(size=4608, warmup_from=48, warmup_tokens=60_000)
    assert batch_size_at(0, batch) == 48
    assert batch_size_at(30_000, batch) == 48 + (4608 - 48) // 2
    assert batch_size_at(60_000, batch) == 4608
    assert batch_size_at(10**9, batch) == 4608
    assert batch_size_at(12_345, batch, multiple_of=8) % 8 == 0


def test_temperature_sampling_closed_form():
    sizes = {"a": 900, "b": 90, "c": 10}
    for tau in (1.0, 0.7, 0.5, 0.3):
        probs = temperature_probabilities(sizes, tau)
        norm = sum((n / 1000) ** tau for n in sizes.values())
        for lang, n in sizes.items():
            assert probs[lang] == pytest.approx((n / 1000) ** tau / norm)
    # Lower temperature flattens the distribution towards uniform.
    assert temperature_probabilities(sizes, 0.3)["c"] > temperature_probabilities(sizes, 0.7)["c"] > 0.01


def test_pinned_share_and_the_rest_keep_their_ratios():
    sizes = {"eng": 1000, "fra": 400, "deu": 100}
    probs = temperature_probabilities(sizes, 0.5, pinned={"eng": 0.179})
    assert probs["eng"] == pytest.approx(0.179)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["fra"] / probs["deu"] == pytest.approx((400 / 100) ** 0.5)


def test_pinned_language_must_be_active():
    with pytest.raises(ValueError, match="zzz"):
        temperature_probabilities({"a": 1}, 0.5, pinned={"zzz": 0.2})


def test_active_languages():
    sizes = {"a": 5, "b": 50, "c": 50, "d": 1}
    assert active_languages(2, sizes) == ["b", "c"]  # ties broken by code
    assert active_languages("all", sizes) == ["b", "c", "a", "d"]
    assert active_languages(["d", "a"], sizes) == ["d", "a"]
    with pytest.raises(ValueError, match="zz"):
        active_languages(["zz"], sizes)
    with pytest.raises(ValueError, match="5 largest"):
        active_languages(5, sizes)
