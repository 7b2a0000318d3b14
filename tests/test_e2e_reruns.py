"""Re-running parts of the end-to-end pipeline (tests/e2e_pipeline.py) on this module's own
copy of it: a forced re-evaluation, runtime settings, `dvc exp run`, the eval-only flow and
params that fail before any stage."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from e2e_pipeline import built_pipeline, pipeline_copy, prefect_server, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, worker_id):
    """This module's copy of the session's pipeline, and a Prefect server for its flow runs."""
    built = built_pipeline(tmp_path_factory, worker_id)
    root = tmp_path_factory.mktemp("e2e-reruns")
    with prefect_server(root / "prefect", built["env"]) as env:
        yield {**built, "repo": pipeline_copy(built, root / "repo"), "env": env, "root": root}


def test_reevaluation_gives_identical_metrics(pipeline):
    repo, env = pipeline["repo"], pipeline["env"]
    before = (repo / "outputs" / "eval" / "metrics.json").read_bytes()
    result = run([sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "eval"], repo, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (repo / "outputs" / "eval" / "metrics.json").read_bytes() == before


def test_runtime_params_change_nothing(pipeline):
    repo, env = pipeline["repo"], pipeline["env"]
    good = (repo / "params.yaml").read_text()
    params = yaml.safe_load(good)
    params["runtime"].update(log_every=7, checkpoint_every=3, ray_address="127.0.0.1:1", torch_threads=2)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = run([sys.executable, "-m", "dvc", "status", "--json"], repo, env)
    finally:
        (repo / "params.yaml").write_text(good)
    assert result.returncode == 0 and json.loads(result.stdout) == {}, result.stdout


def test_dvc_exp_run_sets_a_param(pipeline):
    """DVC's own way to vary a parameter, and an edit by hand, together: the one stage that
    reads them runs, with both new values (the edit-then-`dvc repro` path of a single stage is
    test_a_paper_suite_is_its_own_stage's)."""
    repo, env = pipeline["repo"], pipeline["env"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["eval"]["langid"]["epochs"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "eval.bitext.max_pairs=30"], repo, env,
                  timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the report stage draws from the eval metrics, so it follows
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["eval", "report"]
    record = json.loads((repo / "outputs" / "eval" / "effective_params.json").read_text())
    assert record["params"]["eval"]["bitext"]["max_pairs"] == 30
    assert record["params"]["eval"]["langid"]["epochs"] == params["eval"]["langid"]["epochs"]
    assert yaml.safe_load((repo / "params.yaml").read_text())["eval"]["bitext"]["max_pairs"] == 30


def test_only_eval_flow_parameter(pipeline):
    """The eval-only deployment's path: the flow with only_eval runs one task, and DVC skips it."""
    result = run([sys.executable, "-m", "flows.reproduce", "--repo", str(pipeline["repo"]), "--only-eval"],
                  pipeline["repo"], pipeline["env"], timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 of 5 stages ran" in result.stdout + result.stderr  # the embedded eval and the 4 paper suites


def test_bad_params_fail_before_any_stage(pipeline):
    repo, env = pipeline["repo"], pipeline["env"]
    good = (repo / "params.yaml").read_text()
    params = yaml.safe_load(good)
    params["phases"]["decay-eng"]["init_from"] = None
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = (repo / "outputs" / "corpus" / "stats.json").stat().st_mtime
    try:
        result = run([sys.executable, "-m", "flows.reproduce", "--repo", str(repo)], repo, env, timeout=300)
    finally:
        (repo / "params.yaml").write_text(good)
    assert result.returncode != 0
    assert "phases.decay-eng.init_from" in result.stdout + result.stderr
    assert "dvc repro" not in result.stdout + result.stderr
    assert (repo / "outputs" / "corpus" / "stats.json").stat().st_mtime == before
