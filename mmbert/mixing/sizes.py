"""Tokens each language has in a per-language hub source, estimated before anything is
downloaded, so that budgets (mmbert.mixing.allocate) and file plans are known up front.

'fineweb2' (`corpus.hub.sizes`): FineWeb2's own table (`data/fineweb2_subsets.csv`, words per
subset of its train split) times Gemma 2 tokens per word: 1.5 (the figure the project takes
for whitespace-delimited scripts), less where FineWeb2 counts words by a segmenter that cuts
finer than Gemma's tokens (Han and Japanese; the factors are fitted on the paper's
pre-training column, where every other script fits 1.5 within a few percent).

'mmbert': the FineWeb2 mmBERT read (an early-2025 version; today's table moved whole
languages between subsets, e.g. pcm_Latn holds 1/255 of the text the paper drew from it).
No table of that version is published; the paper's per-language counts
(`data/mmbert_language_counts.csv`) are its only record, and they determine it under the
allocation rule: mid-training drew its 110 languages at τ = 0.5 without repetition cap
binding, so their sizes are ∝ count^(1/0.5) (scaled so that their median equals today's
estimate); decay-all held every other language at its repetition cap, so its size is its
count / PAPER_DECAY_REPEATS. Languages the paper's table lacks keep today's estimate.
The same tokens stand for MegaWika's languages (Wikipedia sizes are not tabulated here).
"""

from __future__ import annotations

import statistics
from functools import lru_cache

from mmbert.corpus.paper_languages import NOT_FINEWEB2, fineweb2_subsets, paper_counts, subset_for

TOKENS_PER_WORD = 1.5
SCRIPT_TOKENS_PER_WORD = {"Hani": 0.9, "Hans": 0.9, "Hant": 0.9, "Jpan": 0.65}
PAPER_EXT_TEMPERATURE = 0.5  # mid-training's τ: shares ∝ size^0.5
PAPER_DECAY_REPEATS = 2  # decay-all's cap: its low-resource counts are 2 × 1.5 tokens × words
SIZE_TABLES = ("fineweb2", "mmbert")


def tokens_per_word(script: str) -> float:
    return SCRIPT_TOKENS_PER_WORD.get(script, TOKENS_PER_WORD)


@lru_cache(maxsize=1)
def fineweb2_tokens() -> dict[str, float]:
    """Estimated tokens per FineWeb2 subset from today's table."""
    return {subset: int(row["words"]) * tokens_per_word(row["script"])
            for subset, row in fineweb2_subsets().items() if row["words"].isdigit()}


@lru_cache(maxsize=1)
def mmbert_tokens() -> dict[str, float]:
    """Estimated tokens per FineWeb2 subset in the version mmBERT read (module docstring)."""
    today = fineweb2_tokens()
    implied = {subset: float(n) ** (1 / PAPER_EXT_TEMPERATURE) for code, n in paper_counts("ext").items()
               if (subset := subset_for(code)) in today}
    scale = statistics.median(today[subset] / size for subset, size in implied.items())
    sizes = {subset: size * scale for subset, size in implied.items()}
    for code, n in paper_counts("decay-all").items():
        subset = subset_for(code)
        if subset in today and subset not in sizes and code not in NOT_FINEWEB2:
            sizes[subset] = n / PAPER_DECAY_REPEATS
    return today | sizes


def language_tokens(table: str) -> dict[str, float]:
    """Tokens per language (FineWeb2 subset) under `corpus.hub.sizes`."""
    if table == "fineweb2":
        return fineweb2_tokens()
    if table == "mmbert":
        return mmbert_tokens()
    raise ValueError(f"corpus.hub.sizes = {table!r}; expected one of {list(SIZE_TABLES)}")
