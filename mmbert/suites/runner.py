"""A fine-tuning suite end to end: select its tasks, check every dataset is there, estimate
the cost, run the trials, and summarise (median over seeds at the best LR)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mmbert.config import FinetuneSuiteConfig, SuitesConfig
from mmbert.suites.estimate import estimate
from mmbert.suites.hub import check_available
from mmbert.suites.tasks import Task, Training, select, trainings_for
from mmbert.suites.trials import Kinds, Settings, check_schemas, every_split, execute, plan, summarize

log = logging.getLogger("mmbert.suites")


def settings_from(section: FinetuneSuiteConfig, suites: SuitesConfig) -> Settings:
    return Settings(lrs=tuple(section.lrs) if section.lrs else None, seeds=tuple(section.seeds), epochs=section.epochs,
                    batch_size=section.batch_size, eval_batch_size=section.eval_batch_size,
                    warmup_ratio=section.warmup_ratio, weight_decay=section.weight_decay,
                    max_train_examples=section.max_train_examples, max_eval_examples=section.max_eval_examples,
                    precision=suites.precision, device=suites.device, data_dir=suites.data_dir)


def protocol(tasks: list[Task], trainings: list[Training]) -> dict[str, dict]:
    by_name = {t.name: t for t in trainings}
    out = {}
    for task in tasks:
        training = by_name[task.training]
        out[task.name] = {"metric": task.metric, "training": training.name, "kind": training.kind,
                          "train": [f"{s.data.hub_id}/{s.data.config}:{s.data.split} x{s.epochs} ep"
                                    for s in training.steps],
                          "starts_from": training.parent, "lr": training.lr, "max_length": training.max_length,
                          "evaluated_on": {e.language: f"{e.data.hub_id}/{e.data.config}:{e.data.split}"
                                           for e in task.evals},
                          "note": " ".join(n for n in (training.note, task.note) if n)}
    return out


def run_finetune(suite: str, all_tasks: tuple[Task, ...], all_trainings: tuple[Training, ...], kinds: Kinds,
                 models: dict[str, str], section: FinetuneSuiteConfig, suites: SuitesConfig, work: Path,
                 connect: Callable[[], dict | None]) -> dict:
    tasks = select(all_tasks, section.tasks, suite)
    trainings = trainings_for(all_trainings, tasks)
    settings = settings_from(section, suites)
    trials = plan(models, trainings, tasks, settings)
    check_available(every_split(trials), settings.data_dir)
    rows = check_schemas(trials, settings)
    remote_options = connect()
    cost = estimate(trials, rows, settings, remote_options)
    log.info("%s: %d trials (%d models x %d trainings x LRs x %d seeds), %d training steps, about %.2f device-hours "
             "(upper bound at full length)", suite, cost["trials"], len(models), len(trainings), len(settings.seeds),
             cost["training_steps"], cost["device_hours"])
    results = execute(trials, settings, work, kinds, remote_options)
    return {"summary": summarize(trials, results), "trials": results, "estimate": cost,
            "protocol": protocol(tasks, trainings),
            "columns": {t.name: t.paper_key for t in tasks}}
