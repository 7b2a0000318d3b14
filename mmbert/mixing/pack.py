"""Packing on Ray: the sampled chunk sequence is cut into segments of about
`mix.pack_task_tokens` tokens; each segment is packed by its own Ray task into an MDS
partition, and the partitions' indexes are merged into one dataset (streaming's
merge_index). The result depends on the segment size, never on how many tasks run at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mmbert.chunking import BestFitPacker
from mmbert.mds import streaming_base, streaming_module
from mmbert.mixing.store import ChunkReader, ChunkStore

HASHES = ["sha1", "xxh64"]  # recorded per shard in index.json; readers verify downloads with sha1


def segments(lengths: np.ndarray, task_tokens: int) -> list[tuple[int, int]]:
    """[start, end) ranges of the chunk sequence, each about `task_tokens` tokens."""
    ends = np.cumsum(lengths + 2, dtype=np.int64)
    cuts = np.searchsorted(ends, np.arange(task_tokens, int(ends[-1]) if len(ends) else 0, task_tokens), side="left") + 1
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < len(lengths))), len(lengths)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def pack_segment(store_dir: str, dtype: str, parts: list[str], part_index: np.ndarray, offsets: np.ndarray,
                 lengths: np.ndarray, out: str, settings: dict[str, Any]) -> dict[str, int]:
    """Pack one segment of chunks (part of the chunk store, token offset in it, length) into
    an MDS partition at `out`; returns its counts."""
    store = ChunkReader(Path(store_dir), np.dtype(dtype), parts)
    packer = BestFitPacker(settings["seq_len"], settings["buffer_rows"], cls_id=settings["cls"],
                           sep_id=settings["sep"], pad_id=settings["pad"], dtype=np.dtype(dtype))
    columns = {"input_ids": f"ndarray:{dtype}", "cu_seqlens": "ndarray:int32"}
    rows = real = 0
    with streaming_base().MDSWriter(out=out, columns=columns, compression=settings["compression"], hashes=HASHES,
                                    size_limit=settings["shard_size_limit"], progress_bar=False) as writer:
        def write(packed_rows) -> None:
            nonlocal rows, real
            for row in packed_rows:
                writer.write({"input_ids": row.input_ids, "cu_seqlens": row.cu_seqlens})
                rows += 1
                real += int(row.cu_seqlens[-1])

        try:
            for part, offset, length in zip(part_index.tolist(), offsets.tolist(), lengths.tolist()):
                write(packer.add(store.read(part, offset, length)))
        finally:
            store.close()
        write(packer.flush())
    return {"rows": rows, "real_tokens": real}


def chunk_locations(store: ChunkStore, languages: list[str], lang_index: np.ndarray,
                    chunk_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part and token offset of each drawn chunk (vectorised per language)."""
    parts, offsets = np.zeros(len(lang_index), np.int64), np.zeros(len(lang_index), np.int64)
    order = np.argsort(lang_index, kind="stable")
    present, starts = np.unique(lang_index[order], return_index=True)
    for lang, members in zip(present.tolist(), np.split(order, starts[1:])):
        parts[members], offsets[members] = store.locate(languages[lang], chunk_index[members])
    return parts, offsets


def pack_on_ray(store_dir: Path, dtype: np.dtype, languages: list[str], lang_index: np.ndarray,
                chunk_index: np.ndarray, lengths: np.ndarray, folder: Path, settings: dict[str, Any],
                task_tokens: int) -> dict[str, int]:
    """Pack every segment as a Ray task into folder/part-NNNNN, then merge their indexes."""
    import ray

    store_dir, folder = Path(store_dir).resolve(), Path(folder).resolve()  # Ray workers have their own cwd
    remote = ray.remote(num_cpus=1)(pack_segment)
    store = ChunkStore(store_dir, dtype)
    parts, offsets = chunk_locations(store, languages, lang_index, chunk_index)
    names = ray.put(store.parts())  # once in the object store, not once per task
    pending = []
    for k, (a, b) in enumerate(segments(lengths, task_tokens)):
        pending.append(remote.remote(str(store_dir), dtype.name, names, parts[a:b], offsets[a:b],
                                     lengths[a:b], str(folder / f"part-{k:05d}"), settings))
    counts = ray.get(pending)
    # merge_index warns that the folder it writes into is not empty: it holds the partitions.
    uploads = logging.getLogger("streaming.base.storage.upload")
    level = uploads.level
    uploads.setLevel(logging.ERROR)
    try:
        streaming_module("util").merge_index(str(folder), keep_local=True)
    finally:
        uploads.setLevel(level)
    return {"rows": sum(c["rows"] for c in counts), "real_tokens": sum(c["real_tokens"] for c in counts),
            "tasks": len(counts)}
