"""A paper suite as its own stage of the end-to-end pipeline (tests/e2e_pipeline.py), on this
module's own copy of it."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from e2e_pipeline import built_pipeline, pipeline_copy, prefect_server, run

pytestmark = pytest.mark.slow
SUITE_STAGES = {"eval-glue", "eval-xtreme", "eval-lowres_qa", "eval-mteb"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, worker_id):
    """This module's copy of the session's pipeline, and a Prefect server for its flow runs."""
    built = built_pipeline(tmp_path_factory, worker_id)
    root = tmp_path_factory.mktemp("e2e-suites")
    with prefect_server(root / "prefect", built["env"]) as env:
        yield {**built, "repo": pipeline_copy(built, root / "repo"), "env": env, "root": root}


def test_a_paper_suite_is_its_own_stage(pipeline, tmp_path):
    """GLUE on fixtures inside the pipeline: `dvc repro` runs eval-glue alone, a GLUE setting
    re-runs it alone, the eval-only flow runs just the suites it is given, and the standalone
    command scores the pipeline's merged checkpoint."""
    from mmbert.suites import glue, lowres_qa
    from suite_fixtures import suite_refs, write_fixtures

    repo, env = pipeline["repo"], pipeline["env"]
    data = tmp_path / "data"
    write_fixtures(data, suite_refs(glue) + suite_refs(lowres_qa))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["suites"]["data_dir"] = str(data)
    params["suites"]["glue"].update(enabled=True, tasks=["sst2", "mnli", "rte"], epochs=1, batch_size=8)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, "-m", "dvc", "repro"], repo, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # suites.data_dir is shared by the four suites: all re-run, the three still off in a moment;
    # the report stage draws from their metrics, so it follows
    assert sorted(re.findall(r"Running stage '([^']+)'", result.stdout)) == sorted(SUITE_STAGES | {"report"})
    assert not json.loads((repo / "outputs" / "suites" / "xtreme" / "metrics.json").read_text())["enabled"]
    metrics = json.loads((repo / "outputs" / "suites" / "glue" / "metrics.json").read_text())
    assert set(metrics["models"]["merged"]) == {"sst2", "mnli", "rte"}
    assert metrics["protocol"]["rte"]["starts_from"] == "mnli"
    assert "| SST2 |" in (repo / "outputs" / "suites" / "glue" / "report.md").read_text()

    params["suites"]["glue"]["seeds"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, "-m", "dvc", "repro"], repo, env, timeout=900)
    # the report draws only on the low-resource QA suite, so a GLUE setting leaves it cached
    assert re.findall(r"Running stage '([^']+)'", result.stdout) == ["eval-glue"]
    metrics = json.loads((repo / "outputs" / "suites" / "glue" / "metrics.json").read_text())
    assert metrics["models"]["merged"]["sst2"]["seeds"] == 2

    result = run([sys.executable, "-m", "flows.reproduce", "--repo", str(repo), "--only-eval", "--suites", "glue"],
                  repo, env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "0 of 1 stages ran" in result.stdout + result.stderr

    out = tmp_path / "lowres"
    result = run([sys.executable, "-m", "mmbert.evaluate", "--model", "outputs/merge/model", "--name", "merged",
                   "--suite", "lowres_qa", "--data-dir", str(data), "--out", str(out)], repo, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lowres = json.loads((out / "metrics.json").read_text())["models"]["merged"]
    assert set(lowres) == {"tiquad", "foqa"}
    assert "| TiQuAD |" in (out / "report.md").read_text()
