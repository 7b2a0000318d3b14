"""Stage `merge`: TIES (mergekit) over the decay checkpoints, with the mid-training
checkpoint as base, the model they all branch from. The result is an HF checkpoint that
`AutoModelForMaskedLM` loads, tokenizer included."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from mmbert.cards import write_merge_card
from mmbert.checkpoints import checkpoint_dir
from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import MergeConfig, PipelineConfig
from mmbert.evaluate.mlm_loss import end_of_stage_heldout
from mmbert.io import atomic_dir, write_json
from mmbert.stages import write_record

log = logging.getLogger("mmbert.merge")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def mergekit_config(merge: MergeConfig, base: str, models: list[str]) -> dict[str, object]:
    weights = merge.weights or [1.0] * len(models)
    return {
        "merge_method": merge.method,
        "base_model": base,
        "models": [{"model": path, "parameters": {"density": merge.density, "weight": weight}}
                   for path, weight in zip(models, weights)],
        "parameters": {"normalize": merge.normalize, "int8_mask": False},
        "dtype": "float32",
    }


def ties_merge(merge: MergeConfig, base: Path, models: list[Path], out: Path) -> dict[str, object]:
    """Run mergekit in-process; returns the configuration it ran with."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    spec = mergekit_config(merge, str(base), [str(m) for m in models])
    run_merge(MergeConfiguration.model_validate(spec), str(out),
              options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True))
    for name in TOKENIZER_FILES:  # mergekit's own copy needs a slow tokenizer class
        if (base / name).exists():
            shutil.copy2(base / name, out / name)
    return spec


def check_loads(folder: Path) -> int:
    """Load the merged checkpoint as transformers would; fail on any missing weight."""
    from transformers import AutoModelForMaskedLM

    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if k != "decoder.weight"]
    if missing or info["unexpected_keys"] or info["mismatched_keys"]:
        raise RuntimeError(f"{folder}: merged checkpoint is incomplete: {info}")
    return sum(p.numel() for p in model.parameters())


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    base = checkpoint_dir(cfg, cfg.merge.base, "merge.base")
    models = [checkpoint_dir(cfg, name, "merge.models") for name in cfg.merge.models]
    target = output_dir(cfg, "merge")
    with atomic_dir(target) as tmp:
        spec = ties_merge(cfg.merge, base, models, tmp / "model")
        params = check_loads(tmp / "model")
        # the card's score: the stages' own held-out loss (train.heldout), as each phase's card has
        heldout = end_of_stage_heldout(output_dir(cfg, "corpus"), tmp / "model", cfg.train.heldout,
                                       cfg.runtime.torch_threads)
        write_merge_card(cfg, models, heldout["pooled"], tmp / "model")
        write_json(tmp / "merge.json", {"base": cfg.merge.base, "models": cfg.merge.models, "mergekit": spec,
                                        "parameters": params})
        write_record(tmp, cfg, "merge")
    log.info("merge: TIES of %s on %s (density %.2f) -> %s", cfg.merge.models, cfg.merge.base, cfg.merge.density, target)


if __name__ == "__main__":
    run_stage(main, stage_parser(__doc__))
