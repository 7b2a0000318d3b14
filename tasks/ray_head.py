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


class RayHead:
    """A head process started at once; `address` waits for it, so the start overlaps
    whatever runs before the first stage that needs Ray."""

    def __init__(self, timeout: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tasks.ray_head"], stdout=subprocess.PIPE, text=True)
        self._timeout = timeout
        self._found: list[str] = []
        self._reader = threading.Thread(target=self._scan, daemon=True)
        self._reader.start()

    def _scan(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(ADDRESS_PREFIX):
                self._found.append(line[len(ADDRESS_PREFIX):].strip())
                return

    @property
    def address(self) -> str:
        self._reader.join(self._timeout)
        if not self._found:
            raise RuntimeError(f"the Ray head (pid {self.proc.pid}) reported no address within {self._timeout:.0f} s")
        return self._found[0]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def local_ray_cluster(timeout: float = 120.0) -> Iterator[RayHead]:
    """Start a head process, yield it, stop it (by PID) on exit."""
    head = RayHead(timeout)
    try:
        yield head
    finally:
        head.stop()


if __name__ == "__main__":
    _serve()
