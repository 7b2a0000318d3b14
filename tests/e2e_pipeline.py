"""The micro pipeline through a real Prefect server, a served deployment, DVC and a local Ray
cluster, run once per test session and shared by the end-to-end modules (tests/test_e2e*.py).

The first xdist worker to need it builds it under a file lock; the others wait for it. What
the tests ask of the server about the run (its task runs and artifacts) is read from it while
it runs and kept beside the repo, so the modules may run on any worker after the server is
gone. A module that changes params or re-runs stages works on its own copy of the repo
(`pipeline_copy`), so no module sees another's changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import copy_repo

PREFECT = Path(sys.executable).parent / "prefect"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process we started, and its children, by its PID (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def api_post(api: str, path: str, body: dict) -> list[dict]:
    """Ask a Prefect server directly (the in-process client is bound at import)."""
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def stage_env() -> dict:
    """The environment the pipeline's commands run in (this interpreter's bin first on PATH)."""
    env = dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", MMBERT_RAY_TMP=f"/tmp/mmbert-ray-e2e-{os.getpid()}")
    env["PATH"] = f"{PREFECT.parent}{os.pathsep}{env['PATH']}"
    return env


@contextmanager
def prefect_server(root: Path, env: dict) -> Iterator[dict]:
    """`prefect server start` on loopback, its database under `root`; yields `env` pointed at
    it; stops it by its PID."""
    port = free_port()
    env = dict(env, PREFECT_HOME=str(root / "home"), PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    root.mkdir(parents=True, exist_ok=True)
    with (root / "server.log").open("w") as log:
        server = subprocess.Popen([str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for(lambda: _healthy(env["PREFECT_API_URL"]), "Prefect server", 120)
            yield env
        finally:
            _stop(server)


def _micro_repo(dest: Path) -> None:
    """A copy of the project in a fresh git+DVC repo, switched to the micro preset the way the
    README says."""
    copy_repo(dest)
    switched = subprocess.run([sys.executable, "-m", "mmbert.preset", "micro"], cwd=dest, capture_output=True,
                              text=True, check=True).stdout
    assert "preset micro: changed" in switched and "model.hidden_size: 96 -> 32" in switched, switched


def _flow_run_id(output: str) -> str | None:
    import re

    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    return match.group(1) if match else None


def _build(root: Path) -> None:
    """`prefect deployment run reproduce-mmbert/full --watch` on a served deployment, and the
    server's record of that run, written to root/run.json."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    _micro_repo(repo)
    with prefect_server(root / "prefect", stage_env()) as env:
        with (root / "serve.log").open("w") as log:
            serve = subprocess.Popen([sys.executable, "-m", "flows.serve", "--repo", str(repo)], cwd=repo, env=env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait_for(lambda: "reproduce-mmbert/full" in run([str(PREFECT), "deployment", "ls"], repo, env).stdout,
                          "served deployments", 120)
                started = time.monotonic()
                done = run([str(PREFECT), "deployment", "run", "reproduce-mmbert/full", "--watch"], repo, env,
                           timeout=1800)
                elapsed = time.monotonic() - started
                record = {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
                          "elapsed": elapsed, "flow_run_id": _flow_run_id(done.stdout)}
                if record["flow_run_id"]:
                    of_run = {"flow_runs": {"id": {"any_": [record["flow_run_id"]]}}, "limit": 200}
                    record["task_runs"] = api_post(env["PREFECT_API_URL"], "/task_runs/filter", of_run)
                    record["artifacts"] = api_post(env["PREFECT_API_URL"], "/artifacts/filter", of_run)
            finally:
                _stop(serve)
    (root / "run.json").write_text(json.dumps(record))


def built_pipeline(tmp_path_factory, worker_id: str) -> dict:
    """The session's micro pipeline (built on first use): its repo (read it, never change it),
    the environment its commands ran in and the server's record of the run."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # this run's folder, shared by its workers
    root = shared / "e2e-pipeline"
    with FileLock(str(shared / "e2e-pipeline.lock")):
        if not (root / "run.json").exists():
            shutil.rmtree(root, ignore_errors=True)
            _build(root)
    record = json.loads((root / "run.json").read_text())
    return {"repo": root / "repo", "root": root, "env": stage_env(), **record}


def pipeline_copy(pipeline: dict, dest: Path) -> Path:
    """A module's own copy of the built repo (git, DVC cache, lock and outputs)."""
    return Path(shutil.copytree(pipeline["repo"], dest, symlinks=True))
