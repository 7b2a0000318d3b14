"""The paper's evaluation suites: their registry, dataset loading (local copies in each hub
dataset's schema, a clear error without one), the task kinds' encoding and decoding, and every
task end to end on fixtures with a small model: fine-tune, predict, score."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmbert.suites import embeddings, glue, lowres_qa, xtreme
from mmbert.suites.hub import DatasetRef, DatasetUnavailable, check_available, load_split, local_files
from mmbert.suites.report import paper_results
from mmbert.suites.revisions import REVISIONS
from mmbert.suites.tasks import select, trainings_for
from mmbert.suites.trials import Settings, execute, plan, summarize, every_split
from suite_fixtures import NOUNS, suite_refs, write_fixtures, write_mteb_fixtures, write_triplets, xlmr_checkpoint

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "suite_scores.json"
SUITES = {"glue": glue, "xtreme": xtreme, "lowres_qa": lowres_qa}


def settings(data_dir: Path, **changes) -> Settings:
    base = dict(lrs=(1e-3,), seeds=(0,), epochs=2, batch_size=8, eval_batch_size=16, warmup_ratio=0.06,
                weight_decay=0.0, max_train_examples=None, max_eval_examples=None, precision="fp32", device="cpu",
                data_dir=str(data_dir))
    return Settings(**(base | changes))


@pytest.fixture(scope="module")
def model_dir(micro, tmp_path_factory) -> Path:
    """A small ModernBERT with the pipeline's tokenizer (random weights, fixed seed)."""
    from mmbert.modeling import build_config, new_model
    from mmbert.tokenizer import load_tokenizer, special_ids

    cfg, out = micro
    tokenizer = load_tokenizer(out / "tokenizer")
    folder = tmp_path_factory.mktemp("suite-model") / "model"
    new_model(build_config(cfg.model, len(tokenizer), special=special_ids(tokenizer)), seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Fixtures for every split of every fine-tuning task."""
    root = tmp_path_factory.mktemp("suite-data")
    write_fixtures(root, [ref for mod in SUITES.values() for ref in suite_refs(mod)])
    return root


# ---------------------------------------------------------------- the registry
def test_suites_hold_the_papers_tasks_and_languages():
    assert [t.name for t in glue.TASKS] == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"]
    assert {t.name: t.metric for t in glue.TASKS} == {
        "cola": "matthews", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman", "qqp": "f1", "mnli": "accuracy",
        "qnli": "accuracy", "rte": "accuracy"}
    assert {t.name: len(t.evals) for t in xtreme.TASKS} == {
        "xnli": 15, "pawsx": 7, "xcopa": 11, "xquad": 11, "mlqa": 7, "tydiqa": 9, "wikiann": 40, "udpos": 33}
    assert [t.name for t in lowres_qa.TASKS] == ["tiquad", "foqa"]


def test_glue_pairs_start_from_mnli_and_parents_come_first():
    order = [t.name for t in trainings_for(glue.TRAININGS, select(glue.TASKS, ["rte", "stsb"], "glue"))]
    assert order == ["mnli", "rte", "stsb"]
    trials = plan({"m": "path"}, trainings_for(glue.TRAININGS, select(glue.TASKS, ["rte"], "glue")),
                  select(glue.TASKS, ["rte"], "glue"), settings(Path("."), lrs=(1e-5, 2e-5), seeds=(0, 1)))
    rte = [t for t in trials if t.training.name == "rte"]
    assert {t.parent for t in rte} == {f"m/mnli/lr{lr:g}/seed{s}" for lr in (1e-5, 2e-5) for s in (0, 1)}


def test_unknown_task_is_named():
    with pytest.raises(KeyError, match=r"suites.glue.tasks: unknown task\(s\) \['wnli'\]"):
        select(glue.TASKS, ["sst2", "wnli"], "glue")


def test_every_dataset_has_a_revision_and_every_task_a_paper_column():
    for mod in SUITES.values():
        for ref in suite_refs(mod):
            assert REVISIONS[ref.hub_id] == ref.revision
        columns = paper_results()[mod.SUITE]["tasks"]
        assert [t.paper_key for t in mod.TASKS] == columns


# ---------------------------------------------------------------- loading
def test_local_copies_in_both_hub_layouts(tmp_path):
    repo_ref = DatasetRef("nyu-mll/glue", "rte", "train", "x")
    export_ref = DatasetRef("facebook/mlqa", "mlqa.de.de", "test", "x", layout="export")
    write_fixtures(tmp_path, [repo_ref, export_ref], train_rows=5, eval_rows=3)
    assert local_files(repo_ref, tmp_path)[0].name == "train-00000-of-00001.parquet"
    assert local_files(export_ref, tmp_path)[0].relative_to(tmp_path).as_posix() == "facebook/mlqa/mlqa.de.de/test/0000.parquet"
    rte = load_split(repo_ref, str(tmp_path))
    assert rte.features["label"].names == ["entailment", "not_entailment"] and len(rte) == 5
    mlqa = load_split(export_ref, str(tmp_path))
    assert mlqa.column_names == ["context", "question", "answers", "id"]


def test_missing_dataset_fails_at_once_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = DatasetRef("alexandrainst/foqa", "default", "test", "main", gated=True)
    with pytest.raises(DatasetUnavailable) as caught:
        check_available([ref], str(tmp_path))
    message = str(caught.value)
    assert "alexandrainst/foqa (config 'default', split 'test')" in message
    assert "suites.data_dir" in message and "HF_TOKEN" in message and "HF_HUB_OFFLINE" in message


# ---------------------------------------------------------------- encoding and decoding
def test_qa_windows_point_at_the_answer_and_decode_back(model_dir, data_dir):
    """Logits that put all mass on the labelled start and end must decode to the gold text,
    also when the context is cut into overlapping windows."""
    import torch
    from transformers import AutoTokenizer

    from mmbert.suites import qa

    training = xtreme.TRAININGS[3]  # squad
    short = type(training)(**{**training.__dict__, "max_length": 24, "stride": 8})
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = load_split(training.steps[0].data, str(data_dir))
    rows = qa.features(data, tokenizer, short)
    assert len(rows) > len(data)  # long contexts were windowed
    encoded = qa.windows(data, tokenizer, short)
    found = 0
    for i, row in enumerate(rows):
        if row["start_positions"] == 0:
            continue
        n = len(row["input_ids"])
        starts, ends = torch.full((n,), -9.0), torch.full((n,), -9.0)
        starts[row["start_positions"]], ends[row["end_positions"]] = 9.0, 9.0
        context_ids = {t for t, s in enumerate(encoded.sequence_ids(i)) if s == 1}
        _, (a, b) = qa.best_span(starts.tolist(), ends.tolist(), encoded["offset_mapping"][i], context_ids)
        example = data[encoded["overflow_to_sample_mapping"][i]]
        assert example["context"][a:b].strip() == example["answers"]["text"][0]
        found += 1
    assert found >= len(data)


def test_token_labels_sit_on_first_subwords(model_dir, data_dir):
    from transformers import AutoTokenizer

    from mmbert.suites import tokens

    training = xtreme.TRAININGS[5]  # wikiann
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    data = load_split(training.steps[0].data, str(data_dir))
    rows = tokens.features(data, tokenizer, training)
    for row, tags in zip(rows, data["ner_tags"]):
        assert [label for label in row["labels"] if label != tokens.IGNORE] == list(tags)


# ---------------------------------------------------------------- every task end to end
def _scores(summary: dict) -> dict:
    return {task: {"score": round(entry["score"], 4),
                   "per_language": {k: round(v, 4) for k, v in entry["per_language"].items()}}
            for task, entry in summary["m"].items()}


@pytest.mark.parametrize("suite", ["glue", "xtreme", "lowres_qa"])
def test_every_task_runs_end_to_end_on_its_fixture(suite, model_dir, data_dir, tmp_path):
    """Fine-tune, predict and score every task of the suite (every language), inline; the
    scores equal the golden file (regenerate with MMBERT_UPDATE_GOLDEN=1)."""
    mod = SUITES[suite]
    tasks = list(mod.TASKS)
    trials = plan({"m": str(model_dir)}, trainings_for(mod.TRAININGS, tasks), tasks, settings(data_dir))
    results = execute(trials, settings(data_dir), tmp_path / "work", mod.KINDS, None)
    scores = _scores(summarize(trials, results))
    assert set(scores) == {t.name for t in tasks}
    for task in tasks:
        assert set(scores[task.name]["per_language"]) == {e.language for e in task.evals}
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("MMBERT_UPDATE_GOLDEN"):
        golden[suite] = scores
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    assert scores == golden[suite]


def test_a_learnable_task_is_learned(model_dir, tmp_path):
    """SST-2's fixture carries its label in a cue word: the fine-tuned model must find it, so
    a wiring fault (labels shuffled against inputs, a head not trained) fails here."""
    tasks = select(glue.TASKS, ["sst2"], "glue")
    trials = plan({"m": str(model_dir)}, trainings_for(glue.TRAININGS, tasks), tasks, settings(tmp_path))
    write_fixtures(tmp_path, every_split(trials), train_rows=48, eval_rows=16)
    results = execute(trials, settings(tmp_path, epochs=10), tmp_path / "work", glue.KINDS, None)
    assert summarize(trials, results)["m"]["sst2"]["score"] >= 85.0  # chance: 50


def test_median_over_seeds_at_the_best_lr(model_dir, data_dir, tmp_path):
    tasks = select(glue.TASKS, ["sst2"], "glue")
    chosen = settings(data_dir, lrs=(1e-3, 1e-6), seeds=(0, 1, 2), epochs=1)
    trials = plan({"m": str(model_dir)}, trainings_for(glue.TRAININGS, tasks), tasks, chosen)
    results = execute(trials, chosen, tmp_path / "work", glue.KINDS, None)
    entry = summarize(trials, results)["m"]["sst2"]
    import statistics

    medians = {lr: statistics.median(r["score"] for r in runs) for lr, runs in entry["by_lr"].items()}
    assert entry["score"] == max(medians.values()) and entry["seeds"] == 3
    assert entry["lr"] == float(max(medians, key=medians.get))


# ---------------------------------------------------------------- MTEB
def test_mteb_fine_tunes_an_embedder_and_scores_through_mteb(model_dir, tmp_path):
    """The paper's recipe on fixtures: triplet fine-tuning, then mteb's own loaders and scorers
    on local copies of tasks from each benchmark; each benchmark averaged as the paper does."""
    from mmbert.config import parse_config
    from mmbert.preset import preset_values

    write_triplets(tmp_path / "data", embeddings.TRIPLETS)
    write_mteb_fixtures(tmp_path / "data")
    raw = preset_values("micro")
    raw["suites"]["data_dir"] = str(tmp_path / "data")
    raw["suites"]["mteb"].update(tasks=list(embeddings_tasks()), lrs=[1e-3], seeds=[0])
    raw["suites"]["mteb"]["train"].update(rows=32, heldout_rows=8, batch_size=8, mini_batch_size=4, max_length=32)
    cfg = parse_config(raw)
    outcome = embeddings.run_suite({"m": str(model_dir)}, cfg, tmp_path / "work", lambda: None)
    summary = outcome["summary"]["m"]
    eng = summary["MTEB(eng, v2)"]
    assert set(eng["per_task"]) == {"STSBenchmark", "ArguAna", "Banking77Classification"}
    by_type = [eng["per_task"]["STSBenchmark"], eng["per_task"]["ArguAna"], eng["per_task"]["Banking77Classification"]]
    assert eng["score"] == pytest.approx(sum(by_type) / 3)  # one task per type: the mean of type means
    assert summary["CoIR"]["per_task"].keys() == {"CosQA"} and summary["CoIR"]["score"] == summary["CoIR"]["per_task"]["CosQA"]
    multilingual = summary["MTEB(Multilingual, v2)"]
    assert multilingual["per_task"]["BornholmBitextMining"] == pytest.approx(100.0)  # identical sentences
    assert outcome["trials"][0]["train_steps"] == 4
    assert outcome["estimate"]["steps_per_trial"] == 4


def embeddings_tasks() -> tuple[str, ...]:
    from suite_fixtures import MTEB_FIXTURE_TASKS

    return MTEB_FIXTURE_TASKS


def test_mteb_tasks_without_a_copy_fail_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tasks = embeddings.benchmark_tasks(["CoIR"], None)["CoIR"]
    assert len(tasks) == 10
    with pytest.raises(DatasetUnavailable, match="10 MTEB task dataset"):
        embeddings.check_tasks_available(tasks, str(tmp_path))


# ---------------------------------------------------------------- the command line, on Ray
def _evaluate(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MMBERT_RAY_TMP=f"/tmp/mmbert-ray-suites-{os.getpid()}", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "mmbert.evaluate", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow  # a local Ray cluster: about 40 s
def test_command_line_on_a_local_xlmr_checkpoint(data_dir, tmp_path):
    model = xlmr_checkpoint(tmp_path / "xlm-roberta-base", [f"the {a} and the {b} alpha beta gamma"
                                                            for a in NOUNS for b in NOUNS])
    out = tmp_path / "results"
    result = _evaluate(["--model", str(model), "--suite", "xtreme", "--tasks", "pawsx,xquad", "--data-dir",
                        str(data_dir), "--out", str(out)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]["xlm-roberta-base"]) == {"pawsx", "xquad"}
    assert len(metrics["models"]["xlm-roberta-base"]["xquad"]["per_language"]) == 11
    assert metrics["estimate"]["trials"] == 2
    report = (out / "report.md").read_text()
    assert "| PAWS-X |" in report and "| 86.7 |" in report  # beside the paper's mmBERT-small


def test_command_line_names_a_missing_dataset_before_any_work(tmp_path):
    out = tmp_path / "results"
    result = _evaluate(["--model", str(tmp_path), "--suite", "lowres_qa", "--data-dir", str(tmp_path / "empty"),
                        "--out", str(out)], {"HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    assert "fgaim/tiquad (config 'default', split 'validation')" in result.stderr
    assert "alexandrainst/foqa" in result.stderr
    assert not out.exists()


def test_command_line_rejects_a_missing_model_folder(tmp_path):
    result = _evaluate(["--model", str(tmp_path / "nope"), "--suite", "glue"])
    assert result.returncode != 0 and "no such folder" in result.stderr


def test_report_sets_each_task_beside_the_paper_with_the_gap():
    from mmbert.suites.report import render, rows_for

    columns = {t.name: t.paper_key for t in glue.TASKS}
    ours = {name: {"score": 80.0, "lr": 2e-5, "seeds": 3} for name in columns}
    rows = {r["task"]: r for r in rows_for("glue", ours, "xlm-r-base", "merged", columns)}
    assert rows["CoLA"]["gap"] == pytest.approx(80.0 - 54.2)
    paper_mean = (54.2 + 93.1 + 92.2 + 89.4 + 88.5 + 85.0 + 90.6 + 78.7) / 8
    assert rows["mean"]["paper"] == pytest.approx(paper_mean) and rows["mean"]["gap"] == pytest.approx(80 - paper_mean)
    assert rows["Avg (paper's reported)"]["paper"] == 83.3
    lowres = rows_for("lowres_qa", {"tiquad": {"score": 20.0}}, "mmbert-base", "decay-all",
                      {"tiquad": "TiQuAD", "foqa": "FoQA"})
    assert lowres[0]["paper"] == 29.9 and lowres[1]["ours"] is None  # the decay variant's own number
    text = render("glue", {"merged": ours}, "xlm-r-base", columns)
    assert "| CoLA | 80.0 | 54.2 | +25.8 | 2e-05 | 3 |" in text
