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
