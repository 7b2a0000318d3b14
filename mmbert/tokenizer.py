"""Stage `tokenizer`: a byte-level BPE trained on the corpus's training text (the embedded
default), or a pretrained one (the Gemma 2 tokenizer at scale), saved so that
`AutoTokenizer.from_pretrained` loads it. Special ids follow Gemma 2's layout."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig, TokenizerConfig
from mmbert.io import atomic_dir, read_jsonl, write_json
from mmbert.modeling import SpecialIds
from mmbert.stages import write_record

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger("mmbert.tokenizer")

# Order = ids 0..4, matching SpecialIds (Gemma 2: pad 0, eos 1, bos 2, unk 3, mask 4).
SPECIAL_TOKENS = {"pad": "<pad>", "sep": "</s>", "cls": "<s>", "unk": "<unk>", "mask": "<mask>"}


def train_bpe(texts: Iterator[str], vocab_size: int, min_frequency: int) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = SPECIAL_TOKENS["cls"], SPECIAL_TOKENS["sep"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL_TOKENS["pad"],
        eos_token=SPECIAL_TOKENS["sep"],
        sep_token=SPECIAL_TOKENS["sep"],
        bos_token=SPECIAL_TOKENS["cls"],
        cls_token=SPECIAL_TOKENS["cls"],
        unk_token=SPECIAL_TOKENS["unk"],
        mask_token=SPECIAL_TOKENS["mask"],
        model_max_length=1_000_000,
    )


def special_ids(tokenizer: PreTrainedTokenizerFast) -> SpecialIds:
    return SpecialIds(
        pad=tokenizer.pad_token_id,
        sep=tokenizer.sep_token_id,
        cls=tokenizer.cls_token_id,
        unk=tokenizer.unk_token_id,
        mask=tokenizer.mask_token_id,
    )


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


# A decoder's tokenizer (Gemma 2) names bos/eos but no cls/sep/mask; as an encoder's, its
# <bos> is the classification token and <eos> the separator, as in mmBERT's released tokenizer.
ENCODER_ROLES = {"cls": "bos_token", "sep": "eos_token"}
MASK_TOKEN = "<mask>"


class TokenizerLayoutError(ValueError):
    """A pretrained tokenizer whose special tokens cannot serve the encoder's layout."""


def as_encoder_tokenizer(tokenizer: PreTrainedTokenizerFast, name: str) -> PreTrainedTokenizerFast:
    """Give a pretrained tokenizer the encoder's roles and wrap every input in cls ... sep,
    then check the layout the model config will be built from (Gemma 2's: pad 0, eos/sep 1,
    bos/cls 2, unk 3, mask 4)."""
    from tokenizers import processors

    roles = {"cls_token": tokenizer.cls_token or getattr(tokenizer, ENCODER_ROLES["cls"]),
             "sep_token": tokenizer.sep_token or getattr(tokenizer, ENCODER_ROLES["sep"]),
             "mask_token": tokenizer.mask_token or (MASK_TOKEN if MASK_TOKEN in tokenizer.get_vocab() else None)}
    missing = [role for role, token in roles.items() if token is None] + [
        role for role in ("pad_token", "unk_token") if getattr(tokenizer, role) is None]
    if missing:
        raise TokenizerLayoutError(f"tokenizer.pretrained = {name}: no {', '.join(missing)} (an encoder needs "
                                   f"pad, unk, cls (or bos), sep (or eos) and a {MASK_TOKEN} token)")
    tokenizer.add_special_tokens({role: token for role, token in roles.items()})
    cls, sep = roles["cls_token"], roles["sep_token"]
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, tokenizer.convert_tokens_to_ids(cls)), (sep, tokenizer.convert_tokens_to_ids(sep))])
    ids = special_ids(tokenizer)
    if ids != SpecialIds():
        raise TokenizerLayoutError(f"tokenizer.pretrained = {name}: special ids {ids} differ from the layout "
                                   f"the model is built with {SpecialIds()} (Gemma 2's)")
    encoded = tokenizer("a")["input_ids"]
    if encoded[0] != ids.cls or encoded[-1] != ids.sep:
        raise TokenizerLayoutError(f"tokenizer.pretrained = {name}: inputs are not wrapped in cls ... sep ({encoded})")
    return tokenizer


def obtain_tokenizer(cfg: TokenizerConfig, corpus_dir: Path) -> PreTrainedTokenizerFast:
    if cfg.kind == "pretrained":
        tokenizer = load_tokenizer(cfg.pretrained)
        if len(tokenizer) != cfg.vocab_size:
            raise ValueError(
                f"tokenizer.vocab_size = {cfg.vocab_size} but {cfg.pretrained} has {len(tokenizer)} tokens"
            )
        return as_encoder_tokenizer(tokenizer, cfg.pretrained)
    texts = (row["text"] for row in read_jsonl(corpus_dir / "train.jsonl"))
    return train_bpe(texts, cfg.vocab_size, cfg.min_frequency)


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    tokenizer = obtain_tokenizer(cfg.tokenizer, output_dir(cfg, "corpus"))
    target = output_dir(cfg, "tokenizer")
    with atomic_dir(target) as tmp:
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / "special_ids.json", special_ids(tokenizer).__dict__)
        write_record(tmp, cfg, "tokenizer")
    log.info("tokenizer: %d tokens, special ids %s -> %s", len(tokenizer), special_ids(tokenizer), target)


if __name__ == "__main__":
    run_stage(main, stage_parser(__doc__))
