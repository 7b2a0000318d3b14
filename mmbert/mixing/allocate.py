"""How a phase's tokens are shared among its languages: the one rule every phase and every
source that spreads over languages follows (the embedded corpus and the hub's FineWeb2 and
MegaWika alike).

Temperature sampling on the tokens each language has, p ∝ n^τ, with a cap on repetition: no
language is given more than `max_repeats` times the tokens it has. A language whose share
would exceed its cap is held at the cap, and the share it frees goes back to the others by
the same temperature rule, until none exceeds it (water-filling). So low-resource languages
contribute all their data a bounded number of times rather than being repeated thousands of
times, and the high-resource languages keep the share that is left — the paper's reason for
adding them in the decay phase "without excess repetitions". Pinned languages take a fixed
share of the whole and stay out of the redistribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Allocation:
    """Per language: its share of the tokens allocated, the tokens it has, and how many times
    over its tokens the allocation takes (budget / available)."""

    shares: dict[str, float]
    available: dict[str, float]
    total: float

    def budget(self, lang: str) -> float:
        return self.shares[lang] * self.total

    def repeats(self, lang: str) -> float:
        return self.budget(lang) / self.available[lang] if self.available[lang] else float("inf")

    def capped(self, max_repeats: float | None) -> list[str]:
        """Languages held at the cap (within rounding), largest repetition first."""
        if max_repeats is None:
            return []
        held = [lang for lang in self.shares if self.repeats(lang) >= max_repeats * (1 - 1e-9)]
        return sorted(held, key=lambda lang: (-self.repeats(lang), lang))


def allocate(available: Mapping[str, float], total: float, temperature: float, max_repeats: float | None = None,
             pinned: Mapping[str, float] | None = None) -> Allocation:
    """Shares of `total` tokens over the languages of `available` (tokens each has).

    Raises ValueError, naming the languages, where no allocation can hold the cap: a pinned
    share above its cap, or a total larger than every language's cap together."""
    pinned = dict(pinned or {})
    missing = sorted(set(pinned) - set(available))
    if missing:
        raise ValueError(f"pinned languages {missing} are not among the phase's languages")
    if sum(pinned.values()) > 1 + 1e-9:
        raise ValueError(f"pinned shares add up to {sum(pinned.values()):.4f}, more than 1")
    free = {lang: float(n) for lang, n in available.items() if lang not in pinned and n > 0}
    if not free and not pinned:
        raise ValueError("no language has any text")
    _check_pinned(pinned, available, total, max_repeats)
    tokens = _water_fill(free, total * (1.0 - sum(pinned.values())), temperature, max_repeats)
    shares = pinned | {lang: n / total for lang, n in tokens.items()}
    ordered = dict(sorted(shares.items(), key=lambda kv: (-kv[1], kv[0])))
    return Allocation(ordered, {lang: float(available[lang]) for lang in ordered}, float(total))


def _check_pinned(pinned: dict[str, float], available: Mapping[str, float], total: float,
                  max_repeats: float | None) -> None:
    if max_repeats is None:
        return
    over = {lang: share * total / available[lang] for lang, share in pinned.items()
            if share * total > max_repeats * available[lang]}
    if over:
        named = ", ".join(f"{lang} ({times:.1f}x its {available[lang]:.3g} tokens)" for lang, times in over.items())
        raise ValueError(f"pinned shares would repeat {named}, beyond max_repeats {max_repeats:g}")


def _water_fill(sizes: dict[str, float], budget: float, temperature: float,
                max_repeats: float | None) -> dict[str, float]:
    """Tokens per language: `budget` spread by p ∝ n^τ, a language over max_repeats x n held
    there and the rest spread again over the others."""
    if not sizes or budget <= 0:
        return dict.fromkeys(sizes, 0.0)
    largest = max(sizes.values())
    open_langs = {lang: (n / largest) ** temperature for lang, n in sizes.items()}  # scaled: no underflow
    held: dict[str, float] = {}
    left = budget
    while open_langs and max_repeats is not None:
        norm = sum(open_langs.values())
        over = [lang for lang, w in open_langs.items() if left * w / norm > max_repeats * sizes[lang]]
        if not over:
            break
        for lang in over:
            held[lang] = max_repeats * sizes[lang]
            left -= held[lang]
            del open_langs[lang]
    if not open_langs and left > budget * 1e-9:
        raise ValueError(f"{budget:.4g} tokens cannot be drawn from these languages at most {max_repeats:g} times "
                         f"each ({sum(held.values()):.4g} tokens at most): raise max_repeats or lower the tokens")
    norm = sum(open_langs.values())
    return held | {lang: left * w / norm for lang, w in open_langs.items()}
