"""A Ray cluster the pipeline starts is closed: every port it opens listens on loopback only,
a client without the cluster's token is refused, and the token is in no file Ray writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from helpers import REPO

pytestmark = pytest.mark.slow
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}
CONNECT = "import ray; ray.init(address='{address}'); print(ray.get(ray.remote(lambda: 'RAN').remote()))"
# Ray retries a GCS it cannot reach (or that refuses it) 20 times, about a second each; a client
# the test expects to be refused, or a head whose GCS already died, needs only a couple of tries.
GCS_WAIT, SHORT = "RAY_gcs_server_port_wait_time_s", "2"
SHORT_GCS_WAIT = {GCS_WAIT: SHORT}


def _listening(pids: set[int]) -> list[tuple[str, int, str]]:
    found = []
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            found.append((conn.laddr.ip, conn.laddr.port, psutil.Process(conn.pid).name()))
    return found


def _tree(pid: int) -> set[int]:
    root = psutil.Process(pid)
    group = os.getpgid(pid)
    members = {p.pid for p in psutil.process_iter() if _pgid(p.pid) == group}
    return {pid} | {p.pid for p in root.children(recursive=True)} | members


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _client(address: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CONNECT.format(address=address)], env=env, capture_output=True,
                          text=True, timeout=180, cwd=REPO)


def test_the_flows_cluster_is_closed(tmp_path):
    from tasks.ray_head import local_ray_cluster

    os.environ["MMBERT_RAY_TMP"] = str(Path("/tmp") / f"mmbert-ray-closed-{os.getpid()}")
    try:
        with local_ray_cluster() as head:
            address = head.address
            allowed = _client(address, dict(os.environ))  # the token is in this process's environment now
            assert allowed.returncode == 0 and "RAN" in allowed.stdout, allowed.stderr[-2000:]
            anonymous = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
            refused = _client(address, {**anonymous, **SHORT_GCS_WAIT})
            wrong = _client(address, {**os.environ, "RAY_AUTH_TOKEN": "not-the-token", **SHORT_GCS_WAIT})
            listeners = _listening(_tree(head.proc.pid))
            token = head.auth["RAY_AUTH_TOKEN"]
            temp = Path(os.environ["MMBERT_RAY_TMP"])
            leaked = [str(p) for p in temp.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000
                      and token.encode() in p.read_bytes()]
    finally:
        os.environ.pop("MMBERT_RAY_TMP")
    assert refused.returncode != 0 and "RAN" not in refused.stdout
    assert wrong.returncode != 0 and "InvalidAuthToken" in wrong.stderr + wrong.stdout
    assert {name for _, _, name in listeners} >= {"gcs_server", "raylet"}, listeners
    exposed = [entry for entry in listeners if entry[0] not in LOOPBACK]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert not leaked, f"the token is written in {leaked}"


def test_a_stages_private_cluster_is_closed():
    """`python -m mmbert.train` with no cluster to join starts one in-process, closed too. A
    second one started in the same process once the first is shut down (tests run stages in
    their own process) gets a token of its own and starts: Ray keeps the first token it read."""
    script = textwrap.dedent("""
        import os, sys, time, psutil
        from mmbert.train.cluster import start_local
        address = start_local(log_to_driver=False)
        import ray
        ray.get(ray.remote(lambda: 1).remote())
        time.sleep(2)
        me = psutil.Process()
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        for c in psutil.net_connections("inet"):
            if c.status == psutil.CONN_LISTEN and c.pid in pids:
                print("LISTEN", c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name())
        print("ADDRESS", address, os.environ["RAY_AUTH_MODE"])
        first = os.environ["RAY_AUTH_TOKEN"]
        ray.shutdown()
        start_local(log_to_driver=False)
        print("SECOND", ray.get(ray.remote(lambda: 2).remote()), os.environ["RAY_AUTH_TOKEN"] != first)
        ray.shutdown()
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["MMBERT_RAY_TMP"] = f"/tmp/mmbert-ray-private-{os.getpid()}"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    listeners = [line.split()[1:] for line in lines if line.startswith("LISTEN")]
    assert any(name == "gcs_server" for *_, name in listeners), lines
    assert all(ip in LOOPBACK for ip, *_ in listeners), listeners
    assert any(line.startswith("ADDRESS 127.0.0.1:") and line.endswith("token") for line in lines), lines
    assert "SECOND 2 True" in lines, lines
    time.sleep(1)


def test_a_head_that_fails_its_start_up_is_started_once_more(monkeypatch, caplog):
    """The GCS port free_port() chose is taken before the head binds it (the race a free port
    leaves open; on a loaded machine the raylet's own start-up can fail the same way): `ray
    start` exits, and the head is started once more on another port instead of leaving the
    stages to wait on a dead cluster."""
    import socket

    import tasks.ray_head as ray_head

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port, real_port, real_start, starts = taken.getsockname()[1], ray_head.free_port, ray_head.RayHead._start, 0
    first_port = iter([port])

    def start(head) -> None:
        nonlocal starts
        starts += 1
        # the first head's GCS dies at once on the taken port: no need to sit through Ray's
        # retries of it; the head started once more waits as long as Ray does by default
        if starts == 1:
            monkeypatch.setenv(GCS_WAIT, SHORT)
        else:
            monkeypatch.delenv(GCS_WAIT)
        real_start(head)

    monkeypatch.setattr(ray_head, "free_port", lambda: next(first_port, None) or real_port())
    monkeypatch.setattr(ray_head.RayHead, "_start", start)
    try:
        with caplog.at_level("WARNING", logger="mmbert.flow"), ray_head.local_ray_cluster() as head:
            address = head.address
            ran = subprocess.run([sys.executable, "-c", CONNECT.format(address=address)], capture_output=True,
                                 text=True, timeout=180, env={**os.environ, **head.auth})
    finally:
        taken.close()
    assert address != f"127.0.0.1:{port}" and starts == 2
    assert "failed its start-up" in caplog.text
    assert ran.returncode == 0 and "RAN" in ran.stdout, ran.stderr[-2000:]
