"""Packed sequences of one phase, served in a deterministic order that a resumed run can
continue exactly: the position is the number of rows consumed, the order a seeded
permutation per pass over the data."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from mmbert.io import read_json, sha256_file


class PackedShards:
    def __init__(self, folder: str | Path, *, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest = read_json(self.folder / "manifest.json")
        arrays = []
        for shard in self.manifest["shards"]:
            path = self.folder / shard["file"]
            if verify and sha256_file(path) != shard["sha256"]:
                raise ValueError(f"{path}: checksum does not match manifest.json (corrupt or stale shard)")
            arrays.append(np.load(path, mmap_mode="r"))
        self.rows = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        self.seq_len = int(self.manifest["seq_len"])

    def __len__(self) -> int:
        return len(self.rows)

    def global_rows(self, position: int, count: int, seed: int) -> np.ndarray:
        """Row indices position..position+count of the endless seeded sequence of passes."""
        out = []
        while count > 0:
            epoch, offset = divmod(position, len(self))
            take = min(count, len(self) - offset)
            out.append(_permutation(len(self), seed, epoch)[offset : offset + take])
            position += take
            count -= take
        return np.concatenate(out)

    def batch(self, position: int, global_size: int, rank: int, world: int, seed: int) -> np.ndarray:
        """This worker's contiguous share of the global batch starting at `position`."""
        if global_size % world:
            raise ValueError(f"global batch {global_size} is not divisible by {world} workers")
        rows = self.global_rows(position, global_size, seed)
        share = global_size // world
        return np.asarray(self.rows[np.sort(rows[rank * share : (rank + 1) * share])], dtype=np.int64)


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)
