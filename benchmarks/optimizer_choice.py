"""Held-out loss after the embedded pre-training phase under one optimizer setting, for the
comparison recorded in benchmarks/README.md ("Optimizer for the embedded default").

    python benchmarks/optimizer_choice.py NAME LR CLIP WARMUP [outputs]
    # e.g. python benchmarks/optimizer_choice.py stable_adamw 3e-3 0 micro_batches

Needs a finished run's outputs/corpus, outputs/tokenizer and outputs/mix/pretrain. Trains in
this process (one worker, one thread) and prints the held-out loss on the phase's languages.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mmbert.config import parse_config
from mmbert.evaluate.mlm_loss import heldout_loss, heldout_rows, pooled
from mmbert.io import read_json
from mmbert.preset import preset_values
from mmbert.tokenizer import load_tokenizer, special_ids
from mmbert.train.loop import PhasePaths, PhaseTrainer


def main(name: str, lr: float, clip: float, warmup: str, outputs: Path) -> None:
    raw = preset_values("embedded")
    raw["output_dir"] = str(outputs)
    raw["train"]["optimizer"].update(name=name, grad_clip=clip)
    raw["phases"]["pretrain"]["lr"]["peak"] = lr
    raw["runtime"]["torch_threads"] = 1
    if warmup == "linear":
        raw["phases"]["pretrain"]["batch"].update(warmup="linear", warmup_from=8)
    cfg = parse_config(raw)
    started = time.perf_counter()
    trainer = PhaseTrainer(cfg, "pretrain", PhasePaths(str(outputs / "mix" / "pretrain"),
                                                       str(outputs / "tokenizer"), None))
    trainer.run()
    tokenizer = load_tokenizer(outputs / "tokenizer")
    languages = set(read_json(outputs / "mix" / "pretrain" / "manifest.json")["per_language"])
    rows = heldout_rows(outputs / "corpus", tokenizer, cfg.train.heldout.seq_len, languages)
    loss = heldout_loss(trainer.model, rows, rate=cfg.train.heldout.mask_rate, ids=special_ids(tokenizer),
                        seed=cfg.train.heldout.seed, batch_size=cfg.train.heldout.batch_size)
    print(f"{name} lr {lr} clip {clip} warmup {warmup}: held-out loss {pooled(loss):.3f} "
          f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    name, lr, clip, warmup = sys.argv[1:5]
    main(name, float(lr), float(clip), warmup, Path(sys.argv[5] if len(sys.argv) > 5 else "outputs"))
