"""Tokenization and chunking of the corpus on Ray Data, on the cluster that trains.

Batches of documents go to a pool of tokenizer actors (one tokenizer each, loaded once);
each writes the batch's chunks (mmbert.chunking's rule) as a part of the chunk store. The
embedded corpus's actors read their own slices of its JSON-lines file; hub sources arrive
as (lang, text) batches from their download-and-read tasks. The driver receives the parts'
descriptions in the corpus's order (deterministic, whatever the number of actors) and
records them: nothing grows in memory with the corpus but 4 bytes a chunk, and no token
passes through it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmbert.chunking import ChunkRule, chunk_document
from mmbert.mixing.store import ChunkStoreWriter, write_part

log = logging.getLogger("mmbert.mix")
BATCH_DOCUMENTS = 256  # a batch of (lang, text) rows from the hub readers
SLICE_BYTES = 4 << 20  # of a JSON-lines corpus file, read by one actor call


class TokenizeAndChunk:
    """A Ray Data actor: a batch of (lang, text) documents in; the batch's chunks, grouped by
    language, written as one part of the chunk store; one row out describing the part (its
    name, the languages present, chunks and tokens of each, the chunk lengths), so that no
    token passes through the object store or the driver."""

    def __init__(self, tokenizer_dir: str, rule: ChunkRule, languages: list[str], dtype: str,
                 store_dir: str) -> None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per actor; Ray places the actors
        from mmbert.tokenizer import load_tokenizer

        self.encode = batch_encoder(load_tokenizer(tokenizer_dir))
        self.rule, self.dtype, self.store_dir = rule, np.dtype(dtype), Path(store_dir)
        self.index = {lang: i for i, lang in enumerate(languages)}

    def __call__(self, batch: Any) -> dict[str, Any]:
        return self.chunks_of(batch.column("lang"), batch.column("text"))

    def chunks_of(self, lang_column: Any, text_column: Any) -> dict[str, Any]:
        all_langs = lang_column.to_pylist()
        keep = [i for i, lang in enumerate(all_langs) if lang in self.index]
        if len(keep) < len(all_langs):  # other phases' languages: never converted to Python
            text_column = text_column.take(np.asarray(keep, dtype=np.int64))
        texts = text_column.to_pylist()
        ids = self.encode(texts) if texts else []
        by_lang: dict[int, tuple[list[int], list[int]]] = {}
        for i, doc in zip(keep, ids):
            lengths, pieces = by_lang.setdefault(self.index[all_langs[i]], ([], []))
            for piece in chunk_document(doc, self.rule):
                lengths.append(len(piece))
                pieces.extend(piece)
        groups = list(by_lang.values())
        tokens = _joined([pieces for _, pieces in groups], self.dtype)
        return {"part": np.asarray([write_part(self.store_dir, tokens) if len(tokens) else ""], dtype=object),
                "langs": _one(np.fromiter(by_lang, dtype=np.int32, count=len(by_lang))),
                "chunks": _one(np.asarray([len(lengths) for lengths, _ in groups], dtype=np.int64)),
                "tokens": _one(np.asarray([len(pieces) for _, pieces in groups], dtype=np.int64)),
                "lengths": _one(_joined([lengths for lengths, _ in groups], np.dtype(np.int32))),
                "documents": np.asarray([len(ids)], dtype=np.int64)}


class ReadTokenizeAndChunk(TokenizeAndChunk):
    """The same actor reading its documents itself: a batch is one slice of a JSON-lines
    corpus file (whole lines), parsed by Arrow in the actor, so that no text crosses the
    object store and no read task competes with the tokenizers for the cores."""

    def __call__(self, batch: Any) -> dict[str, Any]:
        table = read_slice(batch.column("path")[0].as_py(), batch.column("start")[0].as_py(),
                           batch.column("end")[0].as_py())
        return self.chunks_of(table.column("lang"), table.column("text"))


def _joined(parts: list[list[int]], dtype: np.dtype) -> np.ndarray:
    return np.concatenate([np.asarray(part, dtype=dtype) for part in parts]) if parts else np.zeros(0, dtype=dtype)


def jsonl_slices(path: Path, target_bytes: int) -> list[dict[str, Any]]:
    """[start, end) byte ranges of whole lines of `path`, each about `target_bytes`."""
    size = path.stat().st_size
    slices, start = [], 0
    with path.open("rb") as handle:
        while start < size:
            handle.seek(min(size, start + target_bytes) - 1)
            handle.readline()  # to the next line's start (the seek may land on a newline)
            end = min(size, handle.tell())
            slices.append({"path": str(path), "start": start, "end": end})
            start = end
    return slices


def read_slice(path: str, start: int, end: int) -> Any:
    """The (lang, text) columns of the JSON lines in bytes [start, end) of `path`."""
    import pyarrow as pa
    import pyarrow.json as pajson

    with open(path, "rb") as handle:
        data = os.pread(handle.fileno(), end - start, start)
    try:
        return pajson.read_json(pa.BufferReader(data),
                                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                                parse_options=pajson.ParseOptions(explicit_schema=_corpus_schema(),
                                                                  unexpected_field_behavior="ignore"))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}, bytes {start}-{end}: not JSON lines with string 'lang' and 'text' "
                         f"fields ({exc})") from None


def _corpus_schema() -> Any:
    import pyarrow as pa

    return pa.schema([("lang", pa.string()), ("text", pa.string())])


def batch_encoder(tokenizer: Any) -> Callable[[list[str]], list[list[int]]]:
    """Texts → ids without special tokens, through the Rust tokenizer directly where there is
    one (the same ids as calling the transformers tokenizer, without its per-call wrapping)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]
    return lambda texts: [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=False)]


def _one(array: np.ndarray) -> np.ndarray:
    """A one-row object column holding `array` (pickled whole, with numpy's own buffers)."""
    out = np.empty(1, dtype=object)
    out[0] = array
    return out


def tokenize_corpus(files: list[Path], languages: list[str], tokenizer_dir: Path, rule: ChunkRule,
                    store: ChunkStoreWriter, actors: int, progress: Callable[..., None] | None = None,
                    slice_bytes: int = SLICE_BYTES) -> dict[str, int]:
    """Tokenize the phase's languages of the JSON-lines corpus files into `store`; tokens per
    language. The result does not depend on `slice_bytes` nor on the number of actors."""
    import ray.data

    # Ray's workers run in their own working directory (a shared cluster's is wherever it
    # was started), so every path that crosses into Ray is absolute.
    files = [Path(f).resolve() for f in files]
    for f in files:
        if f.suffix != ".jsonl":
            raise ValueError(f"{f}: the corpus is read as JSON lines (.jsonl), one document per line")
    total = sum(f.stat().st_size for f in files)
    if total == 0:
        raise ValueError(f"{', '.join(map(str, files))}: the corpus is empty, no documents to tokenize")
    # Several slices per actor even for a small corpus, so that every actor has work.
    target = max(1, min(slice_bytes, total // (4 * max(1, actors))))
    slices = [piece for f in files for piece in jsonl_slices(f, target)]
    configure_ray_data()
    ds = ray.data.from_items(slices, override_num_blocks=max(1, len(slices)))
    return _tokenize(ds, ReadTokenizeAndChunk, 1, languages, tokenizer_dir, rule, store, actors, progress)


def tokenize_dataset(ds: Any, languages: list[str], tokenizer_dir: Path, rule: ChunkRule, store: ChunkStoreWriter,
                     actors: int, progress: Callable[..., None] | None = None) -> dict[str, int]:
    """Tokenize a Ray dataset of (lang, text) rows into `store`, keyed by `lang`, in order."""
    return _tokenize(ds, TokenizeAndChunk, BATCH_DOCUMENTS, languages, tokenizer_dir, rule, store, actors, progress)


def _tokenize(ds: Any, actor: type[TokenizeAndChunk], batch_size: int, languages: list[str], tokenizer_dir: Path,
              rule: ChunkRule, store: ChunkStoreWriter, actors: int,
              progress: Callable[..., None] | None) -> dict[str, int]:
    import ray.data

    kwargs = {"tokenizer_dir": str(Path(tokenizer_dir).resolve()), "rule": rule, "languages": languages,
              "dtype": store.dtype.name, "store_dir": str(Path(store.folder).resolve())}
    ds = ds.map_batches(actor, fn_constructor_kwargs=kwargs, batch_size=batch_size, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, actors)), num_cpus=1)
    started, documents, tokens = time.perf_counter(), 0, 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for part, langs, chunks, counts, lengths in zip(batch["part"], batch["langs"], batch["chunks"],
                                                        batch["tokens"], batch["lengths"]):
            if part:
                store.add_part(str(part), [languages[i] for i in langs.tolist()], chunks, counts, lengths)
            tokens += int(counts.sum())
        documents += int(batch["documents"].sum())
        if progress:
            progress(documents, tokens, time.perf_counter() - started)
    if progress:
        progress(documents, tokens, time.perf_counter() - started, final=True)
    return store.close()


def configure_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # chunk i of a language is the same on every run
    ctx.enable_progress_bars = False  # progress is logged by the caller, in documents and tokens
