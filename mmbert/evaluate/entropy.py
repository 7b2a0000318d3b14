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


def heldout_entropy(rows_by_lang: dict[str, np.ndarray], special_ids: list[int]) -> dict[str, object]:
    """Entropy of all held-out tokens pooled, and of each language's own tokens."""
    per_language = {lang: token_counts(rows, special_ids) for lang, rows in rows_by_lang.items()}
    pooled: Counter[int] = Counter()
    for counts in per_language.values():
        pooled.update(counts)
    return {
        "pooled": unigram_entropy(pooled),
        "per_language": {lang: unigram_entropy(c) for lang, c in per_language.items() if c},
        "tokens": sum(pooled.values()),
    }
