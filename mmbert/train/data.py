"""A phase's packed rows, read from its MDS shards through mosaicml-streaming, in an order a
resumed run continues exactly.

The order is a pure function of (seed, rows consumed): each pass over the data shuffles the
shards, groups them into blocks of at least `block_rows` rows and permutes rows within a
block. A resumed run (on any number of workers) asks for the same positions and gets the
same rows, so it needs no reader state; and the ranks of a node only touch the few shards of
the current block, which `StreamingDataset` downloads from the object store on first use
(verified against their sha1) and may evict afterwards. Each rank reads only its own rows.

Reading goes through streaming's `Stream` (index, download, decompression, hash checks) and
its MDS shard readers, not `StreamingDataset`: random access by position needs none of the
dataset's iteration machinery, whose shared-memory registry outlives a killed run and then
refuses the same cache folder. Processes sharing a cache take a file lock per shard instead.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from mmbert.mds import is_compressed, open_stream, stream_shards, streaming_base


class PackedShards:
    def __init__(self, folder: str | Path, *, remote: str | None = None, cache: str | None = None,
                 block_rows: int = 1 << 16, verify: bool = True) -> None:
        base = streaming_base()
        manifest = _manifest_bytes(base, folder, remote)
        if remote is None and is_compressed(folder):
            # Streaming decompresses next to the compressed shards; the stage's output must stay
            # as written, so compressed local shards are read like remote ones, through a cache.
            remote = str(Path(folder).resolve())
        if remote:
            # Keyed by the manifest (which holds every shard's sha1): a re-built mix never meets
            # stale cached shards.
            self.folder = Path(cache or tempfile.gettempdir()) / f"mmbert-mds-{hashlib.sha256(manifest).hexdigest()[:16]}"
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "manifest.json").write_bytes(manifest)
        else:
            self.folder = Path(folder)
        self.manifest = json.loads(manifest)
        self.stream = open_stream(str(self.folder), remote, "sha1" if remote and verify else None)
        with FileLock(str(self.folder / ".index.lock")):
            self.shards = stream_shards(self.stream)
        self.seq_len = int(self.manifest["seq_len"])
        self.block_rows = block_rows
        self._shard_rows = np.asarray([shard.samples for shard in self.shards], dtype=np.int64)
        self._shard_start = np.concatenate([[0], np.cumsum(self._shard_rows)])
        self._rows_key = tuple(self._shard_rows.tolist())
        self._ready: set[int] = set()
        self._verify_local = verify and not remote

    def __len__(self) -> int:
        return int(self._shard_start[-1])

    def global_rows(self, position: int, count: int, seed: int) -> np.ndarray:
        """Row indices position..position+count of the endless seeded sequence of passes."""
        out = []
        while count > 0:
            epoch, offset = divmod(position, len(self))
            starts, blocks = _epoch_blocks(self._rows_key, self.block_rows, seed, epoch)
            b = bisect.bisect_right(starts, offset) - 1
            order = self._block_order(seed, epoch, blocks[b], b)
            within = offset - starts[b]
            take = min(count, len(order) - within)
            out.append(order[within : within + take])
            position += take
            count -= take
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def _block_order(self, seed: int, epoch: int, shards: tuple[int, ...], block: int) -> np.ndarray:
        return _block_permutation(tuple(int(self._shard_start[s]) for s in shards),
                                  tuple(int(self._shard_rows[s]) for s in shards), seed, epoch, block)

    def batch(self, position: int, global_size: int, rank: int, world: int, seed: int) -> np.ndarray:
        """This worker's contiguous share of the global batch starting at `position`."""
        return self.batch_with_documents(position, global_size, rank, world, seed)[0]

    def batch_with_documents(self, position: int, global_size: int, rank: int, world: int,
                             seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """`batch`'s rows [rows, seq_len] and each row's document boundaries (cu_seqlens)."""
        samples = self.samples(position, global_size, rank, world, seed)
        rows = np.stack([sample["input_ids"] for sample in samples]).astype(np.int64)
        return rows, [np.array(sample["cu_seqlens"], dtype=np.int64) for sample in samples]

    def samples(self, position: int, global_size: int, rank: int, world: int, seed: int) -> list[dict[str, Any]]:
        """This worker's rows (input_ids, cu_seqlens) of the global batch starting at `position`."""
        if global_size % world:
            raise ValueError(f"global batch {global_size} is not divisible by {world} workers")
        rows = self.global_rows(position, global_size, seed)
        share = global_size // world
        return [self.row(int(i)) for i in np.sort(rows[rank * share : (rank + 1) * share])]

    def row(self, index: int) -> dict[str, Any]:
        shard = int(np.searchsorted(self._shard_start, index, side="right")) - 1
        if shard not in self._ready:
            self._prepare(shard)
        return self.shards[shard].get_item(index - int(self._shard_start[shard]))

    def _prepare(self, shard: int) -> None:
        """Download (and check) a remote shard, or check a local one, the first time it is read."""
        reader = self.shards[shard]
        with FileLock(str(self.folder / f".shard-{shard}.lock")):
            self.stream.prepare_shard(reader)
        if self._verify_local:
            stored = reader.raw_data
            expected = stored.hashes.get("sha1")
            path = self.folder / stored.basename
            if expected and hashlib.sha1(path.read_bytes()).hexdigest() != expected:
                raise ValueError(f"{path}: checksum does not match index.json (corrupt or stale shard)")
        self._ready.add(shard)


@lru_cache(maxsize=8)
def _epoch_blocks(shard_rows: tuple[int, ...], block_rows: int, seed: int,
                  epoch: int) -> tuple[list[int], list[tuple[int, ...]]]:
    """One pass's shard order cut into blocks: where each block starts, and its shards."""
    order = np.random.default_rng([seed, epoch]).permutation(len(shard_rows))
    starts, blocks, current, size, position = [], [], [], 0, 0
    for shard in order.tolist():
        if not current:
            starts.append(position)
        current.append(shard)
        size += shard_rows[shard]
        position += shard_rows[shard]
        if size >= block_rows:
            blocks.append(tuple(current))
            current, size = [], 0
    if current:
        blocks.append(tuple(current))
    return starts, blocks


@lru_cache(maxsize=16)
def _block_permutation(starts: tuple[int, ...], sizes: tuple[int, ...], seed: int, epoch: int,
                       block: int) -> np.ndarray:
    rows = np.concatenate([np.arange(a, a + n) for a, n in zip(starts, sizes)])
    return np.random.default_rng([seed, epoch, block + 1]).permutation(rows)


def _manifest_bytes(base: Any, folder: str | Path, remote: str | None) -> bytes:
    if remote is None:
        return (Path(folder) / "manifest.json").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        base.storage.CloudDownloader.direct_download(f"{remote.rstrip('/')}/manifest.json", f"{tmp}/manifest.json", 600)
        return Path(f"{tmp}/manifest.json").read_bytes()
