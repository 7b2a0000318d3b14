"""Held-out MLM loss per language, with the same masks for every model compared.

Each language's held-out text is packed on its own and masked with a generator seeded from
the language code; small languages are masked several times so each contributes enough
predictions to be measured. Every document is read on its own (the unpadded path, attention
within [CLS] doc [SEP]), as training reads its rows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from mmbert.config import HeldoutConfig
from mmbert.io import read_jsonl
from mmbert.masking import IGNORE_INDEX, mask_tokens
from mmbert.modeling import SpecialIds
from mmbert.packing import pack_documents
from mmbert.seeding import Stream, derive_seed, name_key
from mmbert.unpadded import Documents, encode

MIN_MASKED = 16
MAX_REPEATS = 4


def heldout_rows(
    corpus_dir: Path, tokenizer, seq_len: int, languages: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Held-out text per language, tokenized and packed into [rows, seq_len] arrays."""
    texts: dict[str, list[str]] = defaultdict(list)
    for row in read_jsonl(corpus_dir / "eval.jsonl"):
        if languages is None or row["lang"] in languages:
            texts[row["lang"]].append(row["text"])
    from mmbert.tokenizer import special_ids

    ids = special_ids(tokenizer)
    return {
        lang: pack_documents(tokenizer(docs, add_special_tokens=False)["input_ids"], seq_len,
                             cls_id=ids.cls, sep_id=ids.sep, pad_id=ids.pad, dtype=np.dtype(np.int64))
        for lang, docs in sorted(texts.items())
    }


def masked_batches(
    rows: dict[str, np.ndarray], rate: float, ids: SpecialIds, vocab_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(inputs, labels, language of each row), deterministic for a given seed."""
    inputs, labels, owners = [], [], []
    for lang, packed in rows.items():
        real = int((packed != ids.pad).sum())
        repeats = min(MAX_REPEATS, max(1, math.ceil(MIN_MASKED / max(1.0, rate * real))))
        gen = torch.Generator().manual_seed(derive_seed(seed, Stream.HELDOUT, name_key(lang)))
        for _ in range(repeats):
            x, y = mask_tokens(torch.from_numpy(packed), rate, mask_id=ids.mask, special_ids=ids.all(),
                               vocab_size=vocab_size, generator=gen)
            inputs.append(x)
            labels.append(y)
            owners.extend([lang] * len(packed))
    return torch.cat(inputs), torch.cat(labels), owners


def row_documents(row: torch.Tensor, ids: SpecialIds) -> list[int]:
    """cu_seqlens of a held-out row: a document ends after each [SEP] (masking never touches
    special tokens), the row's first and last may be pieces of documents cut by the row."""
    real = int((row != ids.pad).sum())
    ends = ((row[:real] == ids.sep).nonzero().flatten() + 1).tolist()
    return [0] + [end for end in ends if end < real] + [real]


@torch.no_grad()
def heldout_loss(
    model, rows: dict[str, np.ndarray], *, rate: float, ids: SpecialIds, seed: int, batch_size: int
) -> dict[str, dict[str, float]]:
    """{lang: {"loss": mean cross-entropy (nats) over masked tokens, "predictions", "tokens"}}."""
    model.eval()
    x, y, owners = masked_batches(rows, rate, ids, model.config.vocab_size, seed)
    lengths = (x != ids.pad).sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        # Rows hold padding only at the tail, and padding is masked out of attention, so
        # trimming a length-sorted batch to its longest row changes no result, only cost.
        width = int(lengths[index].max())
        xb, yb = x[index, :width], y[index, :width]
        # Each document on its own, as in training: attention stays within [CLS] doc [SEP].
        docs, real = Documents.from_packed_rows(width, [row_documents(row, ids) for row in xb])
        hidden = encode(model, xb.flatten()[real], docs, backend="sdpa")
        targets = yb.flatten()[real]
        selected = targets != IGNORE_INDEX
        # Decode only the masked positions (as ModernBERT's sparse prediction does).
        logits = model.decoder(model.head(hidden[selected]))
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[selected], reduction="none")
        row_of = index[real[selected] // width].tolist()
        for row, value in zip(row_of, loss.tolist()):
            lang = owners[row]
            sums[lang] += value
            counts[lang] += 1
    return {
        lang: {"loss": sums[lang] / counts[lang], "predictions": counts[lang],
               "tokens": int((packed != ids.pad).sum() - (packed == ids.cls).sum() - (packed == ids.sep).sum())}
        for lang, packed in rows.items() if counts[lang]
    }


def checkpoint_heldout_loss(model_dir: Path, rows: dict[str, np.ndarray], settings: HeldoutConfig) -> dict[str, dict[str, float]]:
    """Held-out loss per language of the checkpoint in `model_dir` (its own tokenizer's ids)."""
    from mmbert.modeling import load_model
    from mmbert.tokenizer import load_tokenizer, special_ids

    ids = special_ids(load_tokenizer(model_dir))
    return heldout_loss(load_model(model_dir), rows, rate=settings.mask_rate, ids=ids, seed=settings.seed,
                        batch_size=settings.batch_size)


def random_init_heldout_loss(model_dir: Path, rows: dict[str, np.ndarray], settings: HeldoutConfig,
                             seed: int) -> dict[str, dict[str, float]]:
    """The same measurement on a freshly initialised model of the checkpoint's architecture:
    the loss that training must beat (about ln(vocabulary size))."""
    from transformers import AutoConfig, ModernBertForMaskedLM

    from mmbert.tokenizer import load_tokenizer, special_ids

    torch.manual_seed(derive_seed(seed, Stream.INIT))
    model = ModernBertForMaskedLM(AutoConfig.from_pretrained(model_dir))
    ids = special_ids(load_tokenizer(model_dir))
    return heldout_loss(model, rows, rate=settings.mask_rate, ids=ids, seed=settings.seed,
                        batch_size=settings.batch_size)


def pooled(per_language: dict[str, dict[str, float]], languages: set[str] | None = None) -> float:
    """Mean loss over a set of languages (all by default), each weighted by its held-out
    tokens, so repeated masking of small languages does not inflate their weight."""
    chosen = [row for lang, row in per_language.items() if languages is None or lang in languages]
    total = sum(row["tokens"] for row in chosen)
    return sum(row["loss"] * row["tokens"] for row in chosen) / total if total else float("nan")


def end_of_stage_heldout(corpus_dir: Path, model_dir: Path, settings: HeldoutConfig, threads: int) -> dict[str, object]:
    """A stage's own held-out loss of the checkpoint it wrote (train.heldout: kept apart from
    eval's), pooled and per language."""
    from mmbert.tokenizer import load_tokenizer

    torch.set_num_threads(threads)  # concurrent decay stages share the cores
    rows = heldout_rows(corpus_dir, load_tokenizer(model_dir), settings.seq_len)
    per_language = checkpoint_heldout_loss(model_dir, rows, settings)
    return {"pooled": pooled(per_language), "per_language": per_language}
