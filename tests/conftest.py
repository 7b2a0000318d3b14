from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture()
def raw_params() -> dict:
    """A fresh, mutable copy of params.yaml."""
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


@pytest.fixture(scope="session")
def micro(tmp_path_factory):
    """The micro preset's corpus, tokenizer and pretrain/midtrain mixes, built once."""
    from helpers import build_inputs, micro_config

    out = tmp_path_factory.mktemp("micro")
    cfg = micro_config(out)
    build_inputs(cfg, ["pretrain", "midtrain"])
    return cfg, out
