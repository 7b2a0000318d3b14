"""Stage `mix@<phase>`: the phase's languages, tokenized and cut into chunks, sampled with
its temperature (p ∝ n^τ, some shares pinned), packed into fixed-length rows that record
their document boundaries, and written as MDS shards (mosaicml-streaming's format, the one
the official runs use) with a manifest (tokens per language, target and realised shares,
shard checksums)."""

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
from mmbert.io import atomic_dir, read_json, read_jsonl, write_json
from mmbert.chunking import BestFitPacker, ChunkRule, chunk_document, pack_chunks
from mmbert.mds import streaming_base
from mmbert.schedules import active_languages, temperature_probabilities
from mmbert.seeding import Stream, derive_seed, name_key
from mmbert.stages import write_record
from mmbert.tokenizer import load_tokenizer, special_ids

log = logging.getLogger("mmbert.mix")
HASHES = ["sha1", "xxh64"]  # recorded per shard in index.json; readers verify downloads with sha1


def phase_languages(cfg: PipelineConfig, phase: str, corpus_dir: Path) -> list[str]:
    """The phase's languages, ranked by training text of the built corpus."""
    stats = read_json(corpus_dir / "stats.json")["per_language"]
    sizes = {lang: row["train_chars"] for lang, row in stats.items()}
    try:
        return active_languages(cfg.phases[phase].data.languages, sizes)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.languages: {exc}") from None


def tokenized_chunks(corpus_dir: Path, languages: list[str], tokenizer, rule: ChunkRule) -> dict[str, list[list[int]]]:
    """Each language's training documents, tokenized and cut into chunks (the unit sampled)."""
    wanted = set(languages)
    texts: dict[str, list[str]] = defaultdict(list)
    for row in read_jsonl(corpus_dir / "train.jsonl"):
        if row["lang"] in wanted:
            texts[row["lang"]].append(row["text"])
    chunks: dict[str, list[list[int]]] = {}
    for lang in languages:
        docs = tokenizer(texts[lang], add_special_tokens=False)["input_ids"] if texts[lang] else []
        chunks[lang] = [list(piece) for doc in docs for piece in chunk_document(doc, rule)]
    return chunks


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


def write_mds(rows, folder: Path, dtype: np.dtype, cfg: PipelineConfig) -> dict[str, float | int]:
    """Write packed rows as an MDS dataset; returns row and token counts."""
    writer_cls = streaming_base().MDSWriter
    columns = {"input_ids": f"ndarray:{dtype.name}", "cu_seqlens": "ndarray:int32"}
    count = real = 0
    with writer_cls(out=str(folder), columns=columns, compression=cfg.mix.compression, hashes=HASHES,
                    size_limit=cfg.mix.shard_size_limit, progress_bar=False) as writer:
        for row in rows:
            writer.write({"input_ids": row.input_ids, "cu_seqlens": row.cu_seqlens})
            count += 1
            real += int(row.cu_seqlens[-1])
    return {"rows": count, "real_tokens": real}


def shard_listing(folder: Path) -> list[dict[str, object]]:
    """The shards of an MDS dataset as its index.json records them."""
    index = read_json(folder / "index.json")
    listed = []
    for shard in index["shards"]:
        stored = shard["zip_data"] or shard["raw_data"]
        listed.append({"file": stored["basename"], "rows": shard["samples"], "bytes": stored["bytes"],
                       "sha1": stored["hashes"].get("sha1")})
    return listed


def build_mix(cfg: PipelineConfig, phase: str, folder: Path) -> dict[str, object]:
    """Sample, pack and write the phase's rows into `folder`; returns the manifest."""
    data = cfg.phases[phase].data
    corpus_dir = output_dir(cfg, "corpus")
    tokenizer = load_tokenizer(output_dir(cfg, "tokenizer"))
    ids = special_ids(tokenizer)
    languages = phase_languages(cfg, phase, corpus_dir)
    rule = ChunkRule(data.seq_len - 2, cfg.mix.chunk_min_tokens, cfg.mix.chunk_drop_below)
    chunks = tokenized_chunks(corpus_dir, languages, tokenizer, rule)
    sizes = {lang: sum(len(c) for c in lang_chunks) for lang, lang_chunks in chunks.items()}
    try:
        probs = temperature_probabilities(sizes, data.temperature, data.pinned_shares)
    except ValueError as exc:
        raise ValueError(f"phases.{phase}.data.pinned_shares: {exc}") from None
    chosen, taken = sample_documents(chunks, probs, data.tokens, seed=derive_seed(cfg.seed, Stream.MIX, name_key(phase)))
    dtype = np.dtype(np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32)
    packer = BestFitPacker(data.seq_len, cfg.mix.pack_buffer_rows, cls_id=ids.cls, sep_id=ids.sep, pad_id=ids.pad,
                           dtype=dtype)
    written = write_mds(pack_chunks(chosen, packer), folder, dtype, cfg)
    total = sum(taken.values())
    return {
        "phase": phase,
        "format": "mds",
        "columns": {"input_ids": dtype.name, "cu_seqlens": "int32"},
        "seq_len": data.seq_len,
        "rows": written["rows"],
        "chunks": len(chosen),
        "tokens": int(total),
        "temperature": data.temperature,
        "languages": len(languages),
        "packing_efficiency": written["real_tokens"] / (written["rows"] * data.seq_len),
        "vocab_size": len(tokenizer),
        "per_language": {
            lang: {"corpus_tokens": sizes[lang], "target_share": probs[lang], "tokens": taken[lang], "share": taken[lang] / total}
            for lang in taken
        },
        "languages_sampled": len(taken),
        "shards": shard_listing(folder),
    }


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    phase = require_phase(cfg, args.phase)
    target = output_dir(cfg, "mix", phase)
    with atomic_dir(target) as tmp:
        manifest = build_mix(cfg, phase, tmp)
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
