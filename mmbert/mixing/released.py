"""mmBERT's released mixes as a source: pre-tokenized MDS datasets (Gemma 2 ids, samples
`{input_ids: uint32[], id: str}`), read with mosaicml-streaming's Stream and shard readers.

The mixture of a released set is already realised, so the phase takes its documents in the
set's own order until its token budget is met: only the shards that budget needs are ever
downloaded (into the cache, hash-checked, resumable: a finished shard is not fetched again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmbert.chunking import ChunkRule, chunk_document
from mmbert.mds import is_compressed, open_stream, stream_shards
from mmbert.mixing.store import ChunkStoreWriter

log = logging.getLogger("mmbert.mix")
OFFICIAL = {  # the hub's released sets, per phase of the paper
    "pretrain": ["hf://datasets/jhu-clsp/mmBERT-pretrain-p1-fineweb2-langs",
                 "hf://datasets/jhu-clsp/mmBERT-pretrain-p2-fineweb2-remaining",
                 "hf://datasets/jhu-clsp/mmBERT-pretrain-p3-others"],
    "midtrain": ["hf://datasets/jhu-clsp/mmBERT-midtraining-data"],
    "decay-eng": ["hf://datasets/jhu-clsp/mmBERT-decay-data"],
}


class ReleasedUnavailable(RuntimeError):
    """A released set has neither a local copy nor a reachable remote."""


def source_key(remote: str) -> str:
    """The name a released set's chunks are stored and reported under."""
    return remote.rstrip("/").rsplit("/", 1)[-1]


def _documents(remote: str, cache: Path) -> Iterator[np.ndarray]:
    local = Path(remote)
    use_remote = None if local.is_dir() and not is_compressed(local) else remote
    folder = local if use_remote is None else cache / source_key(remote)
    stream = open_stream(str(folder), use_remote, "sha1" if use_remote else None)
    try:
        shards = stream_shards(stream)
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, no token: all end here
        raise ReleasedUnavailable(
            f"released mix {remote}: its index cannot be read ({type(exc).__name__}: {exc}); give a local copy "
            "(a folder holding index.json) in phases.<phase>.data.released, or allow access to the hub "
            "(HF_TOKEN for gated sets)") from None
    for shard in shards:
        stream.prepare_shard(shard)
        for i in range(shard.samples):
            yield np.asarray(shard.get_item(i)["input_ids"])


def take_released(remotes: list[str], budget_tokens: int, rule: ChunkRule, vocab_size: int,
                  store: ChunkStoreWriter, cache: Path) -> dict[str, int]:
    """Chunk documents of the released sets, in order, until `budget_tokens` (with [CLS] and
    [SEP]) are taken, spread evenly over the sets; tokens per set."""
    taken: dict[str, int] = {}
    share = -(-budget_tokens // len(remotes))
    for remote in remotes:
        key, used = source_key(remote), 0
        for ids in _documents(remote, cache):
            if len(ids) and int(ids.max()) >= vocab_size:
                raise ValueError(f"released mix {remote}: token id {int(ids.max())} is outside the tokenizer's "
                                 f"{vocab_size} ids; the released sets are Gemma 2 ids (tokenizer.kind: pretrained, "
                                 "tokenizer.pretrained: google/gemma-2-9b)")
            pieces = chunk_document(ids, rule)
            store.add(key, pieces)
            used += sum(len(p) + 2 for p in pieces)
            if used >= share:
                break
        log.info("released %s: %d tokens taken", remote, used)
        taken[key] = used
    return taken
