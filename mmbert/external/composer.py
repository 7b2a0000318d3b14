"""A Composer checkpoint of the official runs (the ModernBERT training code's
`ep*-ba*-rank0.pt`, the files of jhu-clsp/mmBERT-checkpoints) as a transformers
`ModernBertForMaskedLM`.

The file is a pickle of Composer's state: `{'state': {'model': {...}, 'optimizers': ...,
'timestamp': ..., 'integrations': {'huggingface': {'model': {'config': {'content': <the
FlexBert config>}}}}, 'metadata': ...}, 'rng': [...]}`. A pickle can run code, so it is read
with `torch.load(weights_only=True)` and an allow-list of exactly the types such a checkpoint
holds besides tensors (numpy arrays of the RNG states, wall-clock `timedelta`s, the torch
version string); anything else is refused before a byte of it is unpickled.

Names map one to one (the training code's modules are transformers' own, under other
prefixes): `model.bert.encoder.layers.N.*` → `model.layers.N.*`, `model.bert.*` → `model.*`,
`model.head.*`/`model.decoder.*` → `head.*`/`decoder.*`; no tensor is reordered (Wqkv holds
q, k, v blocks and the GLU its input and gate halves in the same order on both sides). The
architecture comes from the config stored in the file; a `local_attn_rotary_emb_base` of -1
means "the global base" (the official code's convention).
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmbert.external.errors import CheckpointError

# What FlexBert settings the conversion assumes: anything else is another architecture.
REQUIRED = {"bert_layer": "prenorm", "mlp_layer": "glu", "normalization": "layernorm", "attention_layer": "rope",
            "embedding_layer": "sans_pos", "embed_norm": True, "final_norm": True, "skip_first_prenorm": True,
            "head_pred_norm": True, "rotary_emb_interleaved": False}
RENAMES = ((re.compile(r"^model\.bert\.encoder\.layers\."), "model.layers."), (re.compile(r"^model\.bert\."), "model."),
           (re.compile(r"^model\.(head|decoder)\."), r"\1."))


def allowed_globals() -> list[Any]:
    """The types a Composer checkpoint pickles besides tensors and plain containers."""
    from torch.torch_version import TorchVersion

    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    dtypes = [type(np.dtype(name)) for name in ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16",
                                                   "int32", "int64", "float16", "float32", "float64")]
    return [reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, *dtypes,
            datetime.timedelta, TorchVersion]


def load_composer(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, read without running any code it might carry."""
    path = Path(path)
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in allowed_globals() if not isinstance(g, tuple)}
    allowed |= {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
    try:
        unknown = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
                   if name not in allowed]
    except Exception as exc:  # not a torch zip file
        raise CheckpointError(f"{path}: not a Composer checkpoint (a torch zip file): {exc}") from None
    if unknown:
        raise CheckpointError(f"{path}: refused: the pickle names {sorted(unknown)}, which a Composer checkpoint "
                              "never holds (it would run their code when loaded)")
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: refused: {exc}") from None


def flex_config(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """The FlexBert config the training code stored in the checkpoint."""
    try:
        config = checkpoint["state"]["integrations"]["huggingface"]["model"]["config"]["content"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{path}: no model config at state.integrations.huggingface.model.config.content "
                              "(not a checkpoint of the ModernBERT training code)") from None
    wrong = {key: (config.get(key), want) for key, want in REQUIRED.items() if key in config and config[key] != want}
    if wrong:
        raise CheckpointError(f"{path}: another architecture: " + ", ".join(
            f"{key} is {got!r}, expected {want!r}" for key, (got, want) in wrong.items()))
    return config


def hf_state_dict(checkpoint: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The model weights under transformers' names; the tied decoder weight checked and dropped."""
    try:
        weights = checkpoint["state"]["model"]
    except (KeyError, TypeError):
        raise CheckpointError(f"{path}: no weights at state.model") from None
    out = {}
    for name, tensor in weights.items():
        new = name
        for pattern, replacement in RENAMES:
            new = pattern.sub(replacement, new, count=1)
        if new == name:
            raise CheckpointError(f"{path}: weight {name!r} is not a ModernBERT training-code name")
        out[new] = tensor
    decoder = out.pop("decoder.weight", None)
    embeddings = out.get("model.embeddings.tok_embeddings.weight")
    if decoder is not None and (embeddings is None or not torch.equal(decoder, embeddings)):
        raise CheckpointError(f"{path}: decoder.weight differs from the token embeddings (expected tied weights)")
    return out


def modernbert_config(flex: dict[str, Any], vocab_size: int, special: dict[str, int], max_positions: int) -> Any:
    """transformers' ModernBertConfig for a FlexBert config (ModernBERT's convert_to_hf.py's
    mapping, with the head's activation from head_pred_act and -1 as 'the global base')."""
    from transformers import ModernBertConfig

    from mmbert.modeling import rope_parameters

    global_theta = float(flex.get("rotary_emb_base", 10_000.0))
    local = flex.get("local_attn_rotary_emb_base")
    local_theta = global_theta if local is None or float(local) <= 0 else float(local)
    bias = {name: flex.get(name, False) for name in ("attn_qkv_bias", "attn_out_bias", "mlp_in_bias", "mlp_out_bias")}
    if bias["attn_qkv_bias"] != bias["attn_out_bias"] or bias["mlp_in_bias"] != bias["mlp_out_bias"]:
        raise CheckpointError(f"biases {bias}: transformers has one flag for Wqkv and Wo, and one for Wi and Wo")
    norm = flex.get("norm_kwargs", {})
    return ModernBertConfig(
        vocab_size=vocab_size, hidden_size=flex["hidden_size"], intermediate_size=flex["intermediate_size"],
        num_hidden_layers=flex["num_hidden_layers"], num_attention_heads=flex["num_attention_heads"],
        hidden_activation=flex.get("hidden_act", "gelu"), classifier_activation=flex.get("head_pred_act", "gelu"),
        classifier_bias=flex.get("head_pred_bias", False), max_position_embeddings=max_positions,
        norm_eps=norm.get("eps", 1e-5), norm_bias=norm.get("bias", False), attention_bias=bias["attn_qkv_bias"],
        mlp_bias=bias["mlp_in_bias"], decoder_bias=flex.get("decoder_bias", True),
        local_attention=flex.get("sliding_window", 128), global_attn_every_n_layers=flex["global_attn_every_n_layers"],
        rope_parameters=rope_parameters(global_theta, local_theta),
        attention_dropout=flex.get("attn_out_dropout_prob", 0.0), embedding_dropout=flex.get("embed_dropout_prob", 0.0),
        mlp_dropout=flex.get("mlp_dropout_prob", 0.0), initializer_range=flex.get("initializer_range", 0.02),
        tie_word_embeddings=flex.get("tie_word_embeddings", True), **special)


def convert_composer(path: str | Path, special: dict[str, int], max_positions: int) -> Any:
    """A ModernBertForMaskedLM holding the checkpoint's weights (every weight used, none missing)."""
    from transformers import ModernBertForMaskedLM

    path = Path(path)
    checkpoint = load_composer(path)
    flex = flex_config(checkpoint, path)
    weights = hf_state_dict(checkpoint, path)
    vocab = int(weights["model.embeddings.tok_embeddings.weight"].shape[0])
    config = modernbert_config(flex, vocab, special, max_positions)
    model = ModernBertForMaskedLM(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [name for name in missing if name != "decoder.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit ModernBertForMaskedLM: missing {missing[:6]}, "
                              f"unexpected {unexpected[:6]}")
    model.tie_weights()
    return model
