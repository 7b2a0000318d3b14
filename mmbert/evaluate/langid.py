"""Language identification: fine-tune a sequence classifier (transformers) from a
checkpoint on training-split text, report accuracy on held-out text."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import torch

from mmbert.config import LangIdConfig
from mmbert.io import read_jsonl

MAX_TRAIN_PER_LANGUAGE = 60
MAX_TEST_PER_LANGUAGE = 50


def langid_data(corpus_dir: Path, languages: list[str], seed: int) -> dict[str, list[tuple[str, int]]]:
    """{'train': [(text, label)], 'test': [...]}, balanced by capping each language."""
    label = {lang: i for i, lang in enumerate(languages)}
    rng = random.Random(seed)
    out = {}
    for split, file, cap in (("train", "train.jsonl", MAX_TRAIN_PER_LANGUAGE), ("test", "eval.jsonl", MAX_TEST_PER_LANGUAGE)):
        by_lang: dict[str, list[str]] = defaultdict(list)
        for row in read_jsonl(corpus_dir / file):
            if row["lang"] in label:
                by_lang[row["lang"]].append(row["text"])
        pairs = []
        for lang in languages:
            texts = sorted(by_lang[lang])
            rng.shuffle(texts)
            pairs.extend((text, label[lang]) for text in texts[:cap])
        rng.shuffle(pairs)
        out[split] = pairs
    return out


def _batches(pairs: list[tuple[str, int]], tokenizer, size: int, max_length: int):
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        enc = tokenizer([t for t, _ in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        yield enc, torch.tensor([y for _, y in chunk])


def finetune_and_score(model_dir: Path, data: dict[str, list[tuple[str, int]]], num_labels: int,
                       cfg: LangIdConfig, seed: int) -> dict[str, float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels,
                                                               classifier_pooling="mean")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    model.train()
    for _ in range(cfg.epochs):
        for enc, labels in _batches(data["train"], tokenizer, cfg.batch_size, cfg.max_length):
            loss = model(**enc, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    correct = 0
    with torch.no_grad():
        for enc, labels in _batches(data["test"], tokenizer, cfg.batch_size, cfg.max_length):
            correct += int((model(**enc).logits.argmax(-1) == labels).sum())
    return {"accuracy": correct / len(data["test"]), "train_examples": len(data["train"]),
            "test_examples": len(data["test"]), "languages": num_labels}
