"""MTEB: the checkpoint is first fine-tuned into an embedding model as the paper did
(Sentence-Transformers, mean pooling, one epoch on MS MARCO hard triplets, the first `rows`
after a `heldout_rows` split with seed `split_seed`, CachedMultipleNegativesRankingLoss at
scale 20, 5% warmup), then scored with mteb on MTEB(eng, v2), MTEB(Multilingual, v2) and CoIR.

Averages as the paper's: the English and multilingual benchmarks are the mean of their
task-type means (multilingual over the paper's 8 types: InstructionReranking is left out),
CoIR the mean nDCG@10 of its 10 tasks. A run over a subset of tasks (`tasks`) averages what
ran and says how many of the benchmark's tasks that was.

A task reads a local copy when `<data_dir>/<its hub path>` exists (the repository snapshot,
with its README's configs), through mteb's own loader; else the hub at mteb's pinned revision.
Run as a stage: `python -m mmbert.suites.embeddings`.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from mmbert.config import PipelineConfig
from mmbert.suites.hub import DatasetUnavailable, check_available, hub_reachable, load_split, require_columns
from mmbert.suites.tasks import ref

log = logging.getLogger("mmbert.suites")
SUITE = "mteb"
TRIPLETS = ref("sentence-transformers/msmarco-co-condenser-margin-mse-sym-mnrl-mean-v1", "triplet-hard", "train")
TRIPLET_COLUMNS = ("query", "positive", "negative")
MULTILINGUAL_TYPES = ("BitextMining", "PairClassification", "Classification", "STS", "Retrieval",
                      "MultilabelClassification", "Clustering", "Reranking")


def benchmark_tasks(names: list[str], subset: list[str] | None) -> dict[str, list]:
    """{benchmark: its tasks (with the benchmark's language filters)}, limited to `subset`.
    Copies: mteb hands out shared task objects, and `localize` changes the ones it is given."""
    import mteb

    chosen = {name: [copy.deepcopy(t) for t in mteb.get_benchmark(name).tasks] for name in names}
    if subset is not None:
        known = {t.metadata.name for tasks in chosen.values() for t in tasks}
        unknown = sorted(set(subset) - known)
        if unknown:
            raise KeyError(f"suites.mteb.tasks: {unknown} are not in the benchmarks {names}")
        chosen = {name: [t for t in tasks if t.metadata.name in subset] for name, tasks in chosen.items()}
    return chosen


def local_copy(task, data_dir: str | None) -> Path | None:
    if not data_dir:
        return None
    path = Path(data_dir) / task.metadata.dataset["path"]
    return path if path.is_dir() else None


def localize(task, path: Path):
    """Point a task at a local snapshot, keeping mteb's own loading. The metadata is a class
    attribute shared by every instance, and mteb drops instance metadata after a run, so the
    task moves onto a one-off subclass that carries the local path."""
    cls = type(task)
    metadata = cls.metadata.model_copy(update={"dataset": {**cls.metadata.dataset, "path": str(path)}})
    task.__class__ = type(cls.__name__, (cls,), {"metadata": metadata, "__module__": cls.__module__})
    task.__dict__.pop("metadata", None)
    task.data_loaded = False
    task.dataset = None
    return task


def check_tasks_available(tasks: list, data_dir: str | None) -> None:
    missing = [t for t in tasks if local_copy(t, data_dir) is None]
    if not missing:
        return
    reason = hub_reachable(missing[0].metadata.dataset["path"])
    if reason is None:
        return
    lines = "\n".join(f"  - {t.metadata.name}: {t.metadata.dataset['path']} at {t.metadata.dataset['revision']}"
                      for t in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    raise DatasetUnavailable(
        f"{len(missing)} MTEB task dataset(s) cannot be loaded: {reason}, and no local copy under suites.data_dir "
        f"({data_dir}) as <data_dir>/<hub path> (a snapshot of the hub repository, README included):\n{lines}{more}")


def embedder(path: str, max_length: int, name: str):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(path, max_seq_length=max_length)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")])
    model.model_card_data.model_name = name  # mteb keys its results by this name
    return model


def triplets(cfg: PipelineConfig):
    train = cfg.suites.mteb.train
    data = load_split(TRIPLETS, cfg.suites.data_dir)
    require_columns(data, TRIPLETS, TRIPLET_COLUMNS)
    if len(data) <= train.heldout_rows:
        raise DatasetUnavailable(f"{TRIPLETS.label()} has {len(data)} rows, not more than "
                                 f"suites.mteb.train.heldout_rows={train.heldout_rows}")
    split = data.train_test_split(test_size=train.heldout_rows, seed=train.split_seed, shuffle=True)
    rows = split["train"]
    return rows.select(range(min(train.rows, len(rows)))).select_columns(list(TRIPLET_COLUMNS))


def fine_tune(path: str, lr: float, seed: int, cfg: PipelineConfig, work: Path, name: str):
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (BatchSamplers,
                                                                          SentenceTransformerTrainingArguments)

    from mmbert.suites.finetune import device_for

    train = cfg.suites.mteb.train
    model = embedder(path, train.max_length, name)
    gpu = device_for(cfg.suites.device).type == "cuda"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=1, per_device_train_batch_size=train.batch_size, learning_rate=lr,
        warmup_ratio=train.warmup_ratio, seed=seed, bf16=gpu and cfg.suites.precision == "bf16", use_cpu=not gpu,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none", logging_steps=10,
        disable_tqdm=True)
    loss = CachedMultipleNegativesRankingLoss(model, scale=train.scale, mini_batch_size=train.mini_batch_size)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=triplets(cfg), loss=loss)
    output = trainer.train()
    return model, output.global_step, output.training_loss


def aggregate(benchmark: str, scores: dict[str, float], types: dict[str, str]) -> float:
    if benchmark == "CoIR":
        return statistics.fmean(scores.values())
    by_type: dict[str, list[float]] = {}
    for task, value in scores.items():
        if benchmark != "MTEB(Multilingual, v2)" or types[task] in MULTILINGUAL_TYPES:
            by_type.setdefault(types[task], []).append(value)
    return statistics.fmean(statistics.fmean(v) for v in by_type.values())


def run_trial(model_name: str, path: str, lr: float, seed: int, cfg: PipelineConfig, work: str) -> dict:
    """Fine-tune one embedding model and score it on every chosen benchmark."""
    import mteb
    import transformers

    transformers.logging.set_verbosity_error()
    started = time.monotonic()
    key = f"{model_name}/mteb/lr{lr:g}/seed{seed}"
    model, steps, loss = fine_tune(path, lr, seed, cfg, Path(work) / key, f"mmbert-repro/{key}")
    chosen = benchmark_tasks(cfg.suites.mteb.benchmarks, cfg.suites.mteb.tasks)
    unique = {t.metadata.name: t for tasks in chosen.values() for t in tasks}
    for task in unique.values():
        if (copy := local_copy(task, cfg.suites.data_dir)) is not None:
            localize(task, copy)
    result = mteb.evaluate(model, tasks=list(unique.values()), cache=None, overwrite_strategy="always",
                           co2_tracker=False, encode_kwargs={"batch_size": cfg.suites.mteb.eval_batch_size},
                           show_progress_bar=False, raise_error=True)
    per_task = {r.task_name: 100.0 * r.get_score() for r in result.task_results}
    types = {name: task.metadata.type for name, task in unique.items()}
    scores = {}
    for benchmark, tasks in chosen.items():
        ran = {t.metadata.name: per_task[t.metadata.name] for t in tasks}
        scores[benchmark] = {"all": {"score": aggregate(benchmark, ran, types), "tasks": len(ran)},
                             **{name: {"score": value} for name, value in ran.items()}}
    return {"trial": key, "model": model_name, "lr": lr, "seed": seed, "scores": scores, "train_steps": steps,
            "mean_train_loss": loss, "seconds": time.monotonic() - started}


def summarize(results: list[dict], benchmarks: list[str]) -> dict[str, dict]:
    """Per model and benchmark: the median over seeds at the LR whose median (over benchmarks) is best."""
    out: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in results):
        runs = [r for r in results if r["model"] == model]
        by_lr: dict[float, list[dict]] = {}
        for r in runs:
            by_lr.setdefault(r["lr"], []).append(r)

        def median(lr: float, bench: str, task: str = "all") -> float:
            return statistics.median(r["scores"][bench][task]["score"] for r in by_lr[lr])

        best = max(by_lr, key=lambda lr: statistics.fmean(median(lr, b) for b in benchmarks))
        out[model] = {bench: {"score": median(best, bench), "lr": best, "seeds": len(by_lr[best]),
                              "tasks_run": by_lr[best][0]["scores"][bench]["all"]["tasks"],
                              "per_task": {t: median(best, bench, t) for t in by_lr[best][0]["scores"][bench]
                                           if t != "all"}}
                      for bench in benchmarks}
    return out


def estimate(models: dict[str, str], cfg: PipelineConfig, trials_per_model: int, remote_options: dict | None) -> dict:
    """Training cost from a timed step at full length: each step embeds batch_size triplets
    (3 texts) in mini-batches, and CachedMNRL runs every mini-batch twice (once without
    gradients for the cache, once with); the mteb scoring that follows is not included."""
    from mmbert.suites.estimate import seconds_per_step

    train = cfg.suites.mteb.train
    steps = -(-train.rows // train.batch_size)
    args = [(path, train.mini_batch_size, train.max_length, cfg.suites.device) for path in models.values()]
    if remote_options is None:
        timed = [seconds_per_step(*a) for a in args]
    else:
        import ray

        timed = ray.get([ray.remote(**remote_options)(seconds_per_step).remote(*a) for a in args])
    per_step = [t * 3 * 2 * train.batch_size / train.mini_batch_size for t in timed]
    return {"trials": trials_per_model * len(models), "steps_per_trial": steps,
            "training_steps": steps * trials_per_model * len(models),
            "device_hours": sum(steps * trials_per_model * s for s in per_step) / 3600}


def run_suite(models: dict[str, str], cfg: PipelineConfig, work: Path, connect: Callable[[], dict | None]) -> dict:
    section = cfg.suites.mteb
    chosen = benchmark_tasks(section.benchmarks, section.tasks)
    check_available([TRIPLETS], cfg.suites.data_dir)
    check_tasks_available([t for tasks in chosen.values() for t in tasks], cfg.suites.data_dir)
    triplets(cfg)  # the training set loads and has its columns, before any training
    remote_options = connect()
    trials = [(name, path, lr, seed) for name, path in models.items() for lr in section.lrs for seed in section.seeds]
    cost = estimate(models, cfg, len(section.lrs) * len(section.seeds), remote_options)
    log.info("mteb: %d trial(s): fine-tune on %d triplets (%d steps each, about %.2f device-hours in all), then %d "
             "tasks of %s", len(trials), section.train.rows, cost["steps_per_trial"], cost["device_hours"],
             len({t.metadata.name for tasks in chosen.values() for t in tasks}), section.benchmarks)
    if remote_options is None:
        results = [run_trial(*trial, cfg, str(work)) for trial in trials]
    else:
        import ray

        remote = ray.remote(**remote_options)(run_trial)
        results = ray.get([remote.remote(*trial, cfg, str(work)) for trial in trials])
    cost["measured_device_hours"] = sum(r["seconds"] for r in results) / 3600
    return {"summary": summarize(results, section.benchmarks), "trials": results, "estimate": cost,
            "protocol": {"train": f"{TRIPLETS.hub_id}/{TRIPLETS.config}", "benchmarks": section.benchmarks,
                         "tasks": {b: [t.metadata.name for t in ts] for b, ts in chosen.items()}},
            "columns": {b: b for b in section.benchmarks}}


if __name__ == "__main__":
    from mmbert.suites.stage import stage_main

    stage_main(SUITE, run_suite)
