"""The cost plan (mmbert.plan) and the FLOPs formula it shares with the training benchmark,
checked on literal values, and against the paper's own training times."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmbert.config import parse_config
from mmbert.flops import attention_pairs, training_flops
from mmbert.plan import BYTES_PER_TOKEN_STORED, Cluster, flops_per_token, plan
from mmbert.preset import preset_values


def test_training_flops_by_hand():
    # matmul: 3 x (4*16 + 3*6*4) + 16 = 424; decoder 10*4*0.5 = 20; 6 * 3 tokens * 444 = 7992
    # attention: layer 0 global 3*3 = 9 pairs, layers 1-2 window 1 each side: 2+3+2 = 7 each
    # -> 12 * 23 * 4 = 1104
    assert training_flops(4, 6, 3, 3, 2, 10, 0.5, [3]) == 7992 + 1104
    assert attention_pairs(5, None) == 25 and attention_pairs(5, 1) == 13 and attention_pairs(2, 64) == 4


def test_a_phase_costs_its_flops_at_the_clusters_rate():
    cfg = parse_config(preset_values("paper-base"))
    cluster = Cluster(gpu="H100", gpus=16, nodes=2, price_per_gpu_hour=3.0, mfu=0.5)
    result = plan(cfg, cluster)
    stage = {s["stage"]: s for s in result["stages"]}
    pretrain = stage["train@pretrain"]
    flops = 2.3e12 * flops_per_token(cfg, "pretrain", 256_000)
    assert pretrain["flops"] == pytest.approx(flops)
    seconds = flops / (989e12 * 0.5 * 16)
    assert pretrain["wall_hours"] == pytest.approx(seconds / 3600)
    assert pretrain["gpu_hours"] == pytest.approx(seconds * 16 / 3600)
    assert stage["mix@pretrain"]["disk_gb"] == pytest.approx(2.3e12 * BYTES_PER_TOKEN_STORED / 1e9)
    total = sum(s["gpu_hours"] for s in result["stages"])
    assert result["total"]["cost"] == pytest.approx(total * 3.0)
    # a 1024-token row of paper-base in pre-training (mask rate 0.25, the base config's): 6 x
    # (matmuls + the decoder on masked tokens) + 12 x 768 x (8 global layers x 1024 pairs per
    # token + 14 local layers x 127936 / 1024: 129 keys each but at the row's two ends)
    matmul = 22 * (4 * 768**2 + 3 * 1152 * 768) + 768**2
    expected = 6 * (matmul + 256_000 * 768 * 0.25) + 12 * 768 * (8 * 1024 + 14 * 127_936 / 1024)
    assert cfg.phases["pretrain"].mask_rate == 0.25
    assert flops_per_token(cfg, "pretrain", 256_000) == pytest.approx(expected, rel=1e-12)


def test_the_paper_presets_against_the_papers_training_time():
    """8 x H100 (the paper's cluster): mmBERT-small in about 10 days at 25 % MFU (within 1.5x);
    base would take 13.5 days at 40 % where the paper took about 40 (README: the difference)."""
    small = plan(parse_config(preset_values("paper-small")), Cluster(mfu=0.25))["total"]["training_wall_days"]
    base = plan(parse_config(preset_values("paper-base")), Cluster(mfu=0.40))["total"]["training_wall_days"]
    assert 10 / 1.5 <= small <= 10 * 1.5, small
    assert base == pytest.approx(13.5, abs=0.1)


@pytest.mark.parametrize("preset", ["embedded", "paper-small", "paper-base"])
def test_the_command_prints_a_plan(preset, tmp_path):
    import yaml

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(preset_values(preset)))
    out = subprocess.run([sys.executable, "-m", "mmbert.plan", "--params", str(params)], capture_output=True, text=True,
                         check=True).stdout
    assert "| train@pretrain |" in out and "Total:" in out and "MFU 40% (set)" in out


def test_an_unknown_gpu_is_named(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mmbert.plan", "--gpu", "T4"], capture_output=True, text=True)
    assert result.returncode == 2 and "--gpu 'T4': no known peak" in result.stderr


def test_the_flow_prints_the_plan_and_runs_nothing(tmp_path):
    from helpers import copy_repo

    repo = copy_repo(tmp_path / "repo")
    out = subprocess.run([sys.executable, "-m", "flows.reproduce", "--repo", str(repo), "--plan"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    assert "| train@decay-all |" in out and "Total:" in out
    assert not (repo / "outputs").exists()
