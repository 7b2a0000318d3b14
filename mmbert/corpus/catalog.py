"""Which languages the configured corpus can offer, known before the corpus is built, so
that a phase or an evaluation asking for more than the corpus holds fails before any
stage runs."""

from __future__ import annotations

from functools import lru_cache

from mmbert.config import ConfigError, PipelineConfig
from mmbert.corpus.paper_languages import paper_column, paper_languages
from mmbert.corpus.sources import build_sources

PARALLEL_SOURCES = {"django"}  # sources whose documents share keys with English (bitext)


@lru_cache(maxsize=8)
def available_languages(sources: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(source.languages() for source in build_sources(list(sources))))


def _unknown_hub_names(cfg: PipelineConfig) -> list[str]:
    from mmbert.corpus.hub_catalog import CATALOG

    tables = {"corpus.hub.revisions": cfg.corpus.hub.revisions, "corpus.hub.patterns": cfg.corpus.hub.patterns}
    tables |= {f"phases.{name}.data.sources": phase.data.sources for name, phase in cfg.phases.items()}
    return [f"{key} names {unknown}; hub sources are {sorted(CATALOG)}" for key, table in tables.items()
            if (unknown := sorted(set(table) - set(CATALOG)))]


def _hub_problems(cfg: PipelineConfig, name: str) -> list[str]:
    """A hub phase: its languages exist in its sources, every budget has a source, and every
    source has a revision and a copy to read (local, or a reachable hub)."""
    from mmbert.corpus.hub_sources import SourceUnavailable, hub_reachable
    from mmbert.mixing.hub_budget import plan_hub_phase

    try:
        _, sources, _ = plan_hub_phase(cfg, name, list_sources=False)
    except ValueError as exc:
        message = str(exc)
        return [message if message.startswith("phases.") else f"phases.{name}.data.sources: {message}"]
    problems = []
    for source in sources.values():
        root = source.local_root()
        if (root is None or not root.is_dir()) and (why := hub_reachable()) is not None:
            problems.append(SourceUnavailable(source.unavailable_message(why)).args[0])
    return problems


def _phase_problems(cfg: PipelineConfig, available: frozenset[str]) -> list[str]:
    problems = []
    for name, phase in cfg.phases.items():
        if phase.data.sources:
            problems.extend(_hub_problems(cfg, name))
            continue
        if phase.data.released:
            continue  # the released sets' languages are what they are
        selection = phase.data.languages
        key = f"phases.{name}.data.languages"
        if (column := paper_column(selection)) is not None:
            selection = paper_languages(column)
            missing = [lang for lang in selection if lang not in available]
            if missing:
                problems.append(f"{key} = paper:{column}: {len(missing)} of its {len(selection)} languages are not in "
                                f"the corpus (sources {cfg.corpus.sources}), e.g. {missing[:5]}")
            outside = sorted(set(phase.data.pinned_shares) - set(selection))
            if outside:
                problems.append(f"phases.{name}.data.pinned_shares: {outside} not among paper:{column}'s languages")
        elif isinstance(selection, list):
            missing = sorted(set(selection) - available)
            if missing:
                problems.append(f"{key}: {missing} not in the corpus (sources {cfg.corpus.sources})")
        elif isinstance(selection, int) and selection > len(available):
            problems.append(f"{key} = {selection}: the corpus has only {len(available)} languages")
        missing = sorted(set(phase.data.pinned_shares) - available)
        if missing:
            problems.append(f"phases.{name}.data.pinned_shares: {missing} not in the corpus")
    return problems


def check_corpus_fits(cfg: PipelineConfig, source: str = "params.yaml") -> None:
    if unknown := _unknown_hub_names(cfg):
        raise ConfigError(f"{source}: " + "; ".join(unknown))
    available = available_languages(tuple(cfg.corpus.sources))
    problems = _phase_problems(cfg, available)
    if cfg.eval.langid.languages > len(available):
        problems.append(f"eval.langid.languages = {cfg.eval.langid.languages}: the corpus has only "
                        f"{len(available)} languages")
    if not PARALLEL_SOURCES & set(cfg.corpus.sources):
        problems.append(f"corpus.sources = {cfg.corpus.sources}: bitext retrieval (eval.bitext) needs a "
                        f"parallel source, one of {sorted(PARALLEL_SOURCES)}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
