"""How many tokens a hub phase takes from each (source, language), known before anything is
read, so that only the files those budgets need are ever downloaded.

`data.sources` gives each source its share of the phase's tokens (the paper's mixture
table). A source of one language (English web, code, ...) puts its share on that language.
A per-language source (FineWeb2, MegaWika) spreads its share over the phase's languages it
holds by the project's one rule (mmbert.mixing.allocate): temperature on the tokens each
language has (mmbert.mixing.sizes), no language beyond `data.max_repeats` times its tokens,
the share a capped language frees given to the others. `pinned_shares` fix a language's
total share: its one-language sources keep their relative weights, it takes no share of a
per-language source, and every other language is scaled to fill the rest before the
per-language sources are spread, so the cap holds on the final budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmbert.config import PhaseData, PipelineConfig
from mmbert.corpus.hub_catalog import CATALOG, holds, subset_name
from mmbert.mixing.allocate import allocate
from mmbert.mixing.sizes import language_tokens
from mmbert.schedules import active_languages

Key = tuple[str, str]  # (source, language)


@dataclass(frozen=True)
class HubBudgets:
    """Tokens per (source, language), with the tokens a per-language source has of each
    (one-language sources are whole datasets: no size, no cap)."""

    tokens: dict[Key, int]
    available: dict[Key, float]

    def repeats(self, key: Key) -> float | None:
        have = self.available.get(key)
        return self.tokens[key] / have if have else None

    def capped(self, max_repeats: float | None) -> list[Key]:
        if max_repeats is None:
            return []
        held = [key for key in self.available if (self.repeats(key) or 0) >= max_repeats * (1 - 1e-6)]
        return sorted(held, key=lambda key: (-(self.repeats(key) or 0), key))


def hub_language_sizes(sources: list[str], table: str, measured: dict[Key, float] | None = None) -> dict[str, float]:
    """Every language the sources can provide, with a size for ranking ('N largest'): a
    one-language source's language ranks first (it is fed by a whole dataset)."""
    sizes = dict(language_tokens(table)) if any(CATALOG[s].language is None for s in sources) else {}
    for (name, lang), tokens in (measured or {}).items():
        sizes.setdefault(lang, tokens)
    top = max(sizes.values(), default=0) + 1
    for name in sources:
        if (lang := CATALOG[name].language) is not None:
            sizes[lang] = top
    return sizes


def hub_phase_languages(data: PhaseData, table: str, measured: dict[Key, float] | None = None) -> list[str]:
    return active_languages(data.languages, hub_language_sizes(list(data.sources), table, measured))


def measured_tokens(data: PhaseData, table: str, sources: dict) -> dict[Key, float]:
    """Tokens of the languages a phase lists that no size table knows, from the files of a
    per-language source's local copy (bytes x the source's tokens per byte): your own text,
    laid out as the source's subsets under runtime.hub_dir."""
    if not isinstance(data.languages, list):
        return {}
    known = language_tokens(table)
    unknown = [lang for lang in data.languages if not lang.startswith("paper:") and lang not in known]
    measured = {}
    for name, source in sources.items():
        root = source.local_root()
        if source.spec.language is not None or root is None or not root.is_dir():
            continue
        for lang in unknown:
            files = sorted(root.glob(source.spec.files_pattern(subset_name(source.spec, lang))))
            if files:
                measured[(name, lang)] = sum(f.stat().st_size for f in files) * source.spec.tokens_per_byte
    return measured


def hub_budgets(data: PhaseData, languages: list[str], table: str, held: dict[str, list[str]] | None = None,
                measured: dict[Key, float] | None = None) -> HubBudgets:
    """Budgets for the phase; they sum to data.tokens (± rounding). `held` restricts a
    per-language source to the languages it has (FineWeb2's are its table's); `measured`
    gives the tokens of languages no table knows, from the files of a local copy."""
    sizes = language_tokens(table)
    pools = _per_language_pools(data, languages, held or {}, sizes, measured or {})
    fixed = {(name, CATALOG[name].language): share for name, share in data.sources.items()
             if CATALOG[name].language in set(languages)}
    _check_covered(data, languages, fixed, pools)
    scale = _scales(data, fixed, pools)
    tokens: dict[Key, int] = {key: round(share * scale[key[1]] * data.tokens) for key, share in fixed.items()}
    available: dict[Key, float] = {}
    for name, pool in pools.items():
        budget = data.sources[name] * scale[None] * data.tokens
        try:
            spread = allocate(pool, budget, data.temperature, data.max_repeats)
        except ValueError as exc:
            raise ValueError(f"sources.{name}: {exc}") from None
        tokens.update({(name, lang): round(spread.budget(lang)) for lang in spread.shares})
        available.update({(name, lang): pool[lang] for lang in spread.shares})
    return HubBudgets(tokens, available)


def _per_language_pools(data: PhaseData, languages: list[str], held_by: dict[str, list[str]],
                        sizes: dict[str, float], measured: dict[Key, float]) -> dict[str, dict[str, float]]:
    """Per per-language source: the phase's unpinned languages it has, with their tokens."""
    pools = {}
    for name in data.sources:
        if CATALOG[name].language is not None:
            continue
        known = {lang for lang in languages if holds(CATALOG[name], lang)}
        has = set(held_by[name]) if name in held_by else known
        tokens = {code: sizes.get(code) or measured.get((name, code)) for code in languages}
        pool = {code: n for code, n in tokens.items() if n and code in has and code not in data.pinned_shares}
        if not pool:
            raise ValueError(f"sources.{name}: none of the phase's languages is one of its subsets")
        pools[name] = pool
    return pools


def _check_covered(data: PhaseData, languages: list[str], fixed: dict[Key, float],
                   pools: dict[str, dict[str, float]]) -> None:
    provided = {lang for _, lang in fixed} | {lang for pool in pools.values() for lang in pool}
    missing = sorted(set(data.pinned_shares) - {lang for _, lang in fixed})
    if missing:
        raise ValueError(f"pinned_shares {missing}: no one-language source of data.sources provides them")
    uncovered = sorted(set(languages) - provided)
    if uncovered:
        raise ValueError(f"languages {uncovered[:8]} are provided by no source of data.sources "
                         f"({sorted(data.sources)})")


def _scales(data: PhaseData, fixed: dict[Key, float], pools: dict[str, dict[str, float]]) -> dict[str | None, float]:
    """Multiplier of each pinned language's sources, and (key None) of everything else."""
    raw: dict[str, float] = {}
    for (_, lang), share in fixed.items():
        raw[lang] = raw.get(lang, 0.0) + share
    free_raw = sum(share for (_, lang), share in fixed.items() if lang not in data.pinned_shares)
    free_raw += sum(data.sources[name] for name in pools)
    if not free_raw:
        raise ValueError(f"every source feeds a pinned language; nothing fills the other "
                         f"{1 - sum(data.pinned_shares.values()):.3f} of the phase")
    scale: dict[str | None, float] = {None: (1.0 - sum(data.pinned_shares.values())) / free_raw}
    scale.update({lang: data.pinned_shares[lang] / raw[lang] for lang in data.pinned_shares})
    for (_, lang) in fixed:
        scale.setdefault(lang, scale[None])
    return scale


def plan_hub_phase(cfg: PipelineConfig, phase: str, list_sources: bool) -> tuple[list[str], dict, HubBudgets]:
    """A hub phase's languages, sources and budgets. `list_sources`: ask each per-language
    source (but FineWeb2, whose table says it) which of the languages it has; without it (the
    check before any stage) a source's card list stands in."""
    from mmbert.corpus.hub_sources import hub_source

    data, hub, table = cfg.phases[phase].data, cfg.corpus.hub, cfg.corpus.hub.sizes
    sources = {name: hub_source(name, hub.revisions, cfg.runtime.hub_dir, [], detokenizer=hub.detokenizer,
                                patterns=hub.patterns) for name in data.sources}
    measured = measured_tokens(data, table, sources)
    try:
        languages = hub_phase_languages(data, table, measured)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.languages: {exc}") from None
    for source in sources.values():
        source.subsets = languages
    held = {name: source.present(languages) for name, source in sources.items()
            if list_sources and source.spec.language is None and name != "fineweb2"}
    try:
        return languages, sources, hub_budgets(data, languages, table, held, measured)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data: {exc}") from None
