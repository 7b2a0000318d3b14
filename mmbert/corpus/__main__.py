"""Stage `corpus`: multilingual text from the configured sources, split by key into
train and held-out evaluation text, with per-language size statistics."""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig
from mmbert.corpus.catalog import check_corpus_fits
from mmbert.corpus.sources import Document, build_sources
from mmbert.corpus.split import split_documents
from mmbert.io import atomic_dir, write_json, write_jsonl
from mmbert.stages import write_record

log = logging.getLogger("mmbert.corpus")


def language_stats(train: list[Document], held: list[Document]) -> dict[str, dict[str, object]]:
    stats: dict[str, dict[str, object]] = defaultdict(
        lambda: {"train_chars": 0, "train_docs": 0, "eval_chars": 0, "eval_docs": 0, "sources": set()}
    )
    for split, docs in (("train", train), ("eval", held)):
        for doc in docs:
            row = stats[doc.lang]
            row[f"{split}_chars"] += len(doc.text)
            row[f"{split}_docs"] += 1
            row["sources"].add(doc.source)
    ranked = sorted(stats, key=lambda lang: (-stats[lang]["train_chars"], lang))
    return {lang: {**stats[lang], "sources": sorted(stats[lang]["sources"])} for lang in ranked}


def build_corpus(cfg: PipelineConfig) -> tuple[list[Document], list[Document]]:
    docs: list[Document] = []
    for source in build_sources(cfg.corpus.sources):
        before = len(docs)
        docs.extend(source.documents())
        log.info("source %s: %d documents in %d languages", source.name, len(docs) - before, len(source.languages()))
    train, held = split_documents(docs, cfg.corpus.eval_fraction, cfg.corpus.split_seed)
    train_chars: dict[str, int] = defaultdict(int)
    for doc in train:
        train_chars[doc.lang] += len(doc.text)
    keep = {lang for lang, n in train_chars.items() if n >= cfg.corpus.min_train_chars}
    dropped = sorted({d.lang for d in docs} - keep)
    if dropped:
        log.info("dropping %d languages with < %d training characters", len(dropped), cfg.corpus.min_train_chars)
    return [d for d in train if d.lang in keep], [d for d in held if d.lang in keep]


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    train, held = build_corpus(cfg)
    stats = language_stats(train, held)
    target = output_dir(cfg, "corpus")
    with atomic_dir(target) as tmp:
        write_jsonl(tmp / "train.jsonl", (d.to_json() for d in train))
        write_jsonl(tmp / "eval.jsonl", (d.to_json() for d in held))
        write_json(tmp / "stats.json", {
            "languages": len(stats),
            "train_chars": sum(s["train_chars"] for s in stats.values()),
            "eval_chars": sum(s["eval_chars"] for s in stats.values()),
            "per_language": stats,
        })
        write_record(tmp, cfg, "corpus")
    log.info("corpus: %d languages, %d train / %d eval documents -> %s", len(stats), len(train), len(held), target)


if __name__ == "__main__":
    # The first stage checks the whole params against the corpus, so `dvc repro` alone also
    # fails before any work when a phase asks for languages the sources lack.
    run_stage(main, stage_parser(__doc__), check=check_corpus_fits)
