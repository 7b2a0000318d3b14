"""Every task of the paper's evaluation, with its protocol, as data.

A `Training` is one fine-tuning recipe (what it trains on, in which order, from what); a
`Task` is a score the paper reports: the model of one training, evaluated on one or more
sets (one per language for the cross-lingual tasks). Several tasks can share a training:
XQuAD and MLQA are both scored with the SQuAD model, as in XTREME.

Each suite's tasks are defined in its own module (glue, xtreme, lowres_qa, embeddings), so
that changing one suite's definitions re-runs that suite only. Decisions where the papers
are silent are written beside the definition (`note`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmbert.suites.hub import DatasetRef
from mmbert.suites.revisions import layout, revision

NLI_PAIR = ("premise", "hypothesis")
QA_COLUMNS = ("id", "context", "question", "answers")
QA_RECIPE = {"lr": 3e-5, "max_length": 384, "stride": 128}  # XTREME's SQuAD recipe


@dataclass(frozen=True)
class TrainStep:
    data: DatasetRef
    epochs: int


@dataclass(frozen=True)
class Training:
    name: str
    kind: str  # classify | regress | choice | qa | tokens
    steps: tuple[TrainStep, ...]
    columns: tuple[str, ...]  # text inputs (classify/regress), a choice format, or the tags column
    lr: float
    max_length: int
    parent: str | None = None  # a training of the same suite whose fine-tuned model this starts from
    stride: int = 128  # QA: overlap of the windows a long context is cut into
    note: str = ""


@dataclass(frozen=True)
class EvalSet:
    language: str
    data: DatasetRef


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    training: str
    metric: str  # accuracy | f1 | matthews | spearman | squad_f1 | span_f1
    evals: tuple[EvalSet, ...]
    paper_key: str  # column name in the paper's tables (paper_results.yaml)
    note: str = ""
    extra: dict = field(default_factory=dict)


def ref(hub_id: str, config: str, split: str, gated: bool = False) -> DatasetRef:
    return DatasetRef(hub_id, config, split, revision(hub_id), gated, layout(hub_id))


SQUAD_TRAIN = ref("rajpurkar/squad", "plain_text", "train")


def squad_training(note: str = "") -> Training:
    """English SQuAD v1.1, 3 epochs (the model XQuAD, MLQA, TiQuAD and FoQA are scored with)."""
    return Training("squad", "qa", (TrainStep(SQUAD_TRAIN, 3),), QA_COLUMNS, note=note, **QA_RECIPE)


def select(tasks: tuple[Task, ...], names: list[str] | None, suite: str) -> list[Task]:
    known = {t.name: t for t in tasks}
    if names is None:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"suites.{suite}.tasks: unknown task(s) {unknown}; known: {list(known)}")
    return [known[n] for n in names]


def trainings_for(trainings: tuple[Training, ...], tasks: list[Task]) -> list[Training]:
    """The trainings the tasks need, parents first."""
    by_name = {t.name: t for t in trainings}
    needed: list[str] = []

    def add(name: str) -> None:
        parent = by_name[name].parent
        if parent is not None:
            add(parent)
        if name not in needed:
            needed.append(name)

    for task in tasks:
        add(task.training)
    return [by_name[n] for n in needed]
