"""Presets are written into params.yaml (the values DVC tracks are the values stages use), and
each stage records exactly those values."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import REPO
from mmbert.config import ConfigError, parse_config
from mmbert.preset import apply_preset, preset_values
from mmbert.stages import all_stages, effective_params, lookup


@pytest.fixture()
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)
    return path


def test_applying_a_preset_writes_its_values_and_reports_them(params_file):
    changes = apply_preset(params_file, "micro")
    assert ("model.hidden_size", 96, 32) in changes
    assert ("runtime.log_every", 10, 5) in changes
    assert yaml.safe_load(params_file.read_text()) == preset_values("micro")
    assert "# mmbert-repro: every setting of the run" in params_file.read_text()  # comments kept


def test_switching_back_restores_the_values_and_keeps_the_comments(params_file):
    original = params_file.read_text()
    apply_preset(params_file, "paper-base")
    apply_preset(params_file, "micro")
    assert apply_preset(params_file, "embedded")
    assert yaml.safe_load(params_file.read_text()) == yaml.safe_load(original)
    comments = [line[line.index("#"):] for line in original.splitlines() if "#" in line]
    now = params_file.read_text()
    assert [c for c in comments if c not in now] == []
    assert apply_preset(params_file, "embedded") == []  # nothing left to change


def test_where_and_on_which_cluster_are_kept(params_file):
    text = params_file.read_text().replace("output_dir: outputs", "output_dir: /data/run1")
    params_file.write_text(text.replace("ray_address: null", "ray_address: 10.0.0.5:6379"))
    apply_preset(params_file, "paper-small")
    params = yaml.safe_load(params_file.read_text())
    assert params["output_dir"] == "/data/run1" and params["runtime"]["ray_address"] == "10.0.0.5:6379"
    assert params["model"]["hidden_size"] == 384


def test_dry_run_and_bad_names_write_nothing(params_file):
    original = params_file.read_bytes()
    assert apply_preset(params_file, "micro", dry_run=True)
    with pytest.raises(ConfigError, match="preset 'paper-huge' is unknown"):
        apply_preset(params_file, "paper-huge")
    assert params_file.read_bytes() == original


def test_the_command_prints_every_change(params_file):
    result = subprocess.run([sys.executable, "-m", "mmbert.preset", "micro", "--params", str(params_file),
                             "--dry-run"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "preset micro: would change" in result.stdout and "  model.hidden_size: 96 -> 32" in result.stdout


@pytest.mark.parametrize("preset", ["micro", "embedded", "paper-small"])
def test_each_stage_records_the_params_values_key_by_key(preset):
    """What a stage records is params.yaml's value for each key it reads, and together the
    records hold every key: an edit of any key changes some stage's recorded configuration."""
    raw = preset_values(preset)
    cfg = parse_config(raw)
    covered = {"output_dir"} | ({"checkpoints"} if not raw["checkpoints"] else set())  # none: no fetch stage
    covered |= {"publish"} if not raw["publish"]["enabled"] else set()  # off: no publish stage
    for stage in all_stages(cfg):
        record = effective_params(cfg, stage)
        for key, value in record["params"].items():
            assert value == _jsonable(lookup(raw, key)), (stage, key)
            covered.add(key)
        if "runtime" in record:
            assert record["runtime"] == raw["runtime"]
            covered.add("runtime")
    uncovered = [key for key in _leaves(raw) if not any(key == c or key.startswith(f"{c}.") for c in covered)]
    assert not uncovered, uncovered


def _leaves(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [f"{prefix}{key}"]
    return out


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (list, tuple)) else (
        {k: _jsonable(v) for k, v in value.items()} if isinstance(value, dict) else value)


def test_custom_decay_runs_fetch_decay_merge_eval_in_dvcs_dag(tmp_path):
    """The preset writes its chain into dvc.yaml: the released checkpoints are fetched, the
    decay starts from the end of mid-training, the merge takes it with the released decays."""
    import re
    import subprocess
    import sys

    from helpers import copy_repo

    repo = copy_repo(tmp_path / "repo")
    out = subprocess.run([sys.executable, "-m", "mmbert.preset", "custom-decay"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    assert "phases.pretrain: " in out and "(removed)" in out
    dag = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', dag))
    assert {("fetch@released-ext", "train@decay-custom"), ("train@decay-custom", "merge"),
            ("fetch@released-decay-all", "merge"), ("merge", "eval"), ("mix@decay-custom", "train@decay-custom"),
            ("tokenizer", "fetch@released-ext")} <= edges, sorted(edges)
    assert not any("pretrain" in a or "midtrain" in a for a, _ in edges)
    result = subprocess.run([sys.executable, "-m", "mmbert.dvc_yaml", "--check"], cwd=repo, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
