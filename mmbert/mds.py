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
import importlib.util
import sys
import types
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
