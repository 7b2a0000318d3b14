"""Fine-tuning trials: models × trainings × learning rates × seeds, spread over Ray.

One trial fine-tunes one model on one training (a recipe) at one LR and seed, then scores
every task that uses that training on each of its evaluation sets. A training with a parent
(RTE from MNLI) starts from the parent trial of the same model, LR and seed, so trials run
in waves: parents first. On a GPU cluster each trial takes one GPU; on CPUs, a share of them.
A task's result is the median over seeds at its best LR (by that median).
"""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from mmbert.suites.finetune import Recipe, device_for, fit
from mmbert.suites.hub import DatasetRef, load_split, require_columns
from mmbert.suites.tasks import Task, Training

log = logging.getLogger("mmbert.suites")
Kinds = dict[str, ModuleType]  # training kind -> the module that encodes, trains and scores it


@dataclass(frozen=True)
class Settings:
    """The suite's params (suites.<suite>) and the shared ones (suites.*)."""
    lrs: tuple[float, ...] | None  # None: each training's own LR
    seeds: tuple[int, ...]
    epochs: int | None  # None: each training's own epochs
    batch_size: int
    eval_batch_size: int
    warmup_ratio: float
    weight_decay: float
    max_train_examples: int | None
    max_eval_examples: int | None
    precision: str
    device: str
    data_dir: str | None


@dataclass(frozen=True)
class Trial:
    model: str
    path: str
    training: Training
    tasks: tuple[Task, ...]
    lr: float
    seed: int
    parent: str | None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.training.name}/lr{self.lr:g}/seed{self.seed}"


def plan(models: dict[str, str], trainings: list[Training], tasks: list[Task], settings: Settings) -> list[Trial]:
    trials = []
    for model, path in models.items():
        for training in trainings:
            scored = tuple(t for t in tasks if t.training == training.name)
            for lr in settings.lrs or (training.lr,):
                for seed in settings.seeds:
                    parent = f"{model}/{training.parent}/lr{lr:g}/seed{seed}" if training.parent else None
                    trials.append(Trial(model, path, training, scored, lr, seed, parent))
    return trials


def waves(trials: list[Trial]) -> list[list[Trial]]:
    depth: dict[str, int] = {}
    for trial in trials:  # planned parents first
        depth[trial.key] = 0 if trial.parent is None else depth[trial.parent] + 1
    return [[t for t in trials if depth[t.key] == d] for d in range(max(depth.values(), default=-1) + 1)]


def every_split(trials: list[Trial]) -> list[DatasetRef]:
    refs = [step.data for t in trials for step in t.training.steps]
    refs += [e.data for t in trials for task in t.tasks for e in task.evals]
    return list(dict.fromkeys(refs))


def capped(dataset, limit: int | None):
    return dataset if limit is None or len(dataset) <= limit else dataset.select(range(limit))


def recipe(trial: Trial, settings: Settings, epochs: int) -> Recipe:
    return Recipe(trial.lr, settings.epochs or epochs, settings.batch_size, settings.warmup_ratio,
                  settings.weight_decay, trial.seed, settings.precision)


def _start(trial: Trial, kind: ModuleType, first_train, work: Path):
    source = str(work / trial.parent / "model") if trial.parent else trial.path
    return kind.load_model(source, kind.num_labels(first_train, trial.training), trial.training)


def max_tokens(config) -> int:
    """The longest input a model takes (XLM-R: 512, two of its 514 positions are the padding offset)."""
    offset = 2 if config.model_type in ("xlm-roberta", "roberta") else 0
    return config.max_position_embeddings - offset


def fitted(training: Training, config) -> Training:
    """The training with its length cut to what the model can take."""
    limit = max_tokens(config)
    return training if training.max_length <= limit else replace(training, max_length=limit,
                                                                 stride=min(training.stride, limit // 4))


def run_trial(trial: Trial, settings: Settings, work: str, keep_model: bool, kinds: Kinds) -> dict:
    """Fine-tune, score every task of the training on each of its sets; returns the scores."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()  # a new head's "newly initialized" report is expected
    transformers.logging.disable_progress_bar()
    started = time.monotonic()
    torch.manual_seed(trial.seed)
    kind, device = kinds[trial.training.kind], device_for(settings.device)
    tokenizer = AutoTokenizer.from_pretrained(trial.path)
    train_sets = [capped(load_split(s.data, settings.data_dir), settings.max_train_examples)
                  for s in trial.training.steps]
    model = _start(trial, kind, train_sets[0], Path(work))
    trial = replace(trial, training=fitted(trial.training, model.config))
    losses: list[float] = []
    for step, data in zip(trial.training.steps, train_sets):
        rows = kind.features(data, tokenizer, trial.training)
        losses += fit(model, rows, kind.collator(tokenizer), recipe(trial, settings, step.epochs), device,
                      f"{trial.key} on {step.data.hub_id}/{step.data.config}")
    scores: dict[str, dict[str, dict]] = {}
    for task in trial.tasks:
        scores[task.name] = {}
        for eval_set in task.evals:
            data = capped(load_split(eval_set.data, settings.data_dir), settings.max_eval_examples)
            scores[task.name][eval_set.language] = kind.score(model, tokenizer, data, trial.training, task.metric,
                                                              settings.eval_batch_size, device, settings.precision)
    if keep_model:
        model.save_pretrained(Path(work) / trial.key / "model")
    return {"trial": trial.key, "scores": scores, "train_steps": len(losses),
            "final_loss": losses[-1] if losses else None, "seconds": time.monotonic() - started,
            "device": str(device)}


def check_schemas(trials: list[Trial], settings: Settings) -> dict[DatasetRef, int]:
    """Load every split once, before any fine-tuning, and check the columns each kind reads;
    returns the rows of each split."""
    rows: dict[DatasetRef, int] = {}
    for trial in trials:
        needed = [(s.data, trial.training) for s in trial.training.steps]
        needed += [(e.data, trial.training) for task in trial.tasks for e in task.evals]
        for ref, training in needed:
            if ref not in rows:
                data = load_split(ref, settings.data_dir)
                require_columns(data, ref, _columns(training, data))
                rows[ref] = len(data)
    return rows


def _columns(training: Training, data) -> tuple[str, ...]:
    if training.kind == "choice":
        return (("context", "question", "answerA", "answerB", "answerC", "label") if "answerA" in data.column_names
                else ("premise", "choice1", "choice2", "question", "label"))
    if training.kind == "tokens":
        return ("tokens",) + training.columns
    if training.kind == "qa":
        return training.columns
    return training.columns + ("label",)


def execute(trials: list[Trial], settings: Settings, work: Path, kinds: Kinds, remote_options: dict | None
            ) -> list[dict]:
    """Run the trials wave by wave; on Ray when `remote_options` is given, else here."""
    parents = {t.parent for t in trials if t.parent}
    results = []
    for number, wave in enumerate(waves(trials), start=1):
        log.info("wave %d: %d trial(s)", number, len(wave))
        if remote_options is None:
            results += [run_trial(t, settings, str(work), t.key in parents, kinds) for t in wave]
            continue
        import ray

        remote = ray.remote(**remote_options)(run_trial)
        pending = {remote.remote(t, settings, str(work), t.key in parents, kinds): t for t in wave}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            result = ray.get(done[0])
            log.info("trial %s done in %.0f s: %s", result["trial"], result["seconds"], _brief(result))
            results.append(result)
            del pending[done[0]]
    shutil.rmtree(work, ignore_errors=True)
    return results


def _brief(result: dict) -> str:
    return ", ".join(f"{task} {statistics.fmean(s['score'] for s in by_lang.values()):.1f}"
                     for task, by_lang in result["scores"].items())


def summarize(trials: list[Trial], results: list[dict]) -> dict[str, dict[str, dict]]:
    """{model: {task: score, per-language scores, best LR, per-seed scores}}: median over seeds
    at the LR whose median is best."""
    by_key = {r["trial"]: r for r in results}
    out: dict[str, dict[str, dict]] = {}
    for trial in trials:
        for task in trial.tasks:
            entry = out.setdefault(trial.model, {}).setdefault(task.name, {"by_lr": {}})
            per_language = by_key[trial.key]["scores"][task.name]
            entry["by_lr"].setdefault(f"{trial.lr:g}", []).append(
                {"seed": trial.seed, "score": statistics.fmean(v["score"] for v in per_language.values()),
                 "per_language": {lang: v["score"] for lang, v in per_language.items()}})
    for tasks in out.values():
        for name, entry in tasks.items():
            medians = {lr: statistics.median(r["score"] for r in runs) for lr, runs in entry["by_lr"].items()}
            best = max(medians, key=medians.__getitem__)
            languages = entry["by_lr"][best][0]["per_language"]
            entry.update(score=medians[best], lr=float(best), seeds=len(entry["by_lr"][best]),
                         per_language={lang: statistics.median(r["per_language"][lang] for r in entry["by_lr"][best])
                                       for lang in languages})
    return out
