"""Tokenized chunks on disk: the mix stage's working set.

Tokens live in part files written once, each holding one batch's chunks grouped by
language (tokenizer actors write their own parts, so no token passes through the driver).
For every language the store records its chunk lengths (4 bytes a chunk, what sampling
needs) and its extents: in which part, at which token offset, how many of its chunks in a
row. Packing tasks read chunks by (part, offset) with one pread each, so the mix stage
holds no text and no tokens in memory.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FLUSH_TOKENS = 1 << 20  # tokens the driver-side writer buffers before writing a part
PARTS = "parts"


def write_part(folder: Path, tokens: np.ndarray) -> str:
    """Write a part file (its tokens, grouped by language) under `folder`; returns its name.
    Named at random: actors on any node write side by side, and the driver records the names
    in the corpus's order."""
    name = uuid.uuid4().hex
    path = part_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(tokens.tobytes())
    partial.rename(path)  # a killed writer leaves no part that looks whole
    return name


def part_path(folder: Path, name: str) -> Path:
    return folder / PARTS / name[:2] / f"{name}.tokens"


class ChunkStoreWriter:
    def __init__(self, folder: Path, dtype: np.dtype) -> None:
        self.folder, self.dtype = folder, np.dtype(dtype)
        folder.mkdir(parents=True, exist_ok=True)
        self._parts: list[str] = []
        self._lengths: dict[str, list[np.ndarray]] = {}
        self._extents: dict[str, list[tuple[int, int, int]]] = {}  # (part, token offset, chunks)
        self._pending: dict[str, list[np.ndarray]] = {}  # chunks added here, not yet in a part
        self._pending_lengths: dict[str, list[np.ndarray]] = {}
        self._pending_tokens = 0

    def add(self, lang: str, chunks: Iterable[Sequence[int]]) -> None:
        chunks = list(chunks)
        if chunks:
            self.add_flat(lang, np.concatenate([np.asarray(c) for c in chunks]), np.fromiter(map(len, chunks), np.int32))

    def add_flat(self, lang: str, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Chunks given as their concatenated tokens and their lengths (written by this process)."""
        self._pending.setdefault(lang, []).append(np.asarray(tokens, dtype=self.dtype))
        self._pending_lengths.setdefault(lang, []).append(np.asarray(lengths, dtype=np.int32))
        self._pending_tokens += len(tokens)
        if self._pending_tokens >= FLUSH_TOKENS:
            self._flush()

    def add_part(self, name: str, langs: Sequence[str], chunks: np.ndarray, tokens: np.ndarray,
                 lengths: np.ndarray) -> None:
        """Record a part written elsewhere (`write_part`): its languages in file order, the
        chunks and tokens of each, and all chunk lengths in that order."""
        self._flush()  # chunks added before this part come before it
        part = len(self._parts)
        self._parts.append(name)
        token_starts = np.concatenate([[0], np.cumsum(tokens)[:-1]]).astype(np.int64)
        chunk_cuts = np.cumsum(chunks)[:-1]
        for lang, start, count, part_lengths in zip(langs, token_starts.tolist(), np.asarray(chunks).tolist(),
                                                    np.split(np.asarray(lengths, dtype=np.int32), chunk_cuts)):
            self._extents.setdefault(lang, []).append((part, start, count))
            self._lengths.setdefault(lang, []).append(part_lengths)

    def _flush(self) -> None:
        langs = [lang for lang, parts in self._pending.items() if parts]
        if not langs:
            return
        ids = [np.concatenate(self._pending[lang]) for lang in langs]
        lengths = [np.concatenate(self._pending_lengths[lang]) for lang in langs]
        self._pending, self._pending_lengths, self._pending_tokens = {}, {}, 0
        self.add_part(write_part(self.folder, np.concatenate(ids)), langs, np.asarray([len(n) for n in lengths]),
                      np.asarray([len(i) for i in ids]), np.concatenate(lengths))

    def close(self) -> dict[str, int]:
        """Write what is pending, each language's chunk lengths and extents and the part list;
        returns tokens per language."""
        self._flush()
        totals = {}
        for lang, lengths in self._lengths.items():
            joined = np.concatenate(lengths)
            np.save(self.folder / f"{lang}.lengths.npy", joined)
            np.save(self.folder / f"{lang}.extents.npy", np.asarray(self._extents[lang], dtype=np.int64).reshape(-1, 3))
            totals[lang] = int(joined.sum())
        (self.folder / "parts.json").write_text(json.dumps(self._parts))
        return totals


class ChunkStore:
    """Read side: each language's chunk lengths, and where its chunks lie."""

    def __init__(self, folder: Path, dtype: np.dtype) -> None:
        self.folder, self.dtype = folder, np.dtype(dtype)

    def lengths(self, lang: str) -> np.ndarray:
        path = self.folder / f"{lang}.lengths.npy"
        return np.load(path) if path.exists() else np.zeros(0, dtype=np.int32)

    def parts(self) -> list[str]:
        path = self.folder / "parts.json"
        return json.loads(path.read_text()) if path.exists() else []

    def locate(self, lang: str, chunk_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The part and token offset of each of `lang`'s chunks `chunk_index` (vectorised)."""
        lengths = self.lengths(lang).astype(np.int64)
        extents = np.load(self.folder / f"{lang}.extents.npy")
        starts = np.cumsum(lengths) - lengths  # of each chunk in the language's own sequence
        first = np.cumsum(extents[:, 2]) - extents[:, 2]  # first chunk of each extent
        which = np.searchsorted(first, chunk_index, side="right") - 1
        return extents[which, 0], extents[which, 1] + starts[chunk_index] - starts[first[which]]

    def tokens(self, lang: str) -> np.ndarray:
        """All of `lang`'s tokens in order (the chunks one after the other)."""
        lengths = self.lengths(lang)
        parts, offsets = self.locate(lang, np.arange(len(lengths)))
        reader = ChunkReader(self.folder, self.dtype, self.parts())
        try:
            pieces = [reader.read(p, o, n) for p, o, n in zip(parts.tolist(), offsets.tolist(), lengths.tolist())]
        finally:
            reader.close()
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.dtype)


class ChunkReader:
    """Chunks by (part, token offset, length), read with one pread each: a packing task
    touches parts of hundreds of languages, and opening a file costs far less than mapping
    it."""

    OPEN_AT_MOST = 256  # file descriptors held at once

    def __init__(self, folder: Path, dtype: np.dtype, parts: list[str]) -> None:
        self.folder, self.dtype, self.parts = folder, np.dtype(dtype), parts
        self._fds: dict[int, int] = {}

    def read(self, part: int, offset: int, length: int) -> np.ndarray:
        fd = self._fds.get(part)
        if fd is None:
            if len(self._fds) >= self.OPEN_AT_MOST:
                self.close()
            fd = self._fds[part] = os.open(part_path(self.folder, self.parts[part]), os.O_RDONLY)
        size = self.dtype.itemsize
        data = os.pread(fd, length * size, offset * size)
        if len(data) != length * size:
            raise ValueError(f"chunk store {self.folder}: part {self.parts[part]} ends before token "
                             f"{offset + length}")
        return np.frombuffer(data, dtype=self.dtype)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
