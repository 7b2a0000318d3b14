from __future__ import annotations

import copy
import os
from pathlib import Path

# Two xdist workers share two cores, and each starts stages, Ray workers and suites of its own:
# with torch's default of one OpenMP thread per core every one of them spins threads the others
# need (an eval stage beside two busy processes: 113 s with two threads, 45 s with one, the same
# numbers). Set before torch is imported here; the processes the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
def micro(tmp_path_factory, worker_id):
    """The micro preset's corpus, tokenizer and pretrain/midtrain mixes, built once per session.
    Under pytest-xdist the first worker to need them builds them (the others wait on a file
    lock) and each worker gets its own copy, so no test sees another worker's writes."""
    import shutil

    from filelock import FileLock

    from helpers import build_inputs, micro_config

    phases = ["pretrain", "midtrain"]
    own = tmp_path_factory.mktemp("micro")
    if worker_id == "master":  # no xdist: nothing to share
        build_inputs(micro_config(own), phases)
    else:
        session = tmp_path_factory.getbasetemp().parent  # this run's folder, shared by its workers
        built = session / "micro-built"
        with FileLock(str(session / "micro-built.lock")):
            if not (built / ".complete").exists():
                shutil.rmtree(built, ignore_errors=True)
                build_inputs(micro_config(built), phases)
                (built / ".complete").touch()
        shutil.copytree(built, own, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    return micro_config(own), own


# The order test files are handed to xdist workers (make test passes --no-loadscope-reorder):
# the end-to-end pipeline's build first, beside the other long modules, so that no worker is
# left with a long file at the end; the modules that re-run parts of the built pipeline last,
# when it is surely built (a worker that needs it earlier waits for it).
FIRST = ["test_e2e.py", "test_resilience.py", "test_staleness.py", "test_external_training.py", "test_ray_cluster.py",
         "test_mds_data.py", "test_suites.py", "test_hub_sources.py", "test_gpu_check.py", "test_unpadded.py"]
LAST = ["test_e2e_suites.py", "test_e2e_reruns.py"]


def _file_rank(item: pytest.Item) -> int:
    name = item.path.name
    if name in FIRST:
        return FIRST.index(name)
    return len(FIRST) + 1 + LAST.index(name) if name in LAST else len(FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_file_rank)  # stable: tests keep their order within a file
