"""The phase trainer in-process (one worker): learning, checkpoints, exact resume."""

from __future__ import annotations


import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from helpers import phase_paths
from mmbert.train.loop import PhaseTrainer


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_loss_falls(micro):
    cfg, out = micro
    trainer = PhaseTrainer(cfg, "pretrain", phase_paths(out, "pretrain"))
    trainer.run()
    history = trainer.progress.history
    assert trainer.done and trainer.progress.tokens >= cfg.phases["pretrain"].data.tokens
    first, last = sum(h["loss"] for h in history[:5]) / 5, sum(h["loss"] for h in history[-5:]) / 5
    assert last < first - 0.5, (first, last)
    assert history[0]["batch"] == cfg.phases["pretrain"].batch.micro_batch_size  # one micro-batch, one worker
    assert history[-1]["batch"] == cfg.phases["pretrain"].batch.size


def test_checkpoint_holds_the_trained_weights_and_loads(micro, tmp_path):
    """Regression: a phase must save its own weights, not its base checkpoint's."""
    cfg, out = micro
    base = PhaseTrainer(cfg, "pretrain", phase_paths(out, "pretrain"))
    base.run(until_step=3)
    base.save(tmp_path / "pretrain")
    child = PhaseTrainer(cfg, "midtrain", phase_paths(out, "midtrain", tmp_path / "pretrain" / "model"))
    child.run(until_step=3)
    child.save(tmp_path / "midtrain")
    parent_w = load_file(str(tmp_path / "pretrain" / "model" / "model.safetensors"))
    child_w = load_file(str(tmp_path / "midtrain" / "model" / "model.safetensors"))
    assert any(not torch.equal(parent_w[k], child_w[k]) for k in parent_w)
    for k, v in child.model.state_dict().items():
        if k in child_w:
            assert torch.equal(child_w[k], v), k
    model = AutoModelForMaskedLM.from_pretrained(tmp_path / "midtrain" / "model")
    assert model.config.rope_parameters["full_attention"]["rope_theta"] == cfg.phases["midtrain"].rope_theta_global
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "midtrain" / "model")
    assert tokenizer.mask_token_id == 4 and len(tokenizer) == cfg.tokenizer.vocab_size


def test_resume_equals_straight_run(micro, tmp_path):
    cfg, out = micro
    straight = PhaseTrainer(cfg, "pretrain", phase_paths(out, "pretrain"))
    straight.run(until_step=8)

    first = PhaseTrainer(cfg, "pretrain", phase_paths(out, "pretrain"))
    first.run(until_step=4)
    first.save(tmp_path / "half")
    second = PhaseTrainer(cfg, "pretrain", phase_paths(out, "pretrain"))
    second.restore(tmp_path / "half")
    assert second.progress.step == 4 and second.progress.rows == first.progress.rows
    second.run(until_step=8)

    assert [h["loss"] for h in second.progress.history] == pytest.approx([h["loss"] for h in straight.progress.history], abs=1e-6)
    a, b = _weights(straight.model), _weights(second.model)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_shards_are_checked_against_the_manifest(micro, tmp_path):
    import shutil

    from mmbert.train.data import PackedShards

    cfg, out = micro
    copy = tmp_path / "mix"
    shutil.copytree(out / "mix" / "pretrain", copy)
    shard = sorted(copy.glob("part-*/shard.*.mds.zstd"))[-1]  # a stored (compressed) shard
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    reader = PackedShards(copy, cache=str(tmp_path / "cache"))  # a shard is checked when first read
    with pytest.raises(ValueError, match="(?i)checksum"):
        reader.batch(0, 4, 0, 1, seed=0)


def test_each_row_is_used_once_per_pass(micro):
    from mmbert.train.data import PackedShards

    cfg, out = micro
    data = PackedShards(out / "mix" / "pretrain")
    n = len(data)
    first_pass = data.global_rows(0, n, seed=0)
    assert sorted(first_pass.tolist()) == list(range(n))
    resumed = list(data.global_rows(0, n // 2, seed=0)) + list(data.global_rows(n // 2, n - n // 2, seed=0))
    assert resumed == first_pass.tolist()
    worker_rows = [data.batch(0, 4, rank, 2, seed=0) for rank in range(2)]
    assert sum(len(w) for w in worker_rows) == 4
