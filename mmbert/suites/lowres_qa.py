"""Low-resource QA: Tigrinya (TiQuAD) and Faroese (FoQA), languages mmBERT only sees in
its decay phase; scored for each decay variant and the merge, as the paper's table does.
Run as a stage: `python -m mmbert.suites.lowres_qa`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmbert.config import PipelineConfig
from mmbert.suites import qa
from mmbert.suites.runner import run_finetune
from mmbert.suites.tasks import EvalSet, Task, ref, squad_training

SUITE = "lowres_qa"
KINDS = {"qa": qa}

LOWRES_NOTE = ("Decision (the paper does not say): fine-tune on English SQuAD and score zero-shot, the setting "
               "the TiQuAD paper's numbers match; TiQuAD's test set is private, so its dev set is scored.")
TRAININGS = (squad_training(LOWRES_NOTE),)
TASKS = (
    Task("tiquad", SUITE, "squad", "squad_f1", (EvalSet("ti", ref("fgaim/tiquad", "default", "validation")),),
         "TiQuAD", LOWRES_NOTE),
    Task("foqa", SUITE, "squad", "squad_f1",
         (EvalSet("fo", ref("alexandrainst/foqa", "default", "test", gated=True)),), "FoQA", LOWRES_NOTE),
)




def run_suite(models: dict[str, str], cfg: PipelineConfig, work: Path, connect: Callable[[], dict | None]) -> dict:
    return run_finetune(SUITE, TASKS, TRAININGS, KINDS, models, cfg.suites.lowres_qa, cfg.suites, work, connect)


if __name__ == "__main__":
    from mmbert.suites.stage import stage_main

    stage_main(SUITE, run_suite)
