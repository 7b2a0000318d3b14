"""dvc.yaml and params.yaml describe the same pipeline; the flow's stage order is right."""

from __future__ import annotations

import pytest
import yaml

from flows.plan import check_dvc_matches, stage_waves
from mmbert.config import ConfigError, load_config, parse_config


def _lookup(tree, dotted):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def test_dvc_train_chain_matches_params(repo_root):
    cfg = load_config(repo_root / "params.yaml")
    check_dvc_matches(cfg, repo_root)
    train = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]["train"]["foreach"]
    assert train["decay-all"] == {"init": "train/midtrain/model"} and train["pretrain"] == {"init": "tokenizer"}


def test_mismatch_is_reported(repo_root, raw_params):
    raw_params["phases"]["decay-all"]["init_from"] = "decay-eng"
    with pytest.raises(ConfigError, match="dvc.yaml"):
        check_dvc_matches(parse_config(raw_params), repo_root)


def test_every_params_key_of_every_stage_exists(repo_root, raw_params):
    stages = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        items = stage.get("foreach", [None])
        keys = items if isinstance(items, list) else list(items)
        for item in keys:
            for param in body["params"]:
                key = param.replace("${item}", str(item)).replace("${key}", str(item))
                _lookup(raw_params, key)  # KeyError names a stale key


def test_decays_run_in_one_wave_after_midtrain(repo_root):
    waves = stage_waves(load_config(repo_root / "params.yaml"))
    assert waves[:3] == [["corpus"], ["tokenizer"], [f"mix@{p}" for p in
                                                      ["pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all"]]]
    assert waves[3:6] == [["train@pretrain"], ["train@midtrain"], ["train@decay-eng", "train@decay-cont", "train@decay-all"]]
    assert waves[6:] == [["merge"], ["eval", "eval-glue", "eval-xtreme", "eval-lowres_qa", "eval-mteb"], ["bench"],
                         ["report"]]
