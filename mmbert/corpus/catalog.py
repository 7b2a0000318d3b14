"""Which languages the configured corpus can offer, known before the corpus is built,
so that a phase asking for a language the corpus lacks fails before any stage runs."""

from __future__ import annotations

from functools import lru_cache

from mmbert.config import ConfigError, PipelineConfig
from mmbert.corpus.sources import build_sources


@lru_cache(maxsize=8)
def available_languages(sources: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(source.languages() for source in build_sources(list(sources))))


def check_phase_languages(cfg: PipelineConfig, source: str = "params.yaml") -> None:
    available = available_languages(tuple(cfg.corpus.sources))
    problems = []
    for name, phase in cfg.phases.items():
        selection = phase.data.languages
        key = f"phases.{name}.data.languages"
        if isinstance(selection, list):
            missing = sorted(set(selection) - available)
            if missing:
                problems.append(f"{key}: {missing} not in the corpus (sources {cfg.corpus.sources})")
        elif isinstance(selection, int) and selection > len(available):
            problems.append(f"{key} = {selection}: the corpus has only {len(available)} languages")
        missing = sorted(set(phase.data.pinned_shares) - available)
        if missing:
            problems.append(f"phases.{name}.data.pinned_shares: {missing} not in the corpus")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
