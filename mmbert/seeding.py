"""Seeds derived from a proper seed sequence (numpy's SeedSequence hashes its whole entropy
tuple), so that no two (stream, rank, step) triples share a seed, unlike arithmetic such as
seed + rank * k + step, where rank r at step t + k collides with rank r + 1 at step t."""

from __future__ import annotations

import zlib
from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """What a seed is for: each use draws from its own stream."""

    MASKING = 0
    DROPOUT = 1
    MIX = 2
    HELDOUT = 3
    INIT = 4


def derive_seed(seed: int, stream: Stream, *parts: int) -> int:
    """A 63-bit seed (valid for torch.manual_seed and numpy) from (seed, stream, *parts)."""
    state = np.random.SeedSequence([seed, int(stream), *parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


def name_key(name: str) -> int:
    """A stable integer for a name (a phase, a language code) to put into a seed."""
    return zlib.crc32(name.encode("utf-8"))
