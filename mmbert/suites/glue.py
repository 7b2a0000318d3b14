"""GLUE: the 8 tasks the paper reports (WNLI excluded), fine-tuned per task and scored on
the dev sets with each task's metric. Run as a stage: `python -m mmbert.suites.glue`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmbert.config import PipelineConfig
from mmbert.suites import classify
from mmbert.suites.hub import DatasetRef
from mmbert.suites.runner import run_finetune
from mmbert.suites.tasks import NLI_PAIR, EvalSet, Task, Training, TrainStep, ref

SUITE = "glue"
KINDS = {"classify": classify, "regress": classify}


def glue(config: str, split: str) -> DatasetRef:
    return ref("nyu-mll/glue", config, split)


GLUE_INPUTS = {"cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
               "stsb": ("sentence1", "sentence2"), "qqp": ("question1", "question2"),
               "mnli": NLI_PAIR, "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2")}
GLUE_METRIC = {"cola": "matthews", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "qqp": "f1",
               "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy"}
GLUE_PAPER = {"cola": "CoLA", "sst2": "SST2", "mrpc": "MRPC", "stsb": "STSB", "qqp": "QQP", "mnli": "MNLI",
              "qnli": "QNLI", "rte": "RTE"}
FROM_MNLI = ("rte", "mrpc", "stsb")
GLUE_RECIPE_NOTE = ("mmBERT's NLU fork: length 128, batch 32, LR 2e-5, 3 epochs, 6% warmup; RTE, MRPC and STS-B "
                    "start from the MNLI model of the same LR and seed.")


def _glue_training(name: str) -> Training:
    return Training(name, "regress" if name == "stsb" else "classify", (TrainStep(glue(name, "train"), 3),),
                    GLUE_INPUTS[name], 2e-5, 128, parent="mnli" if name in FROM_MNLI else None, note=GLUE_RECIPE_NOTE)


def _glue_task(name: str) -> Task:
    split = "validation_matched" if name == "mnli" else "validation"
    return Task(name, SUITE, name, GLUE_METRIC[name], (EvalSet("en", glue(name, split)),), GLUE_PAPER[name])


TRAININGS = tuple(_glue_training(n) for n in GLUE_INPUTS)
TASKS = tuple(_glue_task(n) for n in GLUE_INPUTS)



def run_suite(models: dict[str, str], cfg: PipelineConfig, work: Path, connect: Callable[[], dict | None]) -> dict:
    return run_finetune(SUITE, TASKS, TRAININGS, KINDS, models, cfg.suites.glue, cfg.suites, work, connect)


if __name__ == "__main__":
    from mmbert.suites.stage import stage_main

    stage_main(SUITE, run_suite)
