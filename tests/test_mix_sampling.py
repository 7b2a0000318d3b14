"""Temperature sampling of chunks against its target distribution."""

from __future__ import annotations

import pytest

from mmbert.mix import sample_chunks
from mmbert.schedules import temperature_probabilities


def sample_documents(docs, probs, total_tokens, seed):
    """The drawn documents themselves, and tokens per language."""
    lengths = {lang: [len(d) for d in lang_docs] for lang, lang_docs in docs.items()}
    langs, lang_index, chunk_index, taken = sample_chunks(lengths, probs, total_tokens, seed)
    return [docs[langs[li]][ci] for li, ci in zip(lang_index, chunk_index)], taken


def _corpus():
    # Languages of very different sizes and document lengths.
    return {
        "big": [[7] * 40 for _ in range(2000)],
        "mid": [[8] * 10 for _ in range(300)],
        "tiny": [[9] * 3 for _ in range(4)],
    }


@pytest.mark.parametrize("tau", [0.7, 0.3])
@pytest.mark.parametrize("budget", [2_000, 400_000])
def test_token_shares_match_the_target_within_one_document(tau, budget):
    docs = _corpus()
    sizes = {lang: sum(len(d) for d in ds) for lang, ds in docs.items()}
    probs = temperature_probabilities(sizes, tau, pinned={"mid": 0.2})
    _, taken = sample_documents(docs, probs, total_tokens=budget, seed=0)
    total = sum(taken.values())
    longest = 40 + 2
    for lang, p in probs.items():
        assert abs(taken.get(lang, 0) - p * total) <= longest, (lang, taken.get(lang, 0), p * total)


def test_languages_below_one_document_keep_their_expected_share():
    """500 languages whose targets are a fraction of a document, and one pinned at 10%: the
    pinned one still gets 10%, the small ones their share on average."""
    docs = {f"l{i:03d}": [[5] * 28] * 3 for i in range(500)} | {"eng": [[6] * 28] * 50}
    probs = {lang: 0.9 / 500 for lang in docs if lang != "eng"} | {"eng": 0.1}
    _, taken = sample_documents(docs, probs, total_tokens=5_000, seed=0)
    total = sum(taken.values())
    assert taken["eng"] / total == pytest.approx(0.1, abs=30 / total)
    assert (total - taken["eng"]) / total == pytest.approx(0.9, abs=30 / total)


def test_small_languages_are_upsampled_evenly():
    docs = {"tiny": [[1], [2], [3]], "big": [[4] * 10] * 100}
    chosen, taken = sample_documents(docs, {"tiny": 0.5, "big": 0.5}, total_tokens=3000, seed=1)
    counts = {d[0]: sum(1 for c in chosen if c == d) for d in docs["tiny"]}
    assert max(counts.values()) - min(counts.values()) <= 1  # each pass visits every document once


def test_sampling_is_deterministic():
    docs = _corpus()
    probs = {"big": 0.5, "mid": 0.3, "tiny": 0.2}
    assert sample_documents(docs, probs, 5000, seed=3) == sample_documents(docs, probs, 5000, seed=3)


def test_the_repetition_cap_holds_exactly_and_the_rest_takes_the_share():
    """The allocation rule's shares drawn with each language's cap as a hard limit: a capped
    language never passes max_repeats x its tokens, even when its target sits right on it."""
    from mmbert.mixing.allocate import allocate

    docs = _corpus()
    sizes = {lang: sum(len(d) + 2 for d in ds) for lang, ds in docs.items()}  # one pass, [CLS]/[SEP] in
    plan = allocate(sizes, 30_000, 0.3, max_repeats=2)
    assert plan.capped(2) == ["mid", "tiny"]  # 3600 and 20 tokens: their temperature share is over twice that
    lengths = {lang: [len(d) for d in ds] for lang, ds in docs.items()}
    limits = {lang: 2 * sizes[lang] for lang in sizes}
    _, _, _, taken = sample_chunks(lengths, plan.shares, 30_000, seed=0, limits=limits)
    assert taken["tiny"] <= 2 * sizes["tiny"] and taken["mid"] <= 2 * sizes["mid"]
    assert taken["tiny"] >= 2 * sizes["tiny"] - (3 + 2) and taken["mid"] >= 2 * sizes["mid"] - (10 + 2)
    assert sum(taken.values()) >= 30_000  # the big language took what the capped ones could not
