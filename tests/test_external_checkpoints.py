"""External checkpoints: a Composer checkpoint of the official runs converts key by key to
transformers' ModernBertForMaskedLM with identical logits; a transformers folder, a pinned hub
revision (read through huggingface_hub's own cache, offline) and a Composer file each become
the fetch stage's folder; a crafted pickle is refused before it can run; a checkpoint that
does not fit the phase or the run's tokenizer is refused naming both values."""

from __future__ import annotations

import argparse

import pytest
import torch

from external_fixtures import (logits, source_model, write_composer, write_crafted, write_hub_cache,
                               write_transformers_folder)
from helpers import micro_config
from mmbert.external.composer import convert_composer, load_composer
from mmbert.external.compat import phase_mismatches, tokenizer_mismatches
from mmbert.external.errors import CheckpointError

SPECIAL = {"pad_token_id": 0, "eos_token_id": 1, "sep_token_id": 1, "bos_token_id": 2, "cls_token_id": 2}
REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_a_composer_checkpoint_converts_to_identical_logits(tmp_path):
    source = source_model(100)
    path = write_composer(tmp_path / "ep0-ba7-rank0.pt", source)
    converted = convert_composer(path, SPECIAL, max_positions=256).eval()
    ids = torch.randint(5, 100, (2, 40), generator=torch.Generator().manual_seed(0))  # beyond the local window
    assert torch.equal(logits(converted, ids), logits(source, ids))
    assert converted.config.rope_parameters["sliding_attention"]["rope_theta"] == 160_000.0  # -1: the global base
    assert converted.decoder.weight.data_ptr() == converted.model.embeddings.tok_embeddings.weight.data_ptr()


def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "written.txt"
    path = write_crafted(tmp_path / "ep0-ba1-rank0.pt", target)
    with pytest.raises(CheckpointError, match=r"ep0-ba1-rank0.pt: refused: the pickle names .*pathlib"):
        load_composer(path)
    assert not target.exists()
    with pytest.raises(CheckpointError, match="not a Composer checkpoint"):
        load_composer(tmp_path / "written.txt.missing")


def test_another_architecture_is_refused_naming_the_setting(tmp_path):
    path = write_composer(tmp_path / "ep0-ba7-rank0.pt", source_model(100))
    checkpoint = torch.load(path, weights_only=False)  # the test's own file
    checkpoint["state"]["integrations"]["huggingface"]["model"]["config"]["content"]["mlp_layer"] = "mlp"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="mlp_layer is 'mlp', expected 'glu'"):
        convert_composer(path, SPECIAL, max_positions=256)


@pytest.fixture()
def run(micro, tmp_path):
    """A micro run whose checkpoints section names the three layouts of one source model (of
    the micro model's shape and the run's tokenizer, so that the phase checks pass)."""
    import shutil

    from mmbert.modeling import build_config, new_model
    from mmbert.tokenizer import load_tokenizer

    cfg, out = micro
    vocab = len(load_tokenizer(out / "tokenizer"))
    config = build_config(cfg.model, vocab, rope_theta_global=160_000, rope_theta_local=160_000)
    source = new_model(config, seed=4).eval()
    folder = write_transformers_folder(tmp_path / "folder", source, out / "tokenizer")
    cache = tmp_path / "hf-cache"
    write_hub_cache(cache, "someone/mmbert-micro", REVISION, folder)
    composer = write_composer(tmp_path / "ep0-ba7-rank0.pt", source)
    run_out = tmp_path / "run"
    shutil.copytree(out / "tokenizer", run_out / "tokenizer")
    checkpoints = {
        "from-folder": {"hub": None, "revision": None, "path": str(folder), "file": None, "format": "transformers"},
        "from-hub": {"hub": "someone/mmbert-micro", "revision": REVISION, "path": None, "file": None,
                     "format": "transformers"},
        "from-composer": {"hub": None, "revision": None, "path": str(composer), "file": None, "format": "composer"},
    }
    return micro_config(run_out, checkpoints=checkpoints), source, cache


def offline_hub(monkeypatch, cache) -> None:
    """huggingface_hub reads its settings at import: the cache the test wrote, and no network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("name", ["from-folder", "from-hub", "from-composer"])
def test_the_fetch_stage_writes_a_folder_with_the_sources_logits(run, name, monkeypatch):
    from transformers import AutoModelForMaskedLM

    from mmbert import fetch

    cfg, source, cache = run
    offline_hub(monkeypatch, cache)
    fetch.main(cfg, argparse.Namespace(name=name))
    folder = fetch.output_dir(cfg, "checkpoints", name, "model")
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    ids = torch.randint(5, source.config.vocab_size, (2, 60), generator=torch.Generator().manual_seed(1))
    assert torch.equal(logits(model, ids), logits(source, ids))
    assert (folder / "tokenizer.json").is_file() and (folder.parent / "source.json").is_file()


def test_a_missing_hub_revision_names_the_repository(run, monkeypatch):
    from mmbert import fetch

    cfg, _, cache = run
    offline_hub(monkeypatch, cache)
    spec = cfg.checkpoints["from-hub"].model_copy(update={"revision": "f" * 40})
    cfg = cfg.model_copy(update={"checkpoints": {"from-hub": spec}})
    with pytest.raises(SystemExit, match=r"checkpoints.from-hub: someone/mmbert-micro@ffffffffffff \(transformers\) could not be read"):
        fetch.main(cfg, argparse.Namespace(name="from-hub"))
    assert not fetch.output_dir(cfg, "checkpoints", "from-hub").exists()


def test_a_checkpoint_that_does_not_fit_the_phase_is_named_with_both_values(run, tmp_path):
    from mmbert.cli import output_dir
    from mmbert.modeling import build_config, new_model

    cfg, source, _ = run
    tokenizer = output_dir(cfg, "tokenizer")
    other = cfg.model.model_copy(update={"hidden_size": 48, "max_position_embeddings": 64})
    model = new_model(build_config(other, source.config.vocab_size, rope_theta_global=10_000, rope_theta_local=10_000),
                      seed=0)
    folder = write_transformers_folder(tmp_path / "other", model, tokenizer)
    theta = cfg.phases["decay-all"].rope_theta_global
    assert phase_mismatches(cfg, "decay-all", folder) == [
        f"hidden_size 48, params.yaml model.hidden_size is {cfg.model.hidden_size}",
        "max_position_embeddings 64, below phases.decay-all.data.seq_len 128",
        f"RoPE theta (global) 10000, phases.decay-all.rope_theta_global is {theta:g}",
        f"RoPE theta (local) 10000, phases.decay-all.rope_theta_local is {cfg.phases['decay-all'].rope_theta_local:g}"]
    assert tokenizer_mismatches(folder, tokenizer) == []
    smaller = write_transformers_folder(tmp_path / "smaller", source_model(100), tokenizer)
    assert tokenizer_mismatches(smaller, tokenizer) == [
        f"config vocab_size 100, the run's tokenizer has {source.config.vocab_size} tokens"]
