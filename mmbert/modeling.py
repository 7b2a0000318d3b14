"""Architecture settings → transformers `ModernBertConfig` / `ModernBertForMaskedLM`.

The architecture comes from params.yaml's `model` section (or `presets/architectures.yaml`
for the paper sizes); RoPE theta is set per phase, global AND local (mmBERT raises both to
160k from mid-training on, unlike ModernBERT which kept local at 10k).

Dropout follows the official runs: attention output 0.1, attention probabilities 0.
transformers has one knob (`attention_dropout`) for both, so the config carries the output
rate and `split_attention_dropout` sets the probability rate on each attention module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmbert.config import ModelConfig, read_yaml

ARCHITECTURES = Path(__file__).parent / "presets" / "architectures.yaml"

if TYPE_CHECKING:
    import torch
    from transformers import ModernBertConfig, ModernBertForMaskedLM


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the model must know; the Gemma 2 layout (our trained tokenizer copies it)."""

    pad: int = 0
    sep: int = 1
    cls: int = 2
    unk: int = 3
    mask: int = 4

    def all(self) -> list[int]:
        return [self.pad, self.sep, self.cls, self.unk, self.mask]


def architecture(name: str) -> tuple[ModelConfig, int]:
    """(architecture, vocabulary size) of a named model in presets/architectures.yaml."""
    table = read_yaml(ARCHITECTURES)
    if name not in table:
        raise ValueError(f"{ARCHITECTURES}: no architecture {name!r}; expected one of {sorted(table)}")
    return ModelConfig.model_validate(table[name]["model"]), int(table[name]["vocab_size"])


def rope_parameters(theta_global: float, theta_local: float) -> dict[str, dict[str, object]]:
    return {
        "full_attention": {"rope_type": "default", "rope_theta": float(theta_global)},
        "sliding_attention": {"rope_type": "default", "rope_theta": float(theta_local)},
    }


def build_config(
    model: ModelConfig,
    vocab_size: int,
    *,
    special: SpecialIds = SpecialIds(),
    rope_theta_global: float = 10_000.0,
    rope_theta_local: float = 10_000.0,
    attn_implementation: str = "sdpa",
    sparse_prediction: bool = False,
) -> ModernBertConfig:
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=model.hidden_size,
        intermediate_size=model.intermediate_size,
        num_hidden_layers=model.num_hidden_layers,
        num_attention_heads=model.num_attention_heads,
        global_attn_every_n_layers=model.global_attn_every_n_layers,
        local_attention=model.local_attention,
        max_position_embeddings=model.max_position_embeddings,
        attention_dropout=model.attention_output_dropout,
        norm_eps=model.norm_eps,
        initializer_range=model.initializer_range,
        pad_token_id=special.pad,
        eos_token_id=special.sep,
        sep_token_id=special.sep,
        bos_token_id=special.cls,
        cls_token_id=special.cls,
        rope_parameters=rope_parameters(rope_theta_global, rope_theta_local),
        sparse_prediction=sparse_prediction,
        tie_word_embeddings=True,
        attn_implementation=attn_implementation,
    )


def split_attention_dropout(model: torch.nn.Module, output_p: float, probs_p: float) -> None:
    """Dropout `output_p` on each attention output and `probs_p` on attention probabilities."""
    import torch

    for module in model.modules():
        if hasattr(module, "out_drop") and hasattr(module, "attention_dropout"):
            module.out_drop = torch.nn.Dropout(output_p) if output_p > 0 else torch.nn.Identity()
            module.attention_dropout = probs_p
    model.config.attention_dropout = output_p


def compile_blocks(mlm: torch.nn.Module) -> None:
    """torch.compile, in place, the modules that hold most of a step's elementwise work (each
    layer's GeGLU MLP, the MLM head), with dynamic shapes (the unpadded path's token count
    changes every step). In place: parameter names, and so checkpoints, stay as they are."""
    for layer in mlm.model.layers:
        layer.mlp.compile(dynamic=True)
    mlm.head.compile(dynamic=True)


def new_model(config: ModernBertConfig, seed: int, dropout: ModelConfig | None = None) -> ModernBertForMaskedLM:
    import torch
    from transformers import ModernBertForMaskedLM

    torch.manual_seed(seed)
    mlm = ModernBertForMaskedLM(config)
    if dropout is not None:
        split_attention_dropout(mlm, dropout.attention_output_dropout, dropout.attention_probs_dropout)
    return mlm


def random_model(model_cls: type, config: object, seed: int) -> torch.nn.Module:
    """A model with random weights for throughput measurements: matrices ~ N(0,
    initializer_range), norms 1, biases 0. Built without transformers' per-module
    initialisation, which takes ~10 s on a CPU for a 256k vocabulary (truncated normals)."""
    import torch

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers before 5.20 kept it here
        from transformers.modeling_utils import no_init_weights

    with no_init_weights():
        model = model_cls(config)
    generator = torch.Generator().manual_seed(seed)
    std = getattr(config, "initializer_range", 0.02)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() > 1:
                param.normal_(0.0, std, generator=generator)
            else:
                param.zero_() if name.endswith("bias") else param.fill_(1.0)
    return model


def load_model(
    path: str | Path,
    *,
    rope_theta_global: float | None = None,
    rope_theta_local: float | None = None,
    attn_implementation: str = "sdpa",
    sparse_prediction: bool | None = None,
    dropout: ModelConfig | None = None,
) -> ModernBertForMaskedLM:
    """Load a checkpoint, optionally with the next phase's RoPE theta.

    RoPE frequencies are buffers computed from the config, not stored weights, so a
    new theta takes effect by editing the config before the model is built. `dropout`
    (a training run's model settings) sets the official dropout split.
    """
    from transformers import AutoConfig, ModernBertForMaskedLM

    config = AutoConfig.from_pretrained(path)
    theta = config.rope_parameters
    config.rope_parameters = rope_parameters(
        rope_theta_global or theta["full_attention"]["rope_theta"],
        rope_theta_local or theta["sliding_attention"]["rope_theta"],
    )
    if sparse_prediction is not None:
        config.sparse_prediction = sparse_prediction
    mlm = ModernBertForMaskedLM.from_pretrained(path, config=config, attn_implementation=attn_implementation)
    if dropout is not None:
        split_attention_dropout(mlm, dropout.attention_output_dropout, dropout.attention_probs_dropout)
    return mlm

