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
    lr = LRConfig(peak=PEAK, warmup_tokens=0, decay="one_minus_sqrt", decay_tokens=100, final_fraction=0.02)
    assert phase_lr_at(100, lr, total_tokens=100) == pytest.approx(0.02 * PEAK)
    assert phase_lr_at(10**6, lr, total_tokens=100) == pytest.approx(0.02 * PEAK)


def _batch(**kw) -> BatchConfig:
    return BatchConfig(**({"size": 4608, "micro_batch_size": 48, "warmup": "none", "warmup_from": None,
                           "warmup_tokens": 0} | kw))


def test_batch_size_warmup_is_linear_and_rounded_to_workers():
    batch = _batch(warmup="linear", warmup_from=48, warmup_tokens=60_000)
    assert batch_size_at(0, batch) == 48
    assert batch_size_at(30_000, batch) == 48 + (4608 - 48) // 2
    assert batch_size_at(60_000, batch) == 4608
    assert batch_size_at(10**9, batch) == 4608
    assert batch_size_at(12_345, batch, workers=8) == (48 + (4608 - 48) * 12_345 / 60_000) // 8 * 8


def test_micro_batch_warmup_exact_values():
    """The official schedule on 8 workers x 48: K = 4608 / 384 = 12 sizes; sizes 1..11 micro-
    batches per worker, size k while tokens < T * (1+...+k) / (1+...+11) = T * k(k+1)/132."""
    batch = _batch(warmup="micro_batches", warmup_tokens=132_000)
    expected = [(0, 384), (1_999, 384), (2_000, 768), (5_999, 768), (6_000, 1152), (12_000, 1536),
                (109_999, 384 * 10), (110_000, 384 * 11), (131_999, 384 * 11), (132_000, 4608), (10**9, 4608)]
    got = [(t, batch_size_at(t, batch, workers=8)) for t, _ in expected]
    assert got == expected


def test_micro_batch_warmup_holds_each_size_equally_long():
    """At seq_len L, size k*u is held for T*k/(66*k*u*L) = T/(66*u*L) steps, the same for every k."""
    from mmbert.schedules import phase_steps
    from mmbert.config import PhaseConfig, PhaseData

    data = PhaseData(languages=1, temperature=1.0, max_repeats=None, tokens=40_000_000, seq_len=10, pinned_shares={},
                     released=[], sources={})
    phase = PhaseConfig(init_from=None, data=data,
                        mask_rate=0.3, rope_theta_global=1e4, rope_theta_local=1e4, weight_decay=0.0,
                        lr=LRConfig(peak=1e-3, warmup_tokens=0, decay="none", decay_tokens=0, final_fraction=0.0),
                        batch=_batch(size=48, micro_batch_size=2, warmup="micro_batches", warmup_tokens=3_300_000))
    sizes = [size for size, _, _ in phase_steps(phase, workers=2)]
    runs = [sizes.count(4 * k) for k in range(1, 12)]
    assert sizes[0] == 4 and sorted(set(sizes)) == [4 * k for k in range(1, 13)]
    assert max(runs) - min(runs) <= 1, runs  # 3.3M / (66 * 4 * 10) = 1250 steps each
    assert runs[0] == 1250
    assert sizes == sorted(sizes)


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
