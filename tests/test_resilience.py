"""A training stage survives losing its driver or a node, through DVC and Ray, and ends with the
weights of an uninterrupted run (bitwise, on CPU). The micro preset's pre-training mix and
its straight run are built once for the module; each test kills a copy of that repo:

- the stage's driver (SIGKILL), its state on this disk: the re-run continues from the newest
  complete checkpoint;
- the driver, with its state on an object store (a real S3 API server on loopback: moto's
  server mode, started here and stopped by its process id) and its shards read from the
  store; then `dvc push` to a DVC remote on the same store and `dvc pull` into a fresh clone
  restore outputs that `dvc status` reports up to date;
- one of two nodes (ray.cluster_utils.Cluster: a head and two worker nodes on this machine,
  each with its own raylet, resources and temporary folder) while the phase's two workers run
  one per node; once a node is back the phase resumes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import copy_repo, dvc_repro, kill_stage_driver, stage_env

pytestmark = pytest.mark.slow
BUCKET = "mmbert"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
OUT = Path("outputs") / "train" / "pretrain"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edit_params(repo: Path, edit) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _set_runtime(repo: Path, **values) -> None:
    """Runtime settings only: no stage's result depends on them (DVC re-runs nothing)."""
    _edit_params(repo, lambda params: params["runtime"].update(values))


def _shorter_pretraining(repo: Path) -> None:
    """80k tokens of pre-training (the micro preset's 150k beat the unigram entropy, which no
    test here needs) with a checkpoint every 50 steps: 178 steps, the first checkpoint well
    before the end so that the driver is killed mid-run."""
    def edit(params: dict) -> None:
        params["phases"]["pretrain"]["data"]["tokens"] = 80_000
        params["runtime"]["checkpoint_every"] = 50

    _edit_params(repo, edit)


def _newest_step(storage: str) -> int | None:
    from mmbert.storage import open_store

    store = open_store(storage)
    steps = [store.checkpoint_step(p) for p in store.dirs(store.path("pretrain"), "checkpoint_")]
    return max((s for s in steps if s is not None), default=None)


def _start_train(repo: Path, env: dict) -> subprocess.Popen:
    """`dvc repro` of the stage in the background, its output in <repo>.log."""
    path = repo.with_suffix(".log")
    with path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", "train@pretrain"], cwd=repo,
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log_path = path
    return proc


def _output(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()


def _wait_for_checkpoint(storage: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while _newest_step(storage) is None:
        assert proc.poll() is None, "the stage ended before it wrote a checkpoint: " + _output(proc)[-3000:]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.5)


def _same_weights(repo: Path, straight: Path) -> None:
    for name in ("model/model.safetensors", "dvclive/plots/metrics/train/loss.tsv", "dvclive/metrics.json"):
        assert (repo / OUT / name).read_bytes() == (straight / OUT / name).read_bytes(), name


@pytest.fixture(scope="module")
def built(tmp_path_factory, s3):
    """A micro repo whose pre-training mix is built (DVC-recorded), the straight run of its
    pre-training, and the local closed Ray cluster the single-node tests share. The cluster
    starts once the object store is up, with its address in the environment, so that its nodes
    reach the store as a real cluster's do (an instance profile, the environment)."""
    from tasks.ray_head import local_ray_cluster

    root = tmp_path_factory.mktemp("resilience")
    repo = copy_repo(root / "built", "micro")
    _shorter_pretraining(repo)
    with local_ray_cluster() as head:
        env = stage_env(MMBERT_RAY_TMP=f"/tmp/mmbert-ray-res-{os.getpid()}", RAY_ADDRESS=head.address, **head.auth)
        dvc_repro(repo, env, "mix@pretrain")
        straight = Path(shutil.copytree(repo, root / "straight", symlinks=True))
        dvc_repro(straight, env, "--single-item", "train@pretrain")
        yield {"repo": repo, "straight": straight, "env": env, "root": root}


def _copy(built: dict, name: str) -> Path:
    return Path(shutil.copytree(built["repo"], built["root"] / name, symlinks=True))


def test_killed_driver_resumes_to_the_straight_run(built):
    killed = _copy(built, "killed")
    env, storage = built["env"], str(killed / "outputs" / ".checkpoints")
    proc = _start_train(killed, env)
    _wait_for_checkpoint(storage, proc)
    kill_stage_driver(proc)
    # more checkpoints may have been written between the first one and the kill: the re-run
    # must continue from the newest complete one
    at = _newest_step(storage)
    time.sleep(3)  # Ray ends the dead driver's job and workers
    resumed = dvc_repro(killed, env, "--single-item", "train@pretrain")
    metrics = json.loads((killed / OUT / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == at, resumed.stdout[-2000:]
    assert f"continuing from step {at}" in resumed.stdout + resumed.stderr
    _same_weights(killed, built["straight"])
    assert not (killed / "outputs" / ".checkpoints" / "pretrain").exists()  # cleaned once the output is written


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with one bucket; the environment that reaches it."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(CREDENTIALS, AWS_ENDPOINT_URL=endpoint, S3_ENDPOINT_URL=endpoint)  # S3_: mosaicml-streaming's
    saved = {key: os.environ.get(key) for key in env}
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "moto's server did not start"
            time.sleep(0.3)
        os.environ.update(env)  # this process reads the store too
        from pyarrow.fs import S3FileSystem

        S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                     allow_bucket_creation=True).create_dir(BUCKET)
        yield env
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def _upload(local: Path, uri: str) -> None:
    from pyarrow.fs import LocalFileSystem, copy_files

    from mmbert.storage import open_store

    store = open_store(uri)
    copy_files(str(local), store.root, source_filesystem=LocalFileSystem(), destination_filesystem=store.fs)


def test_a_killed_stage_resumes_from_the_object_store_and_dvc_moves_the_run(built, s3):
    from mmbert.storage import open_store

    killed = _copy(built, "killed-s3")
    state, cache = f"s3://{BUCKET}/state", built["root"] / "shard-cache"
    _set_runtime(killed, storage=state, mix_remote=f"s3://{BUCKET}/mix", data_cache=str(cache))
    _upload(killed / "outputs" / "mix" / "pretrain", f"s3://{BUCKET}/mix/pretrain")
    env = dict(built["env"], **s3)  # built's cluster, started with the store's address
    proc = _start_train(killed, env)
    _wait_for_checkpoint(state, proc)
    kill_stage_driver(proc)
    at = _newest_step(state)
    time.sleep(3)
    resumed = dvc_repro(killed, env, "--single-item", "train@pretrain")
    assert f"continuing from step {at}" in resumed.stdout + resumed.stderr
    assert list(cache.rglob("*.mds*")), "no shard came from the store"
    _same_weights(killed, built["straight"])
    store = open_store(state)
    assert not store.dirs(store.root, "pretrain")  # the stage cleans its state once its output is written
    _push_and_pull(killed, built["root"] / "fresh", env, s3["AWS_ENDPOINT_URL"])


def _push_and_pull(repo: Path, fresh: Path, env: dict, endpoint: str) -> None:
    def run(cmd: list[str], cwd: Path) -> str:
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["remote", "add", "-d", "store", f"s3://{BUCKET}/dvc"], repo)
    run(dvc + ["remote", "modify", "store", "endpointurl", endpoint], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "run"], repo)
    run(dvc + ["push"], repo)
    run(["git", "clone", "-q", str(repo), str(fresh)], repo.parent)
    assert not (fresh / "outputs").exists()
    run(dvc + ["pull", "--with-deps", "train@pretrain"], fresh)
    assert (fresh / OUT / "model" / "model.safetensors").read_bytes() == (repo / OUT / "model" / "model.safetensors").read_bytes()
    status = run(dvc + ["status", "--with-deps", "train@pretrain"], fresh)
    assert "up to date" in status, status


@pytest.fixture()
def two_nodes(monkeypatch):
    """A head with no CPU (no worker lands there) and two one-CPU nodes, all on 127.0.0.1."""
    short = Path(f"/tmp/mn{os.getpid()}")  # unix sockets live under the temp folders: keep paths short
    gcs = _free_port()
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every address stays 127.0.0.1
    monkeypatch.setenv("RAY_TMPDIR", str(short))
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{gcs}")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    (short / "ray").mkdir(parents=True, exist_ok=True)
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=dict(
        gcs_server_port=gcs, num_cpus=0, temp_dir=str(short / "head"), node_ip_address="127.0.0.1",
        include_dashboard=False, _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3}))
    nodes = [cluster.add_node(num_cpus=1, temp_dir=str(short / name), node_ip_address="127.0.0.1",
                              include_log_monitor=True) for name in ("a", "b")]
    cluster.wait_for_nodes()
    try:
        yield cluster, nodes, short
    finally:
        cluster.shutdown()
        shutil.rmtree(short, ignore_errors=True)


def test_two_nodes_train_to_the_one_node_weights_and_survive_a_lost_node(built, two_nodes):
    cluster, (first, second), short = two_nodes
    spread = _copy(built, "spread")
    _set_runtime(spread, placement_strategy="STRICT_SPREAD", cpus_per_worker=1)  # one worker per node
    env = {k: v for k, v in built["env"].items() if not k.startswith("RAY_")}
    env.update(RAY_ADDRESS=cluster.address, RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    proc = _start_train(spread, env)
    _wait_for_checkpoint(str(spread / "outputs" / ".checkpoints"), proc)
    cluster.remove_node(second, allow_graceful=False)  # SIGKILL of every process of the node
    cluster.add_node(num_cpus=1, temp_dir=str(short / "c"), node_ip_address="127.0.0.1", include_log_monitor=True)
    proc.wait(timeout=600)
    output = _output(proc)
    assert proc.returncode == 0, output[-4000:]
    placed = re.findall(r"worker rank (\d) of 2 on node ([0-9a-f]+)", output)
    first_group = dict(placed[:2])
    assert len(first_group) == 2 and len(set(first_group.values())) == 2, output[-3000:]  # one worker per node
    assert set(first_group.values()) == {first.node_id, second.node_id}
    assert re.search(r"RETRY|[Rr]estart", output), output[-3000:]  # the group restarted after the loss
    _same_weights(spread, built["straight"])
