"""The held-out split, decided by key so that parallel text is held out in every language
at once, and guarded so that no held-out passage also appears inside training text."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from mmbert.corpus.sources import Document

LEAK_WINDOW = 32  # characters; a shared window this long counts as the same passage


def key_fraction(source: str, key: str, seed: int) -> float:
    """A stable number in [0, 1) for a key: the same on every machine and every run."""
    digest = hashlib.sha256(f"{seed}\x00{source}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_documents(
    documents: Iterable[Document], eval_fraction: float, seed: int
) -> tuple[list[Document], list[Document]]:
    """(train, eval). Every language keeps at least one document on each side."""
    by_lang: dict[str, list[tuple[float, Document]]] = defaultdict(list)
    for doc in documents:
        by_lang[doc.lang].append((key_fraction(doc.source, doc.key, seed), doc))
    train: list[Document] = []
    held: list[Document] = []
    for lang in sorted(by_lang):
        ranked = sorted(by_lang[lang], key=lambda pair: pair[0])
        lang_eval = [doc for frac, doc in ranked if frac < eval_fraction]
        lang_train = [doc for frac, doc in ranked if frac >= eval_fraction]
        if len(ranked) >= 2 and not lang_eval:
            lang_eval, lang_train = [lang_train[0]], lang_train[1:]
        if len(ranked) >= 2 and not lang_train:
            lang_eval, lang_train = lang_eval[:-1], [lang_eval[-1]]
        held.extend(lang_eval)
        train.extend(_without_leaks(lang_train, lang_eval))
    return train, held


def _windows(text: str) -> set[str]:
    if len(text) <= LEAK_WINDOW:
        return {text}
    return {text[i : i + LEAK_WINDOW] for i in range(len(text) - LEAK_WINDOW + 1)}


def _without_leaks(train: list[Document], held: list[Document]) -> list[Document]:
    """Drop training documents that contain a held-out passage (or are contained in one)."""
    held_windows = set().union(*(_windows(d.text) for d in held)) if held else set()
    held_texts = [d.text for d in held]
    kept = []
    for doc in train:
        if _windows(doc.text) & held_windows:
            continue
        if len(doc.text) < LEAK_WINDOW and any(doc.text in text for text in held_texts):
            continue
        kept.append(doc)
    return kept
