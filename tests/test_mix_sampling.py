"""Temperature sampling of documents against its target distribution."""

from __future__ import annotations

import pytest

from mmbert.mix import sample_documents
from mmbert.schedules import temperature_probabilities


def _corpus():
    # Languages of very different sizes and document lengths.
    return {
        "big": [[7] * 40 for _ in range(2000)],
        "mid": [[8] * 10 for _ in range(300)],
        "tiny": [[9] * 3 for _ in range(4)],
    }


@pytest.mark.parametrize("tau", [0.7, 0.3])
def test_token_shares_match_the_target(tau):
    docs = _corpus()
    sizes = {lang: sum(len(d) for d in ds) for lang, ds in docs.items()}
    probs = temperature_probabilities(sizes, tau, pinned={"mid": 0.2})
    _, taken = sample_documents(docs, probs, total_tokens=400_000, seed=0)
    total = sum(taken.values())
    for lang, p in probs.items():
        assert taken[lang] / total == pytest.approx(p, abs=0.01), lang


def test_small_languages_are_upsampled_evenly():
    docs = {"tiny": [[1], [2], [3]], "big": [[4] * 10] * 100}
    chosen, taken = sample_documents(docs, {"tiny": 0.5, "big": 0.5}, total_tokens=3000, seed=1)
    counts = {d[0]: sum(1 for c in chosen if c == d) for d in docs["tiny"]}
    assert max(counts.values()) - min(counts.values()) <= 1  # each pass visits every document once


def test_sampling_is_deterministic():
    docs = _corpus()
    probs = {"big": 0.5, "mid": 0.3, "tiny": 0.2}
    assert sample_documents(docs, probs, 5000, seed=3) == sample_documents(docs, probs, 5000, seed=3)
