"""A pretrained tokenizer (the Gemma 2 one at scale) becomes the encoder's: its special
tokens take the encoder's roles, every input is wrapped in cls ... sep, and the layout is
checked against the one the model config is built with. Tested on tokenizers written here
in Gemma 2's layout (google/gemma-2-9b itself is gated and cannot be downloaded here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmbert.config import TokenizerConfig
from mmbert.modeling import SpecialIds, build_config
from mmbert.tokenizer import TokenizerLayoutError, load_tokenizer, obtain_tokenizer, special_ids

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0..4 in Gemma 2's vocabulary


def decoder_tokenizer(folder: Path, specials: list[str], mask: bool = True) -> Path:
    """A tokenizer saved the way Gemma 2's is: bos/eos/pad/unk named, <bos> prepended only."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(specials + list("abcdefghijklmnopqrstuvwxyz "))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "isolated")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", vocab["<bos>"])])
    extra = {"mask_token": "<mask>"} if mask and "<mask>" in vocab else {}
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>", **extra).save_pretrained(str(folder))
    return folder


def config_for(path: Path) -> TokenizerConfig:
    return TokenizerConfig(kind="pretrained", vocab_size=len(load_tokenizer(path)), min_frequency=2,
                           pretrained=str(path))


def test_gemma_layout_becomes_the_encoders(tmp_path):
    path = decoder_tokenizer(tmp_path / "gemma", GEMMA_SPECIALS)
    tokenizer = obtain_tokenizer(config_for(path), tmp_path)
    assert special_ids(tokenizer) == SpecialIds(pad=0, sep=1, cls=2, unk=3, mask=4)
    assert tokenizer("ab")["input_ids"] == [2, 5, 6, 1]
    assert tokenizer("ab", "c")["input_ids"] == [2, 5, 6, 1, 7, 1]
    tokenizer.save_pretrained(str(tmp_path / "saved"))
    again = load_tokenizer(tmp_path / "saved")
    assert special_ids(again) == special_ids(tokenizer) and again("ab")["input_ids"] == [2, 5, 6, 1]


def test_the_model_config_gets_the_same_ids(tmp_path, raw_params):
    from mmbert.config import ModelConfig

    tokenizer = obtain_tokenizer(config_for(decoder_tokenizer(tmp_path / "gemma", GEMMA_SPECIALS)), tmp_path)
    config = build_config(ModelConfig(**raw_params["model"]), len(tokenizer), special=special_ids(tokenizer))
    assert (config.pad_token_id, config.sep_token_id, config.cls_token_id) == (0, 1, 2)
    assert (config.bos_token_id, config.eos_token_id) == (2, 1)


def test_another_layout_is_refused_naming_the_ids(tmp_path):
    shuffled = ["<bos>", "<eos>", "<pad>", "<unk>", "<mask>"]
    path = decoder_tokenizer(tmp_path / "other", shuffled)
    with pytest.raises(TokenizerLayoutError, match=r"special ids .*pad=2.*cls=0"):
        obtain_tokenizer(config_for(path), tmp_path)


def test_a_tokenizer_without_a_mask_token_is_refused(tmp_path):
    path = decoder_tokenizer(tmp_path / "nomask", ["<pad>", "<eos>", "<bos>", "<unk>"], mask=False)
    with pytest.raises(TokenizerLayoutError, match="no mask_token"):
        obtain_tokenizer(config_for(path), tmp_path)
