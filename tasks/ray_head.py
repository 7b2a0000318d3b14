"""A local Ray head that the pipeline's stages join through $RAY_ADDRESS.

Run as a process (`python -m tasks.ray_head`): it starts the cluster, prints its address
and holds it until terminated; stopping this one process (by its PID) stops the cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ADDRESS_PREFIX = "RAY_HEAD_ADDRESS="


def _serve() -> None:
    from mmbert.train.cluster import DEFAULT_TEMP_DIR, ray_environment

    ray_environment()
    import ray

    temp_dir = os.environ.get("MMBERT_RAY_TMP", DEFAULT_TEMP_DIR)
    Path(temp_dir).mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=True, _temp_dir=temp_dir, log_to_driver=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"{ADDRESS_PREFIX}{ray.get_runtime_context().gcs_address}", flush=True)
    stop.wait()
    ray.shutdown()


@contextmanager
def local_ray_cluster(timeout: float = 120.0) -> Iterator[str]:
    """Start a head process, yield its address, stop it (by PID) on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "tasks.ray_head"], stdout=subprocess.PIPE, text=True)
    try:
        address = _read_address(proc, timeout)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_address(proc: subprocess.Popen, timeout: float) -> str:
    found: list[str] = []

    def scan() -> None:
        for line in proc.stdout:
            if line.startswith(ADDRESS_PREFIX):
                found.append(line[len(ADDRESS_PREFIX):].strip())
                return

    reader = threading.Thread(target=scan, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        raise RuntimeError(f"the Ray head (pid {proc.pid}) did not report an address within {timeout:.0f} s")
    return found[0]


if __name__ == "__main__":
    _serve()
