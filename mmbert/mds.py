"""MosaicML Streaming (MDS), the format of the official mmBERT data, from its `base` package.

`import streaming` also imports the package's vision datasets, and with them torchvision,
whose wheels for torch 2.13 are CUDA builds that fail to load next to the CPU torch
(`operator torchvision::nms does not exist`). Everything MDS needs (MDSWriter,
StreamingDataset, Stream, storage backends) lives in `streaming.base`, which never touches
torchvision; so the package is registered without running its `__init__` and `streaming.base`
is imported from it. The code that runs is the library's own; only the image, text and
multimodal example datasets are left out.

The wheel is installed with `--no-deps` (see the Makefile): its metadata still asks for
transformers<5 and numpy<2.2, while the parts used here run on the versions we pin, which
tests/test_mds.py checks on every run.
"""

from __future__ import annotations

import importlib
import json
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

PACKAGE = "streaming"


def streaming_base() -> Any:
    """The `streaming.base` module of mosaicml-streaming."""
    if f"{PACKAGE}.base" in sys.modules:
        return sys.modules[f"{PACKAGE}.base"]
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("mosaicml-streaming is not installed; `make setup` installs it (pip install --no-deps "
                              "mosaicml-streaming==0.13.0)")
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.base")


def streaming_module(name: str) -> Any:
    """A submodule of `streaming.base`, e.g. 'util' for merge_index."""
    streaming_base()
    return importlib.import_module(f"{PACKAGE}.base.{name}")


def open_stream(local: str, remote: str | None, validate_hash: str | None) -> Any:
    """A streaming `Stream` over one MDS dataset: index, download, decompression, hash checks."""
    stream = streaming_base().Stream(remote=remote, local=local, validate_hash=validate_hash, keep_zip=False)
    stream.apply_default({"split": None, "download_retry": 2, "download_timeout": 600, "validate_hash": None,
                          "keep_zip": False})
    return stream


def stream_shards(stream: Any) -> list[Any]:
    """The dataset's shard readers (downloading index.json first when remote).

    Every caller acts as its node's leader: with streaming's own roles, a non-leader waits
    for the leader's download, which deadlocks when the caller holds a lock the leader needs
    (the readers serialise this call with a file lock instead)."""
    leader = streaming_module("world").World(num_nodes=1, ranks_per_node=1, workers_per_rank=1, worker=0)
    return stream.get_shards(leader, allow_unsafe_types=False)


def is_compressed(folder: str | Path) -> bool:
    """Whether a local MDS dataset's shards are stored compressed (streaming would write the
    decompressed copies beside them)."""
    index = json.loads((Path(folder) / "index.json").read_text(encoding="utf-8"))
    return any(shard.get("zip_data") for shard in index["shards"])
