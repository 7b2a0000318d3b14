from __future__ import annotations

import pytest

from mmbert.config import ConfigError, load_config, parse_config, read_yaml
from mmbert.corpus.catalog import check_corpus_fits
from mmbert.preset import available_presets, preset_values


def test_params_yaml_is_valid(repo_root):
    cfg = load_config(repo_root / "params.yaml")
    assert list(cfg.phases) == ["pretrain", "midtrain", "decay-eng", "decay-cont", "decay-all"]


def test_committed_params_are_the_embedded_preset(repo_root):
    """params.yaml as committed IS the embedded default (byte for byte, comments included)."""
    assert (repo_root / "params.yaml").read_bytes() == (repo_root / "mmbert" / "presets" / "embedded.yaml").read_bytes()


@pytest.mark.parametrize("preset", ["embedded", "micro", "paper-small", "paper-base", "custom-decay"])
def test_every_preset_validates(preset):
    cfg = parse_config(preset_values(preset))
    if preset in ("embedded", "micro"):  # the paper presets name hub languages the embedded corpus lacks
        check_corpus_fits(cfg)


def test_presets_are_listed():
    assert set(available_presets()) == {"embedded", "micro", "paper-small", "paper-base", "custom-decay"}


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        check_corpus_fits(parse_config(raw))
    return str(info.value)


def _set(key: str, value):
    def edit(params: dict) -> None:
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    return edit


# Each row: an edit that cannot run, and the key the error must name.
BAD = [
    ("phases.pretrain.lr.peak", -1e-3, "phases.pretrain.lr.peak"),
    ("phases.midtrain.data.temperature", 0.0, "phases.midtrain.data.temperature"),
    ("phases.midtrain.data.temperature", 1.5, "phases.midtrain.data.temperature"),
    ("phases.decay-all.mask_rate", 1.0, "phases.decay-all.mask_rate"),
    ("phases.decay-eng.init_from", None, "phases.decay-eng.init_from"),
    ("phases.decay-eng.init_from", "decay-xl", "phases.decay-eng.init_from"),
    ("phases.pretrain.init_from", "decay-eng", "phases.pretrain.init_from"),
    ("phases.pretrain.data.languages", ["fra_Latn", "xxx_Zzzz"], "phases.pretrain.data.languages"),
    ("phases.pretrain.data.languages", 100000, "phases.pretrain.data.languages"),
    ("phases.pretrain.data.languages", [], "phases.pretrain.data.languages"),
    ("phases.pretrain.data.languages", ["fra_Latn", "deu_Latn", "fra_Latn"], "phases.pretrain.data.languages"),
    ("phases.decay-eng.data.languages", ["fra_Latn", "deu_Latn"], "phases.decay-eng.data"),  # pinned eng outside
    ("phases.midtrain.data.seq_len", 1024, "phases.midtrain.data.seq_len"),  # > max_position_embeddings 512
    ("train.heldout.seq_len", 1024, "train.heldout.seq_len"),
    ("eval.langid.max_length", 4096, "eval.langid.max_length"),
    ("phases.pretrain.batch.size", 33, "phases.pretrain.batch.size"),  # 2 workers x 8 micro
    ("phases.midtrain.batch.size", 15, "phases.midtrain.batch.size"),  # not divisible by 2 workers
    ("phases.pretrain.batch.warmup_from", 8, "phases.pretrain.batch"),  # only for linear warmup
    ("phases.midtrain.batch.warmup", "linear", "phases.midtrain.batch"),  # linear without a start
    ("phases.midtrain.lr.decay_tokens", 1000, "phases.midtrain.lr"),  # decay none with a window
    ("phases.decay-eng.lr.decay_tokens", 0, "phases.decay-eng.lr"),  # a decay without a window
    ("phases.pretrain.batch.warmup_tokens", 10**9, "phases.pretrain"),  # longer than the phase
    ("merge.base", "nope", "merge.base"),
    ("merge.models", ["decay-eng", "decay-eng"], "merge"),
    ("merge.models", ["midtrain", "decay-eng"], "merge"),  # the base itself
    ("merge.models", ["pretrain", "decay-eng"], "merge.models[0]"),  # does not start from the base
    ("eval.models", ["midtrain", "midtrain", "merged"], "eval.models"),
    ("model.num_attention_heads", 5, "model"),
    ("model.local_attention", 63, "model.local_attention"),
    ("model.num_attention_heads", 32, "model"),  # head size 3 is odd
    ("train.num_workers", 0, "train.num_workers"),
    ("train.attn_implementation", "flash_attention_2", "train.attn_implementation"),  # without a GPU
    ("train.attention_backend", "varlen", "train.attention_backend"),  # without a GPU
    ("train.attention_backend", "flash_attention_2", "train.attention_backend"),  # not a backend
    ("tokenizer.vocab_size", 100, "tokenizer.vocab_size"),
    ("tokenizer.kind", "pretrained", "tokenizer.pretrained"),
    ("corpus.sources", ["udhr"], "corpus.sources"),  # bitext needs parallel text
    ("eval.langid.languages", 5000, "eval.langid.languages"),
    ("seed", -1, "seed"),
    ("phases.pretrain.lr.peek", 1e-3, "phases.pretrain.lr.peek"),  # unknown key
]


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_params_name_the_key(key, value, named, raw_params):
    _set(key, value)(raw_params)
    message = _error(raw_params)
    assert named in message, message


def test_flash_kernels_need_bf16(raw_params):
    raw_params["train"].update(use_gpu=True, attention_backend="varlen", precision="fp32")
    message = _error(raw_params)
    assert "train.precision: bf16" in message, message


def test_a_missing_key_is_named(raw_params):
    del raw_params["runtime"]["log_every"]
    assert "runtime.log_every: missing" in _error(raw_params)


def test_error_shows_the_value(raw_params):
    raw_params["phases"]["pretrain"]["lr"]["peak"] = -0.5
    assert "-0.5" in _error(raw_params)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_duplicate_yaml_keys_are_an_error(tmp_path, repo_root):
    text = (repo_root / "params.yaml").read_text().replace("seed: 0\n", "seed: 0\nseed: 1\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"duplicate key 'seed' \(line \d+; first on line \d+\)"):
        load_config(tmp_path / "params.yaml")


def test_nested_duplicate_keys_are_an_error(tmp_path):
    (tmp_path / "p.yaml").write_text("a:\n  b: 1\n  c: 2\n  b: 3\n")
    with pytest.raises(ConfigError, match="duplicate key 'b'"):
        read_yaml(tmp_path / "p.yaml")
