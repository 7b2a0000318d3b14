"""The local Ray cluster the pipeline's stages share, joined through $RAY_ADDRESS.

`ray start --head --block` in its own process group, closed as mmbert.train.cluster
describes: every Ray process listens on the loopback address only, and the cluster requires
token authentication with a random token that reaches the head and the stages through their
environment only. Stopping the group (by the head's PID) stops the whole cluster.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmbert.train.cluster import DEFAULT_TEMP_DIR, LOOPBACK, closed_cluster_environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


STOP_GRACE_S = 3.0
log = logging.getLogger("mmbert.flow")


class RayHead:
    """A head started at once; `address` waits for it, so the start overlaps whatever runs
    before the first stage that needs Ray."""

    def __init__(self, timeout: float) -> None:
        self.auth = closed_cluster_environment()
        self._timeout = timeout
        self._restarts_left = 1
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        temp_dir = os.environ.get("MMBERT_RAY_TMP", DEFAULT_TEMP_DIR)
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                   f"--node-ip-address={LOOPBACK}", f"--port={self.port}", f"--num-cpus={os.cpu_count()}",
                   f"--temp-dir={temp_dir}", "--include-dashboard=true", f"--dashboard-host={LOOPBACK}",
                   f"--dashboard-port={free_port()}", f"--ray-client-server-port={free_port()}",
                   f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}",
                   "--disable-usage-stats"]
        self.log = Path(temp_dir) / f"head-{self.port}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **self.auth, "RAY_USAGE_STATS_ENABLED": "0"})

    @property
    def address(self) -> str:
        """Ready once `ray start` reports the node up, not merely once the GCS port listens: on a
        loaded machine the raylet can still fail its start-up after that (it waits on its agents),
        and `ray start --block` then takes the whole head down. Such a head is started once more."""
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self._restarts_left == 0:
                    raise RuntimeError(f"the Ray head exited with {self.proc.returncode}; see {self.log}")
                self._restarts_left -= 1
                log.warning("the Ray head failed its start-up (exit %s; see %s); starting it once more",
                            self.proc.returncode, self.log)
                self._start()
                deadline = time.monotonic() + self._timeout
            elif "Ray runtime started." in self.log.read_text(errors="replace"):
                with socket.socket() as s:
                    if s.connect_ex((LOOPBACK, self.port)) == 0:
                        return f"{LOOPBACK}:{self.port}"
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head (pid {self.proc.pid}) did not start within {self._timeout:.0f} s; "
                           f"see {self.log}")

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the cluster's process group, SIGKILL to what is left after `grace` seconds.
        Ray's own orderly stop waits about 30 s on processes that have nothing left to save:
        every stage's output is written atomically before the cluster goes, so none is lost."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@contextmanager
def local_ray_cluster(timeout: float = 120.0) -> Iterator[RayHead]:
    """Start a head, yield it, stop it (by PID) on exit. While it runs, this process's
    environment holds the cluster's token, so the stages it starts inherit it."""
    head = RayHead(timeout)
    saved = {key: os.environ.get(key) for key in head.auth}
    os.environ.update(head.auth)
    try:
        yield head
    finally:
        head.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
