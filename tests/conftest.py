from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

# Two xdist workers share two cores, and each starts stages, Ray workers and suites of its own:
# with torch's default of one OpenMP thread per core every one of them spins threads the others
# need (an eval stage beside two busy processes: 113 s with two threads, 45 s with one, the same
# numbers). Set before torch is imported here; the processes the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def no_ray_cluster_outlives_its_module():
    """A stage run in the test process (the micro inputs' mixes, the Ray Data tests) starts a
    local cluster there and keeps it for the next one (mmbert.train.cluster.ensure_connected).
    Idle, such a cluster still costs ~7 s of CPU a minute (dashboard, log monitor, agents, Ray
    Data's stats actors): left running, the two workers' clusters took ~200 s of the suite's
    CPU. So it goes with the module that used it; the next module that needs one starts its own."""
    yield
    if "ray" in sys.modules:  # importing the stage module is only worth it where Ray was used
        from mmbert.suites.stage import shutdown_ray

        shutdown_ray()


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
