"""Stage `mix@<phase>`: the phase's languages, tokenized and cut into chunks on Ray Data,
sampled with its temperature (p ∝ n^τ, some shares pinned), packed into fixed-length rows
that record their document boundaries by Ray tasks, and written as MDS shards
(mosaicml-streaming's format, the one the official runs use) with a manifest (tokens per
language, target and realised shares, shard checksums). Text and tokens stay on disk: the
stage's memory does not grow with the corpus."""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import shutil
import tempfile
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmbert.chunking import ChunkRule
from mmbert.cli import output_dir, phase_stage_parser, require_phase, run_stage
from mmbert.config import PhaseData, PipelineConfig
from mmbert.io import atomic_dir, read_json, write_json
from mmbert.mixing.allocate import allocate
from mmbert.mixing.hub_budget import plan_hub_phase
from mmbert.mixing.hub_read import (
    describe_estimate,
    download_estimate,
    plan_files,
    planned_dataset,
    store_key,
)
from mmbert.mixing.pack import pack_on_ray
from mmbert.mixing.released import take_released
from mmbert.mixing.store import ChunkStore, ChunkStoreWriter
from mmbert.mixing.tokenize import configure_ray_data, tokenize_corpus, tokenize_dataset
from mmbert.schedules import active_languages
from mmbert.seeding import Stream, derive_seed, name_key
from mmbert.stages import write_record
from mmbert.tokenizer import load_tokenizer, special_ids
from mmbert.train import cluster

log = logging.getLogger("mmbert.mix")


def phase_languages(cfg: PipelineConfig, phase: str, corpus_dir: Path) -> list[str]:
    """The phase's languages, ranked by training text of the built corpus."""
    stats = read_json(corpus_dir / "stats.json")["per_language"]
    sizes = {lang: row["train_chars"] for lang, row in stats.items()}
    try:
        return active_languages(cfg.phases[phase].data.languages, sizes)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.languages: {exc}") from None


def sample_chunks(
    lengths: Mapping[str, Sequence[int]], probs: dict[str, float], total_tokens: int, seed: int,
    limits: Mapping[str, float] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """Draw chunks until the token budget is met, each language's tokens in proportion to its
    target probability. Returns the languages, the draws as (language index, chunk index)
    arrays, and the tokens taken per language.

    Weighted fair queueing rather than independent random draws: the next chunk comes from
    the language whose tokens, counting that chunk, are smallest relative to its target
    share. Realised token shares then track the targets within one chunk per language at
    any budget, where random draws scatter by tens of percent at small budgets. Each
    language's queue starts at a random fraction of its first chunk, so a language whose
    target is below one chunk is still drawn with the right probability instead of never
    (which would inflate everyone else's share). Each language walks its chunks in a fresh
    seeded order per pass, so a small language is repeated evenly (upsampled). A language
    leaves the queue before a chunk would take it past its limit (`limits`: tokens, the
    repetition cap), so the cap holds exactly, not only on average.
    """
    rng = random.Random(seed)
    langs = list(probs)
    orders: dict[str, list[int]] = {lang: [] for lang in langs}

    def next_length(lang: str) -> int:
        if not orders[lang]:
            orders[lang] = list(range(len(lengths[lang])))
            rng.shuffle(orders[lang])
        return int(lengths[lang][orders[lang][-1]]) + 2  # [CLS] chunk [SEP]

    taken: dict[str, int] = dict.fromkeys(langs, 0)
    head_start = {lang: rng.random() * next_length(lang) for lang in langs}
    queue = [((next_length(lang) - head_start[lang]) / probs[lang], i, lang) for i, lang in enumerate(langs)]
    heapq.heapify(queue)
    lang_index, chunk_index = array("i"), array("q")
    used = 0
    limits = limits or {}
    while used < total_tokens and queue:
        _, order, lang = heapq.heappop(queue)
        size = next_length(lang)
        if taken[lang] + size > limits.get(lang, float("inf")):
            continue  # at its cap: out of the queue
        lang_index.append(order)
        chunk_index.append(orders[lang].pop())
        taken[lang] += size
        used += size
        finish = taken[lang] + next_length(lang) - head_start[lang]
        heapq.heappush(queue, (finish / probs[lang], order, lang))
    return langs, np.asarray(lang_index, dtype=np.int32), np.asarray(chunk_index, dtype=np.int64), \
        {lang: n for lang, n in taken.items() if n}


def shard_listing(folder: Path) -> list[dict[str, object]]:
    """The shards of an MDS dataset as its index.json records them."""
    index = read_json(folder / "index.json")
    listed = []
    for shard in index["shards"]:
        stored = shard["zip_data"] or shard["raw_data"]
        listed.append({"file": stored["basename"], "rows": shard["samples"], "bytes": stored["bytes"],
                       "sha1": stored["hashes"].get("sha1")})
    return listed


class Progress:
    """Logs documents, chunks, tokens and tokens/s at most every `every` seconds."""

    def __init__(self, phase: str, every: float = 10.0) -> None:
        self.phase, self.every, self.last = phase, every, 0.0

    def __call__(self, documents: int, tokens: int, seconds: float, final: bool = False) -> None:
        if final or seconds - self.last >= self.every:
            self.last = seconds
            log.info("mix@%s: tokenized %d documents, %d tokens (%.0f tokens/s)", self.phase, documents, tokens,
                     tokens / max(seconds, 1e-9))


@dataclass
class Draws:
    """The chunks a phase packs, in order, and what they hold per language (or released set)."""

    keys: list[str]
    key_index: np.ndarray
    chunk_index: np.ndarray
    lengths: np.ndarray  # of each drawn chunk, without [CLS] and [SEP]
    languages: int
    per_language: dict[str, dict[str, float]] | None = None
    per_source: dict[str, dict[str, float]] | None = None  # released sets, or hub 'source:language'

    def reported(self) -> dict[str, object]:
        """The manifest's tables (a released set's languages are unknown: no per_language)."""
        tables = {"per_language": self.per_language, "per_source": self.per_source}
        return {name: table for name, table in tables.items() if table is not None}


def corpus_draws(cfg: PipelineConfig, phase: str, rule: ChunkRule, dtype: np.dtype, work: Path, cpus: int) -> Draws:
    """The corpus's documents in the phase's languages, tokenized on Ray, shared out by the
    allocation rule on the tokens each language has, and drawn."""
    data = cfg.phases[phase].data
    corpus_dir = output_dir(cfg, "corpus")
    languages = phase_languages(cfg, phase, corpus_dir)
    tokenize_corpus([corpus_dir / "train.jsonl"], languages, output_dir(cfg, "tokenizer"), rule,
                    ChunkStoreWriter(work, dtype), actors=cpus, progress=Progress(phase))
    store = ChunkStore(work, dtype)
    lengths = {lang: store.lengths(lang) for lang in languages}
    sizes = {lang: int(lengths[lang].sum()) for lang in languages}  # text tokens: p ∝ n^τ on the text
    one_pass = {lang: sizes[lang] + 2 * len(lengths[lang]) for lang in languages}  # as drawn: [CLS]/[SEP] in
    try:
        plan = allocate(sizes, data.tokens, data.temperature, data.max_repeats, data.pinned_shares)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data: {exc}") from None
    log_capped(phase, {lang: (plan.repeats(lang), sizes[lang]) for lang in plan.capped(data.max_repeats)},
               data.max_repeats)
    probs = {lang: share for lang, share in plan.shares.items() if share > 0}
    limits = {} if data.max_repeats is None else {lang: data.max_repeats * one_pass[lang] for lang in probs}
    langs, lang_index, chunk_index, taken = sample_chunks(
        lengths, probs, data.tokens, seed=derive_seed(cfg.seed, Stream.MIX, name_key(phase)), limits=limits)
    drawn = np.fromiter((lengths[langs[li]][ci] for li, ci in zip(lang_index, chunk_index)), dtype=np.int64,
                        count=len(lang_index))
    total = sum(taken.values())
    # every language with a target, drawn or not (a target below one chunk may draw nothing)
    per_key = {lang: {"available_tokens": one_pass[lang], "budget": round(plan.budget(lang)),
                      "target_share": plan.shares[lang], "tokens": taken.get(lang, 0),
                      "share": taken.get(lang, 0) / total, "repeats": taken.get(lang, 0) / one_pass[lang]}
               for lang in plan.shares}
    return Draws(langs, lang_index, chunk_index, drawn, len(languages), per_language=per_key)


def log_capped(phase: str, capped: dict[str, tuple[float, float]], max_repeats: float | None) -> None:
    """Name the languages (or source:language) held at the repetition cap, before any download."""
    if not capped:
        return
    named = ", ".join(f"{key} ({have:.3g} tokens)" for key, (_, have) in list(capped.items())[:12])
    more = f" and {len(capped) - 12} more" if len(capped) > 12 else ""
    log.info("mix@%s: %d held at max_repeats %g (the temperature would repeat them more): %s%s", phase,
             len(capped), max_repeats, named, more)


def released_draws(cfg: PipelineConfig, phase: str, rule: ChunkRule, dtype: np.dtype, work: Path,
                   vocab_size: int) -> Draws:
    """The released sets' documents, in their order, up to the phase's token budget."""
    data = cfg.phases[phase].data
    writer = ChunkStoreWriter(work, dtype)
    taken = take_released(data.released, data.tokens, rule, vocab_size, writer, work / "download")
    writer.close()
    store = ChunkStore(work, dtype)
    keys = list(taken)
    lengths = [store.lengths(key) for key in keys]
    key_index = np.concatenate([np.full(len(n), k, dtype=np.int32) for k, n in enumerate(lengths)])
    chunk_index = np.concatenate([np.arange(len(n), dtype=np.int64) for n in lengths])
    total = max(1, sum(taken.values()))
    per_key = {key: {"target_share": 1 / len(keys), "tokens": taken[key], "share": taken[key] / total} for key in keys}
    return Draws(keys, key_index, chunk_index, np.concatenate(lengths).astype(np.int64), 0, per_source=per_key)


def hub_draws(cfg: PipelineConfig, phase: str, rule: ChunkRule, dtype: np.dtype, work: Path, cpus: int) -> Draws:
    """The phase's budgets of each hub source and language: planned files only, downloaded
    and tokenized on Ray, then drawn in proportion to the budgets."""
    data = cfg.phases[phase].data
    languages, sources, plan = plan_hub_phase(cfg, phase, list_sources=True)
    log_capped(phase, {store_key(*key): (plan.repeats(key), plan.available[key])
                       for key in plan.capped(data.max_repeats)}, data.max_repeats)
    budgets = {key: n for key, n in plan.tokens.items() if n > 0}
    planned = plan_files(sources, budgets, cfg.corpus.hub.plan_margin)
    estimate = download_estimate(sources, planned, cfg.runtime.download_mb_per_s)
    log.info(describe_estimate(phase, estimate, cfg.runtime.download_mb_per_s))
    keys = [store_key(*key) for key in budgets]
    configure_ray_data()
    tokenize_dataset(planned_dataset(sources, planned), keys, output_dir(cfg, "tokenizer"), rule,
                     ChunkStoreWriter(work, dtype), cpus, progress=Progress(phase))
    store = ChunkStore(work, dtype)
    lengths = {key: store.lengths(key) for key in keys}
    empty = [key for key in keys if not len(lengths[key])]
    if empty:
        raise ValueError(f"mix@{phase}: no text read for {empty[:8]} (their planned files hold no document)")
    total_budget = sum(budgets.values())
    probs = {store_key(*key): n / total_budget for key, n in budgets.items()}
    read = {key: int(lengths[key].sum() + 2 * len(lengths[key])) for key in keys}
    # the cap on what was read (the whole of a capped language: its budget plans every file)
    limits = {} if data.max_repeats is None else {
        store_key(*key): data.max_repeats * read[store_key(*key)] for key in budgets if key in plan.available}
    langs, key_index, chunk_index, taken = sample_chunks(
        lengths, probs, data.tokens, seed=derive_seed(cfg.seed, Stream.MIX, name_key(phase)), limits=limits)
    drawn = np.fromiter((lengths[langs[k]][c] for k, c in zip(key_index, chunk_index)), dtype=np.int64,
                        count=len(key_index))
    total = sum(taken.values())
    files: dict[str, list] = {key: [] for key in keys}
    for file in planned:
        files[file.key].append(file)
    per_key = {}
    for key in taken:
        source_lang = tuple(key.split(":", 1))
        available = plan.available.get(source_lang)  # None: a one-language source, a whole dataset
        per_key[key] = {"budget": budgets[source_lang], "available_tokens": available,
                        "repeats_planned": plan.repeats(source_lang), "target_share": probs[key],
                        "tokens_read": read[key], "tokens": taken[key], "repeats": taken[key] / read[key],
                        "share": taken[key] / total, "files": len(files[key]), "bytes": sum(f.size for f in files[key])}
    return Draws(langs, key_index, chunk_index, drawn, len(languages), per_language=by_language(per_key),
                 per_source=per_key)


def by_language(per_key: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """A hub mix's per-language table: sums over its sources, the tokens its per-language sources
    have (None: only whole-dataset sources feed it) and the most any of them is repeated."""
    table: dict[str, dict[str, object]] = {}
    for key, row in per_key.items():
        lang = table.setdefault(key.split(":", 1)[1], {"tokens": 0, "share": 0.0, "target_share": 0.0, "budget": 0,
                                                       "available_tokens": None, "repeats": None})
        for field in ("tokens", "share", "target_share", "budget"):
            lang[field] += row[field]
        if row["available_tokens"] is not None:
            lang["available_tokens"] = (lang["available_tokens"] or 0) + row["available_tokens"]
            lang["repeats"] = max(lang["repeats"] or 0.0, row["repeats"])
    return table


def build_mix(cfg: PipelineConfig, phase: str, folder: Path, work: Path) -> dict[str, object]:
    """Tokenize (or take released tokens), sample, pack and write the phase's rows into
    `folder` (`work` holds the tokenized chunks meanwhile); returns the manifest."""
    import ray

    data = cfg.phases[phase].data
    tokenizer = load_tokenizer(output_dir(cfg, "tokenizer"))
    ids = special_ids(tokenizer)
    rule = ChunkRule(data.seq_len - 2, cfg.mix.chunk_min_tokens, cfg.mix.chunk_drop_below)
    dtype = np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32)
    started = time.perf_counter()
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if data.released:
        draws = released_draws(cfg, phase, rule, dtype, work, len(tokenizer))
    elif data.sources:
        draws = hub_draws(cfg, phase, rule, dtype, work, cpus)
    else:
        draws = corpus_draws(cfg, phase, rule, dtype, work, cpus)
    log.info("mix@%s: %d chunks drawn in %.1f s; packing in Ray tasks", phase, len(draws.lengths),
             time.perf_counter() - started)
    settings = {"seq_len": data.seq_len, "buffer_rows": cfg.mix.pack_buffer_rows, "cls": ids.cls, "sep": ids.sep,
                "pad": ids.pad, "compression": cfg.mix.compression, "shard_size_limit": cfg.mix.shard_size_limit}
    written = pack_on_ray(work, dtype, draws.keys, draws.key_index, draws.chunk_index, draws.lengths, folder,
                          settings, cfg.mix.pack_task_tokens)
    log.info("mix@%s: %d rows written by %d task(s), %.1f s in all", phase, written["rows"], written["tasks"],
             time.perf_counter() - started)
    tokens = int(draws.lengths.sum() + 2 * len(draws.lengths))
    return {
        "phase": phase,
        "format": "mds",
        "source": mix_source(data),
        "columns": {"input_ids": dtype.name, "cu_seqlens": "int32"},
        "seq_len": data.seq_len,
        "rows": written["rows"],
        "chunks": int(len(draws.lengths)),
        "tokens": tokens,
        "temperature": data.temperature,
        "languages": draws.languages,
        "packing_efficiency": written["real_tokens"] / max(1, written["rows"] * data.seq_len),
        "vocab_size": len(tokenizer),
        "pack_tasks": written["tasks"],
        **draws.reported(),
        "languages_sampled": sum(1 for row in (draws.per_language or draws.per_source or {}).values() if row["tokens"]),
        "shards": shard_listing(folder),
    }


def mix_source(data: PhaseData) -> object:
    if data.released:
        return {"released": data.released}
    if data.sources:
        return {"hub": data.sources}
    return "corpus"


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    phase = require_phase(cfg, args.phase)
    target = output_dir(cfg, "mix", phase)
    cluster.ensure_connected(cfg.runtime)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{phase}.chunks.", dir=target.parent))  # beside the output: same disk
    try:
        with atomic_dir(target) as tmp:
            manifest = build_mix(cfg, phase, tmp, work)
            write_json(tmp / "manifest.json", manifest)
            write_record(tmp, cfg, f"mix@{phase}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    top = list((manifest.get("per_language") or manifest["per_source"]).items())[:5]
    log.info(
        "mix@%s: %d languages, %d sequences of %d tokens (%.1f%% packed), top shares %s -> %s",
        phase, manifest["languages"], manifest["rows"], manifest["seq_len"], 100 * manifest["packing_efficiency"],
        ", ".join(f"{lang} {row['share']:.3f}" for lang, row in top), target,
    )


if __name__ == "__main__":
    run_stage(main, phase_stage_parser(__doc__))
