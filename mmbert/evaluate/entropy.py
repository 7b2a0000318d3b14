"""The context-free baseline: the unigram entropy of the held-out tokens (in nats, like
the MLM loss). An MLM that beats it is using context, not just token frequencies."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


def unigram_entropy(counts: Counter[int]) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values() if c)


def token_counts(rows: np.ndarray, special_ids: list[int]) -> Counter[int]:
    tokens = rows[~np.isin(rows, special_ids)]
    return Counter(tokens.tolist())


def _pooled(per_language: dict[str, Counter[int]], languages: set[str] | None = None) -> Counter[int]:
    pooled: Counter[int] = Counter()
    for lang, counts in per_language.items():
        if languages is None or lang in languages:
            pooled.update(counts)
    return pooled


def heldout_entropy(rows_by_lang: dict[str, np.ndarray], special_ids: list[int],
                    groups: dict[str, set[str]] | None = None) -> dict[str, object]:
    """Entropy of all held-out tokens pooled, of each group's tokens pooled, and of each
    language's own tokens."""
    per_language = {lang: token_counts(rows, special_ids) for lang, rows in rows_by_lang.items()}
    pooled = _pooled(per_language)
    by_group = {name: _pooled(per_language, langs) for name, langs in (groups or {}).items()}
    return {
        "pooled": unigram_entropy(pooled),
        "by_group": {name: unigram_entropy(c) for name, c in by_group.items() if c},
        "per_language": {lang: unigram_entropy(c) for lang, c in per_language.items() if c},
        "tokens": sum(pooled.values()),
    }
