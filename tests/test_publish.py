"""The optional publish stage: a dry run prints exactly the files it would upload (sizes and
SHA-256 computed here independently), the stage records a receipt, an upload without HF_TOKEN
or of a checkpoint without a readable model card is refused before anything goes out, and the
stage exists in dvc.yaml and the flow only when params enable it."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

import pytest
import yaml

from mmbert.config import ConfigError, parse_config
from mmbert.preset import preset_values

SECRET = "hf_thisTokenMustNeverBePrinted"
REPO_ID = "someone/mmbert-repro-micro"


@pytest.fixture()
def run(micro, tmp_path):
    """A params file whose output_dir holds a trained-looking pretrain checkpoint with its card."""
    from mmbert.cards import write_phase_card
    from mmbert.modeling import build_config, new_model
    from mmbert.tokenizer import load_tokenizer

    micro_cfg, micro_out = micro
    tokenizer = load_tokenizer(micro_out / "tokenizer")
    folder = tmp_path / "out" / "train" / "pretrain" / "model"
    new_model(build_config(micro_cfg.model, len(tokenizer)), seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    write_phase_card(micro_cfg, "pretrain", {"heldout_loss": 6.5, "steps": 3}, None, folder)
    raw = preset_values("micro")
    raw["output_dir"] = str(tmp_path / "out")
    raw["publish"].update(enabled=True, model="pretrain", repo_id=REPO_ID, dry_run=True)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    return params, raw, folder


def _expected_files(folder):
    return {str(p.relative_to(folder)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in folder.rglob("*") if p.is_file()}


def _main(params, **flags):
    from mmbert.config import load_config
    from mmbert.publish import main

    args = argparse.Namespace(**{"dry_run": False, "model": None, "repo_id": None, **flags})
    main(load_config(params), args)


def test_a_dry_run_prints_every_file_and_writes_nothing(run, tmp_path):
    params, raw, folder = run
    env = dict(os.environ, HF_TOKEN=SECRET)
    result = subprocess.run([sys.executable, "-m", "mmbert.publish", "--params", str(params), "--dry-run",
                             "--repo-id", "other/name"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = _expected_files(folder)
    assert {"config.json", "model.safetensors", "README.md", "lineage.json", "tokenizer.json"} <= set(expected)
    printed = {}
    for line in result.stdout.splitlines()[1:]:
        path, size, _, digest = line.split()
        printed[path] = (int(size.replace(",", "")), digest)
    assert printed == expected
    head = result.stdout.splitlines()[0]
    assert head.startswith(f"publish: would upload {folder} to https://huggingface.co/other/name (branch main, ")
    assert f"{len(expected)} files, {sum(s for s, _ in expected.values()):,} bytes" in head
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "out" / "publish").exists()


def test_the_stage_records_what_it_would_upload(run, tmp_path):
    from mmbert.io import read_json

    params, raw, folder = run
    _main(params)
    receipt = read_json(tmp_path / "out" / "publish" / "receipt.json")
    assert (receipt["repo_id"], receipt["revision"], receipt["dry_run"]) == (REPO_ID, "main", True)
    assert {f["path"]: (f["size"], f["sha256"]) for f in receipt["files"]} == _expected_files(folder)
    assert "uploaded" not in receipt
    record = read_json(tmp_path / "out" / "publish" / "effective_params.json")
    assert record["params"]["publish"]["repo_id"] == REPO_ID


def test_an_upload_needs_hf_token_before_anything_is_read(run, tmp_path, monkeypatch):
    params, raw, folder = run
    _main(params)  # a dry run's receipt, which a refused upload must leave as it is
    receipt = (tmp_path / "out" / "publish" / "receipt.json").read_bytes()
    raw["publish"]["dry_run"] = False
    raw["publish"]["model"] = "midtrain"  # no checkpoint there: the token is checked first
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="HF_TOKEN is not set"):
        _main(params)
    assert (tmp_path / "out" / "publish" / "receipt.json").read_bytes() == receipt


def test_a_checkpoint_without_a_readable_card_is_refused(run):
    params, raw, folder = run
    card = (folder / "README.md").read_text()
    (folder / "README.md").write_text("---\nlanguage: [unclosed\n---\n" + card.split("---", 2)[2])
    with pytest.raises(SystemExit, match=r"README.md: the hub cannot read this model card"):
        _main(params, dry_run=True)
    (folder / "README.md").unlink()
    with pytest.raises(SystemExit, match=r"no README.md; a published checkpoint needs its config and model card"):
        _main(params, dry_run=True)
    with pytest.raises(SystemExit, match=r"no such checkpoint folder"):
        _main(params, dry_run=True, model="midtrain")


def test_params_name_what_is_missing():
    raw = preset_values("micro")
    raw["publish"].update(enabled=True, repo_id=None)
    with pytest.raises(ConfigError, match="publish.repo_id is null"):
        parse_config(raw)
    raw["publish"].update(repo_id=REPO_ID, model="decay-x")
    with pytest.raises(ConfigError, match="publish.model: 'decay-x' is neither 'merged' nor a phase"):
        parse_config(raw)
    raw["publish"].update(model="merged", repo_id="not a repo")
    with pytest.raises(ConfigError, match="publish.repo_id"):
        parse_config(raw)


def test_the_stage_exists_only_when_enabled():
    from flows.plan import stage_waves
    from mmbert.dvc_yaml import render
    from mmbert.stages import all_stages

    raw = preset_values("micro")
    off = parse_config(raw)
    assert "publish" not in all_stages(off) and "  publish:" not in render(off)
    assert stage_waves(off)[-1] == ["report"]
    raw["publish"].update(enabled=True, model="decay-all", repo_id=REPO_ID)
    on = parse_config(raw)
    assert all_stages(on)[-1] == "publish" and stage_waves(on)[-1] == ["publish"]
    stage = yaml.safe_load(render(on))["stages"]["publish"]
    assert stage["cmd"] == "python -m mmbert.publish"
    assert stage["deps"][0] == "${output_dir}/train/decay-all/model" and "mmbert/publish.py" in stage["deps"]
    assert stage["params"] == ["publish"] and stage["outs"] == ["${output_dir}/publish"]
