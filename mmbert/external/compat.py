"""An external checkpoint checked against the run before any training: its tokenizer against
the run's (vocabulary, special-token ids), its architecture against params.yaml's `model`,
its positions against the phase's sequence length and its RoPE thetas against the phase's.
Every mismatch is named with both values."""

from __future__ import annotations

import json
from pathlib import Path

from mmbert.config import PipelineConfig
from mmbert.external.errors import CheckpointError

ARCHITECTURE = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "local_attention",
                "global_attn_every_n_layers")


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    return json.loads(path.read_text())


def rope_thetas(config: dict) -> tuple[float, float]:
    """(global, local) RoPE theta of a ModernBERT config, in transformers 5's layout or the
    older global_rope_theta / local_rope_theta keys (the released mmBERT configs)."""
    rope = config.get("rope_parameters") or {}
    if "full_attention" in rope:
        return float(rope["full_attention"]["rope_theta"]), float(rope["sliding_attention"]["rope_theta"])
    global_theta = float(config.get("global_rope_theta", 160_000.0))
    return global_theta, float(config.get("local_rope_theta") or global_theta)


def tokenizer_mismatches(folder: Path, run_tokenizer: Path) -> list[str]:
    from mmbert.tokenizer import load_tokenizer, special_ids

    theirs, ours = load_tokenizer(folder), load_tokenizer(run_tokenizer)
    problems = []
    if len(theirs) != len(ours):
        problems.append(f"vocabulary {len(theirs)} tokens, the run's tokenizer has {len(ours)}")
    roles = ("pad", "sep", "cls", "unk", "mask")  # SpecialIds.all()'s order
    for role, a, b in zip(roles, special_ids(theirs).all(), special_ids(ours).all()):
        if a != b:
            problems.append(f"{role} id {a}, the run's tokenizer has {b}")
    vocab = _config(folder).get("vocab_size")
    if vocab is not None and vocab != len(ours):
        problems.append(f"config vocab_size {vocab}, the run's tokenizer has {len(ours)} tokens")
    return problems


def phase_mismatches(cfg: PipelineConfig, phase: str, folder: Path) -> list[str]:
    config, settings = _config(folder), cfg.model.model_dump()
    problems = [f"{key} {config.get(key)}, params.yaml model.{key} is {settings[key]}"
                for key in ARCHITECTURE if config.get(key) != settings[key]]
    phase_cfg = cfg.phases[phase]
    positions = config.get("max_position_embeddings", 0)
    if positions < phase_cfg.data.seq_len:
        problems.append(f"max_position_embeddings {positions}, below phases.{phase}.data.seq_len "
                        f"{phase_cfg.data.seq_len}")
    theirs = rope_thetas(config)
    ours = (phase_cfg.rope_theta_global, phase_cfg.rope_theta_local)
    for which, a, b in zip(("global", "local"), theirs, ours):
        if a != b:
            problems.append(f"RoPE theta ({which}) {a:g}, phases.{phase}.rope_theta_{which} is {b:g}")
    return problems


def check_tokenizer(name: str, folder: Path, run_tokenizer: Path) -> None:
    if problems := tokenizer_mismatches(folder, run_tokenizer):
        raise CheckpointError(f"checkpoints.{name}: its tokenizer does not match the run's: " + "; ".join(problems))


def check_phase(cfg: PipelineConfig, phase: str, name: str, folder: Path) -> None:
    if problems := phase_mismatches(cfg, phase, folder):
        raise CheckpointError(f"phases.{phase}.init_from {name!r}: the checkpoint does not fit the phase: "
                              + "; ".join(problems))
