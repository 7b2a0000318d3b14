"""Schedules as pure functions of tokens seen (the paper counts in tokens, not steps).

Tokens rather than steps keep the LR schedule fixed while the batch size warms up.
"""

from __future__ import annotations

import math
from typing import Literal

from mmbert.config import BatchConfig, LRConfig, PhaseConfig, PipelineConfig
from mmbert.corpus.paper_languages import paper_column, paper_languages

Decay = Literal["none", "linear", "one_minus_sqrt"]


def lr_at(
    tokens: int,
    *,
    peak: float,
    total_tokens: int,
    warmup_tokens: int = 0,
    decay: Decay = "none",
    decay_tokens: int = 0,
    final_fraction: float = 0.0,
) -> float:
    """Warmup-stable-decay: linear warmup, constant, then a decay over the last window.

    1−sqrt decay: lr = peak·[α + (1−α)·(1 − sqrt(s))], s = progress through the window;
    linear decay: lr = peak·[α + (1−α)·(1 − s)]; α = final_fraction.
    """
    if warmup_tokens and tokens < warmup_tokens:
        return peak * tokens / warmup_tokens
    decay_start = total_tokens - decay_tokens
    if decay == "none" or decay_tokens == 0 or tokens < decay_start:
        return peak
    progress = min(1.0, (tokens - decay_start) / decay_tokens)
    shape = 1.0 - math.sqrt(progress) if decay == "one_minus_sqrt" else 1.0 - progress
    return peak * (final_fraction + (1.0 - final_fraction) * shape)


def phase_lr_at(tokens: int, lr: LRConfig, total_tokens: int) -> float:
    return lr_at(
        tokens,
        peak=lr.peak,
        total_tokens=total_tokens,
        warmup_tokens=lr.warmup_tokens,
        decay=lr.decay,
        decay_tokens=lr.decay_tokens,
        final_fraction=lr.final_fraction,
    )


def batch_size_at(tokens: int, batch: BatchConfig, workers: int = 1) -> int:
    """Global batch (sequences) after `tokens` tokens of the phase, by `batch.warmup`:

    - none: always `size`;
    - linear: a ramp from warmup_from to size over warmup_tokens, rounded down to a
      multiple of the worker count so every worker gets the same share;
    - micro_batches (the official schedule): k micro-batches per worker, k = 1, 2, ...,
      K-1, then K = size / (workers x micro_batch_size); size k is held while the tokens
      seen are below warmup_tokens x (1 + ... + k) / (1 + ... + K-1), so every size lasts
      the same number of steps.
    """
    if batch.warmup == "none" or tokens >= batch.warmup_tokens:
        return batch.size
    if batch.warmup == "linear":
        size = batch.warmup_from + (batch.size - batch.warmup_from) * tokens / batch.warmup_tokens
        return max(workers, int(size) // workers * workers)
    unit = workers * batch.micro_batch_size
    steps_up = batch.size // unit - 1
    total = steps_up * (steps_up + 1) // 2
    for k in range(1, steps_up + 1):
        if tokens * total < batch.warmup_tokens * (k * (k + 1) // 2):
            return k * unit
    return batch.size


def temperature_probabilities(
    sizes: dict[str, float], temperature: float, pinned: dict[str, float] | None = None
) -> dict[str, float]:
    """p(lang) ∝ (n_lang / N)^τ; pinned languages take fixed shares, the rest share the remainder."""
    pinned = dict(pinned or {})
    missing = sorted(set(pinned) - set(sizes))
    if missing:
        raise ValueError(f"pinned languages {missing} are not among the phase's languages")
    free = {lang: n for lang, n in sizes.items() if lang not in pinned and n > 0}
    if not free and not pinned:
        raise ValueError("no language has any text")
    total = sum(free.values())
    weights = {lang: (n / total) ** temperature for lang, n in free.items()}
    norm = sum(weights.values())
    remainder = 1.0 - sum(pinned.values())
    probs = {lang: remainder * w / norm for lang, w in weights.items()}
    probs.update(pinned)
    return dict(sorted(probs.items(), key=lambda kv: (-kv[1], kv[0])))


def active_languages(selection: str | int | list[str], sizes: dict[str, int]) -> list[str]:
    """The languages a phase trains on: 'all', the N largest (ties by code), the paper's
    list of a phase ('paper:ext'), or a list (which may start from a paper list:
    ['paper:decay-all', 'xyz_Latn'])."""
    ranked = sorted(sizes, key=lambda lang: (-sizes[lang], lang))
    if selection == "all":
        return ranked
    if (column := paper_column(selection)) is not None:
        selection = paper_languages(column)
    if isinstance(selection, int):
        if selection > len(ranked):
            raise ValueError(f"asked for the {selection} largest languages; the corpus has {len(ranked)}")
        return ranked[:selection]
    # a list may hold a paper selection too: the paper's languages of a phase plus your own
    selection = list(dict.fromkeys(lang for item in selection for lang in _expand(item)))
    missing = sorted(set(selection) - set(sizes))
    if missing:
        raise ValueError(f"languages {missing} are not in the corpus")
    return list(selection)


def _expand(item: str) -> list[str]:
    column = paper_column(item)
    return paper_languages(column) if column is not None else [item]


def curriculum(cfg: PipelineConfig) -> list[dict[str, object]]:
    """One row per phase: the annealed knobs side by side (mask rate, τ, languages, θ)."""
    return [
        {
            "phase": name,
            "init_from": phase.init_from,
            "mask_rate": phase.mask_rate,
            "temperature": phase.data.temperature,
            "languages": phase.data.languages,
            "tokens": phase.data.tokens,
            "seq_len": phase.data.seq_len,
            "rope_theta_global": phase.rope_theta_global,
            "rope_theta_local": phase.rope_theta_local,
            "peak_lr": phase.lr.peak,
        }
        for name, phase in cfg.phases.items()
    ]


def phase_steps(phase: PhaseConfig, workers: int = 1) -> list[tuple[int, int, float]]:
    """(batch size, tokens before the step, lr) for every optimizer step of a phase."""
    steps, tokens = [], 0
    while tokens < phase.data.tokens:
        size = batch_size_at(tokens, phase.batch, workers)
        steps.append((size, tokens, phase_lr_at(tokens, phase.lr, phase.data.tokens)))
        tokens += size * phase.data.seq_len
    return steps
