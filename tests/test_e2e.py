"""The whole chain on the micro profile through a real Prefect server, a served deployment,
DVC and a local Ray cluster; then DVC's caching: a no-op repro and an eval-only re-run."""

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
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import REPO

pytestmark = pytest.mark.slow
STAGES = {"corpus", "tokenizer", "merge", "eval", "bench"} | {
    f"{kind}@{phase}" for kind in ("mix", "train") for phase in ("pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all")
}


def _copy_repo(dest: Path) -> None:
    """The working tree as git sees it (tracked and not ignored), in a fresh git+DVC repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["profile"] = "micro"
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "dvc.lock").unlink(missing_ok=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    repo = root / "repo"
    repo.mkdir()
    _copy_repo(repo)
    api = f"http://127.0.0.1:{_free_port()}/api"
    env = dict(os.environ, PREFECT_HOME=str(root / "prefect"), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", MMBERT_RAY_TMP=f"/tmp/mmbert-ray-e2e-{os.getpid()}")
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    port = api.split(":")[2].split("/")[0]
    logs = {name: (root / f"{name}.log").open("w") for name in ("server", "serve")}
    server = subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                              env=env, stdout=logs["server"], stderr=subprocess.STDOUT, start_new_session=True)
    serve = None
    try:
        _wait_for(lambda: _healthy(api), "Prefect server", 120)
        serve = subprocess.Popen([sys.executable, "-m", "flows.serve", "--repo", str(repo)], cwd=repo, env=env,
                                 stdout=logs["serve"], stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for(lambda: "reproduce-mmbert/full" in _run(["prefect", "deployment", "ls"], repo, env).stdout,
                  "served deployments", 120)
        started = time.monotonic()
        run = _run(["prefect", "deployment", "run", "reproduce-mmbert/full", "--watch"], repo, env, timeout=1800)
        elapsed = time.monotonic() - started
        yield {"repo": repo, "env": env, "run": run, "elapsed": elapsed, "root": root}
    finally:
        for proc in (serve, server):
            if proc is not None:
                _stop(proc)
        for handle in logs.values():
            handle.close()


def _run(cmd: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _flow_run_id(output: str) -> str:
    match = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert match, output
    return match.group(1)


def test_deployment_run_completes(pipeline):
    run = pipeline["run"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "Completed" in run.stdout
    print(f"micro pipeline through the deployment: {pipeline['elapsed']:.0f} s")


def _api_post(api: str, path: str, body: dict) -> list[dict]:
    """Ask the test's Prefect server directly (the in-process client is bound at import)."""
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_one_task_run_per_stage(pipeline):
    from datetime import datetime

    flow_run_id = _flow_run_id(pipeline["run"].stdout)
    runs = _api_post(pipeline["env"]["PREFECT_API_URL"], "/task_runs/filter",
                     {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})
    names = sorted(r["name"] for r in runs)
    assert names == sorted(STAGES), names
    assert all(r["state"]["type"] == "COMPLETED" for r in runs)
    decays = [r for r in runs if r["name"].startswith("train@decay")]
    start = [datetime.fromisoformat(r["start_time"]) for r in decays]
    end = [datetime.fromisoformat(r["end_time"]) for r in decays]
    assert all(e > max(start) for e in end), "the three decay runs did not overlap in time"


def test_outputs(pipeline):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = pipeline["repo"] / "outputs"
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"midtrain", "decay-eng", "decay-cont", "decay-all", "merged"}
    for name, row in metrics["models"].items():
        assert row["heldout_loss"]["all"] > 0
        if name in ("midtrain", "merged"):  # eval.downstream_models
            assert 0 <= row["langid_accuracy"] <= 1 and 0 <= row["bitext_accuracy"] <= 1
    assert metrics["groups"]["decay_only"] > 0
    assert "| merged |" in (out / "eval" / "report.md").read_text()
    model = AutoModelForMaskedLM.from_pretrained(out / "merge" / "model")
    assert AutoTokenizer.from_pretrained(out / "merge" / "model").mask_token_id == 4 != model.config.pad_token_id
    weights = {p: (out / "train" / p / "model" / "model.safetensors").read_bytes()
               for p in ("pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all")}
    assert len(set(weights.values())) == 5, "every phase must write its own weights"
    for phase in ("pretrain", "decay-all"):
        m = json.loads((out / "train" / phase / "metrics.json").read_text())
        assert m["tokens_per_second"] > 0 and m["steps"] > 0
        assert (out / "train" / phase / "state" / "optimizer.pt").is_file()
    bench = json.loads((out / "bench" / "results.json").read_text())["models"]
    assert set(bench) == {"merged", "paper-small", "xlmr-base"}
    lock = yaml.safe_load((pipeline["repo"] / "dvc.lock").read_text())["stages"]
    assert set(lock) == STAGES


def test_second_repro_runs_nothing(pipeline):
    started = time.monotonic()
    result = _run([sys.executable, "-m", "dvc", "repro"], pipeline["repo"], pipeline["env"])
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout, result.stdout
    print(f"no-op dvc repro: {elapsed:.1f} s")


def test_changing_an_eval_param_reruns_only_eval(pipeline):
    repo, env = pipeline["repo"], pipeline["env"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["eval"]["langid"]["epochs"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = _run([sys.executable, "-m", "dvc", "repro"], repo, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["eval"]


def test_only_eval_flow_parameter(pipeline):
    """The eval-only deployment's path: the flow with only_eval runs one task, and DVC skips it."""
    result = _run([sys.executable, "-m", "flows.reproduce", "--repo", str(pipeline["repo"]), "--only-eval"],
                  pipeline["repo"], pipeline["env"], timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 of 1 stages ran" in result.stdout + result.stderr


def test_bad_params_fail_before_any_stage(pipeline):
    repo, env = pipeline["repo"], pipeline["env"]
    good = (repo / "params.yaml").read_text()
    params = yaml.safe_load(good)
    params["phases"]["decay-eng"]["init_from"] = None
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = (repo / "outputs" / "corpus" / "stats.json").stat().st_mtime
    try:
        result = _run([sys.executable, "-m", "flows.reproduce", "--repo", str(repo)], repo, env, timeout=300)
    finally:
        (repo / "params.yaml").write_text(good)
    assert result.returncode != 0
    assert "phases.decay-eng.init_from" in result.stdout + result.stderr
    assert "dvc repro" not in result.stdout + result.stderr
    assert (repo / "outputs" / "corpus" / "stats.json").stat().st_mtime == before
