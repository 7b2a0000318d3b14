"""Stage `mix@<phase>`: the phase's languages, sampled with its temperature
(p ∝ n^τ, some shares pinned), tokenized, packed into fixed-length sequences and written
as shards with a manifest (tokens per language, target shares, checksums)."""

from __future__ import annotations

import argparse
import heapq
import logging
import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from mmbert.cli import output_dir, phase_stage_parser, require_phase, run_stage
from mmbert.config import PipelineConfig
from mmbert.io import atomic_dir, read_json, read_jsonl, sha256_file, write_json
from mmbert.packing import pack_documents, packing_efficiency
from mmbert.schedules import active_languages, temperature_probabilities
from mmbert.seeding import Stream, derive_seed, name_key
from mmbert.stages import write_record
from mmbert.tokenizer import load_tokenizer, special_ids

log = logging.getLogger("mmbert.mix")
ROWS_PER_SHARD = 4096


def phase_languages(cfg: PipelineConfig, phase: str, corpus_dir: Path) -> list[str]:
    """The phase's languages, ranked by training text of the built corpus."""
    stats = read_json(corpus_dir / "stats.json")["per_language"]
    sizes = {lang: row["train_chars"] for lang, row in stats.items()}
    try:
        return active_languages(cfg.phases[phase].data.languages, sizes)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.languages: {exc}") from None


def tokenized_documents(corpus_dir: Path, languages: list[str], tokenizer) -> dict[str, list[list[int]]]:
    wanted = set(languages)
    texts: dict[str, list[str]] = defaultdict(list)
    for row in read_jsonl(corpus_dir / "train.jsonl"):
        if row["lang"] in wanted:
            texts[row["lang"]].append(row["text"])
    return {
        lang: tokenizer(texts[lang], add_special_tokens=False)["input_ids"] for lang in languages
    }


def sample_documents(
    docs: dict[str, list[list[int]]], probs: dict[str, float], total_tokens: int, seed: int
) -> tuple[list[list[int]], dict[str, int]]:
    """Draw documents until the token budget is met, each language's tokens in proportion to
    its target probability.

    Weighted fair queueing rather than independent random draws: the next document comes from
    the language whose tokens, counting that document, are smallest relative to its target
    share. Realised token shares then track the targets within one document per language at
    any budget, where random draws scatter by tens of percent at small budgets. Each
    language's queue starts at a random fraction of its first document, so a language whose
    target is below one document is still drawn with the right probability instead of never
    (which would inflate everyone else's share). Each language walks its documents in a fresh
    seeded order per pass, so a small language is repeated evenly (upsampled).
    """
    rng = random.Random(seed)
    orders: dict[str, list[int]] = {lang: [] for lang in probs}

    def next_doc(lang: str) -> list[int]:
        if not orders[lang]:
            orders[lang] = list(range(len(docs[lang])))
            rng.shuffle(orders[lang])
        return docs[lang][orders[lang][-1]]

    taken: dict[str, int] = dict.fromkeys(probs, 0)
    head_start = {lang: rng.random() * (len(next_doc(lang)) + 2) for lang in probs}
    queue = [((len(next_doc(lang)) + 2 - head_start[lang]) / p, i, lang) for i, (lang, p) in enumerate(probs.items())]
    heapq.heapify(queue)
    chosen: list[list[int]] = []
    used = 0
    while used < total_tokens:
        _, order, lang = heapq.heappop(queue)
        doc = docs[lang][orders[lang].pop()]
        chosen.append(doc)
        taken[lang] += len(doc) + 2  # [CLS] doc [SEP]
        used += len(doc) + 2
        finish = taken[lang] + len(next_doc(lang)) + 2 - head_start[lang]
        heapq.heappush(queue, (finish / probs[lang], order, lang))
    return chosen, {lang: n for lang, n in taken.items() if n}


def write_shards(packed: np.ndarray, folder: Path) -> list[dict[str, object]]:
    shards = []
    for index, start in enumerate(range(0, len(packed), ROWS_PER_SHARD)):
        path = folder / f"shard_{index:05d}.npy"
        np.save(path, packed[start : start + ROWS_PER_SHARD])
        shards.append({"file": path.name, "rows": int(min(ROWS_PER_SHARD, len(packed) - start)), "sha256": sha256_file(path)})
    return shards


def build_mix(cfg: PipelineConfig, phase: str) -> tuple[np.ndarray, dict[str, object]]:
    data = cfg.phases[phase].data
    corpus_dir = output_dir(cfg, "corpus")
    tokenizer = load_tokenizer(output_dir(cfg, "tokenizer"))
    ids = special_ids(tokenizer)
    languages = phase_languages(cfg, phase, corpus_dir)
    docs = tokenized_documents(corpus_dir, languages, tokenizer)
    sizes = {lang: sum(len(d) for d in lang_docs) for lang, lang_docs in docs.items()}
    try:
        probs = temperature_probabilities(sizes, data.temperature, data.pinned_shares)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.pinned_shares: {exc}") from None
    chosen, taken = sample_documents(docs, probs, data.tokens, seed=derive_seed(cfg.seed, Stream.MIX, name_key(phase)))
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
    packed = pack_documents(chosen, data.seq_len, cls_id=ids.cls, sep_id=ids.sep, pad_id=ids.pad, dtype=np.dtype(dtype))
    total = sum(taken.values())
    manifest = {
        "phase": phase,
        "seq_len": data.seq_len,
        "rows": int(len(packed)),
        "tokens": int(total),
        "temperature": data.temperature,
        "languages": len(languages),
        "packing_efficiency": packing_efficiency(packed, ids.pad),
        "vocab_size": len(tokenizer),
        "per_language": {
            lang: {"corpus_tokens": sizes[lang], "target_share": probs[lang], "tokens": taken[lang], "share": taken[lang] / total}
            for lang in taken
        },
        "languages_sampled": len(taken),
    }
    return packed, manifest


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    phase = require_phase(cfg, args.phase)
    packed, manifest = build_mix(cfg, phase)
    target = output_dir(cfg, "mix", phase)
    with atomic_dir(target) as tmp:
        manifest["shards"] = write_shards(packed, tmp)
        write_json(tmp / "manifest.json", manifest)
        write_record(tmp, cfg, f"mix@{phase}")
    top = list(manifest["per_language"].items())[:5]
    log.info(
        "mix@%s: %d languages, %d sequences of %d tokens (%.1f%% packed), top shares %s -> %s",
        phase, manifest["languages"], manifest["rows"], manifest["seq_len"], 100 * manifest["packing_efficiency"],
        ", ".join(f"{lang} {row['share']:.3f}" for lang, row in top), target,
    )


if __name__ == "__main__":
    run_stage(main, phase_stage_parser(__doc__))
