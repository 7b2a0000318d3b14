"""A phase trains from an external checkpoint through DVC, for each layout: a transformers
folder, a hub id at a pinned revision (from huggingface_hub's cache, offline) and a Composer
checkpoint of the official runs. The phase's learning rate is tiny and its weight decay 0, so
its final weights must be its starting ones: the checkpoint's. Switching init_from re-runs
the checkpoint's fetch stage and the phase, not the phase's mix."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
import yaml

from external_fixtures import write_composer, write_hub_cache, write_transformers_folder
from helpers import copy_repo, dvc_repro, stage_env

pytestmark = pytest.mark.slow
REVISION = "89abcdef0123456789abcdef0123456789abcdef"


def test_a_phase_trains_from_each_layout_through_dvc(tmp_path):
    from safetensors.torch import load_file

    from mmbert.config import parse_config
    from mmbert.modeling import build_config, new_model
    from mmbert.tokenizer import load_tokenizer
    from tasks.ray_head import local_ray_cluster

    repo = copy_repo(tmp_path / "repo", "micro")
    cache = tmp_path / "hf-cache"
    env = stage_env(MMBERT_RAY_TMP=f"/tmp/mmbert-ray-ext-{os.getpid()}", HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    dvc_repro(repo, env, "tokenizer")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    cfg = parse_config(params)
    phase = cfg.phases["decay-all"]
    source = new_model(build_config(cfg.model, len(load_tokenizer(repo / "outputs" / "tokenizer")),
                                    rope_theta_global=phase.rope_theta_global,
                                    rope_theta_local=phase.rope_theta_local), seed=11).eval()
    folder = write_transformers_folder(tmp_path / "folder", source, repo / "outputs" / "tokenizer")
    write_hub_cache(cache, "someone/mmbert-micro", REVISION, folder)
    composer = write_composer(tmp_path / "ep0-ba7-rank0.pt", source, theta=phase.rope_theta_global)
    params["checkpoints"] = {
        "from-folder": {"hub": None, "revision": None, "path": str(folder), "file": None, "format": "transformers"},
        "from-hub": {"hub": "someone/mmbert-micro", "revision": REVISION, "path": None, "file": None,
                     "format": "transformers"},
        "from-composer": {"hub": None, "revision": None, "path": str(composer), "file": None, "format": "composer"}}
    params["phases"]["decay-all"].update(weight_decay=0.0)
    params["phases"]["decay-all"]["lr"]["peak"] = 1e-12

    with local_ray_cluster() as head:
        env.update({"RAY_ADDRESS": head.address, **head.auth})
        for name in ("from-folder", "from-hub", "from-composer"):
            params["phases"]["decay-all"]["init_from"] = name
            other = "from-composer" if name != "from-composer" else "from-folder"
            params["merge"].update(base=name, models=["decay-all", other])  # a merge that fits the new chain
            (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            subprocess.run([sys.executable, "-m", "mmbert.dvc_yaml"], cwd=repo, check=True, capture_output=True)
            ran = re.findall(r"Running stage '([^']+)'", dvc_repro(repo, env, "train@decay-all").stdout)
            assert f"fetch@{name}" in ran and "train@decay-all" in ran, ran
            assert name == "from-folder" or "mix@decay-all" not in ran  # the mix does not depend on init_from
            trained = load_file(repo / "outputs" / "train" / "decay-all" / "model" / "model.safetensors")
            for key, value in source.state_dict().items():
                if key in trained:
                    assert torch.allclose(trained[key], value, atol=1e-6), (name, key)
