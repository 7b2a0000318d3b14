"""Joining a Ray cluster: the configured address, else $RAY_ADDRESS (set by the Prefect
flow, which starts one local cluster for all stages), else a private local cluster."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mmbert.config import RuntimeConfig

log = logging.getLogger("mmbert.train")
# Short and outside /tmp/ray: Ray's unix socket paths must stay under ~107 characters.
DEFAULT_TEMP_DIR = "/tmp/mmbert-ray"


def ray_environment() -> None:
    """Settings that must be in place before Ray is imported."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # else it writes ~/.ray/auth_token
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no internet here
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


def connect(runtime: RuntimeConfig) -> str:
    ray_environment()
    import ray

    address = runtime.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        log.info("joined the Ray cluster at %s", address)
    else:
        temp_dir = os.environ.get("MMBERT_RAY_TMP", DEFAULT_TEMP_DIR)
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        # The dashboard serves the State API that Ray Train's controller polls.
        ray.init(num_cpus=os.cpu_count(), include_dashboard=True, _temp_dir=temp_dir, log_to_driver=True)
        log.info("started a local Ray cluster (%d CPUs)", os.cpu_count())
    return ray.get_runtime_context().gcs_address
