"""Joining a Ray cluster: the configured address, else $RAY_ADDRESS (set by the Prefect
flow, which starts one local cluster for all stages), else a private local cluster.

A cluster the pipeline starts itself is closed: a single-node cluster whose processes all
listen on the loopback address (Ray's RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 switch makes a
node use 127.0.0.1; without it Ray swaps loopback for the machine's address and binds all
interfaces), and it requires Ray's token authentication, with a random token that lives only
in the environment of the processes that use it (never in a file, the repo or a log). A
cluster the user names is joined as it is: its own authentication and network settings apply.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from mmbert.config import RuntimeConfig

log = logging.getLogger("mmbert.train")
# Short and outside /tmp/ray: Ray's unix socket paths must stay under ~107 characters.
DEFAULT_TEMP_DIR = "/tmp/mmbert-ray"
LOOPBACK = "127.0.0.1"
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


def ray_environment() -> None:
    """Settings that must be in place before Ray is imported."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no internet here
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


def closed_cluster_environment() -> dict[str, str]:
    """The environment a closed cluster's head and its clients share (a new token each time).

    Ray Train's preemption watcher (an actor per run, ~2 s of CPU to start) waits for a
    node's drain notice from an autoscaler or a cloud's spot reclaim; a cluster the pipeline
    starts on this machine has neither, so it stays off there (a cluster the user names keeps it)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_urlsafe(32),
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def start_local(log_to_driver: bool) -> str:
    """Start a closed local cluster in this process; returns its GCS address. Must run
    before Ray is imported: Ray reads these variables at import."""
    os.environ.update(closed_cluster_environment())
    ray_environment()
    import ray
    from ray._raylet import AuthenticationTokenLoader

    # Ray keeps the first token it read for the life of the process: a second cluster started
    # here (after ray.shutdown) would get the new token while this client sent the old one, and
    # its start fails as "Failed to start GCS" (InvalidAuthToken).
    AuthenticationTokenLoader.instance().reset_cache()

    temp_dir = os.environ.get("MMBERT_RAY_TMP", DEFAULT_TEMP_DIR)
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    # The dashboard serves the State API that Ray Train's controller polls; it binds to loopback.
    # address="local": always a new cluster, never one a stale ray_current_cluster file points at
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=True, dashboard_host=LOOPBACK,
             _node_ip_address=LOOPBACK, _temp_dir=temp_dir, log_to_driver=log_to_driver)
    return ray.get_runtime_context().gcs_address


def ensure_connected(runtime: RuntimeConfig) -> None:
    """Connect unless this process already is (tests run several stages in one process)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        connect(runtime)


def connect(runtime: RuntimeConfig) -> str:
    address = runtime.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray_environment()
        import ray

        ray.init(address=address, log_to_driver=True)
        log.info("joined the Ray cluster at %s; its own settings apply (authentication: %s)", address,
                 os.environ.get("RAY_AUTH_MODE", "the cluster's default"))
        return ray.get_runtime_context().gcs_address
    gcs = start_local(log_to_driver=True)
    log.info("started a local Ray cluster (%d CPUs) on %s with token authentication", os.cpu_count(), LOOPBACK)
    return gcs
