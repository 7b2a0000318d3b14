"""The papers' metrics, from maintained implementations, on the 0-100 scale of the tables.

scikit-learn (accuracy, F1, Matthews correlation), scipy (Spearman), seqeval (span F1 for
NER and XTREME's POS score), torchmetrics' SQuAD (official EM/F1 normalisation). TiQuAD's
answers also carry Ge'ez punctuation, which SQuAD's normalisation (ASCII punctuation only)
keeps; its authors strip it first, and so do we for every QA set (a no-op without it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

# Ethiopic punctuation block (U+1360-U+1368): section mark, word space, full stop, comma, ...
GEEZ_PUNCTUATION = dict.fromkeys(range(0x1360, 0x1369), " ")


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float:
    from sklearn.metrics import accuracy_score

    return 100.0 * float(accuracy_score(labels, predictions))


def f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    from sklearn.metrics import f1_score

    return 100.0 * float(f1_score(labels, predictions))


def matthews(labels: Sequence[int], predictions: Sequence[int]) -> float:
    from sklearn.metrics import matthews_corrcoef

    return 100.0 * float(matthews_corrcoef(labels, predictions))


def spearman(labels: Sequence[float], predictions: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return 100.0 * float(spearmanr(labels, predictions).statistic)


def span_f1(labels: list[list[str]], predictions: list[list[str]]) -> float:
    from seqeval.metrics import f1_score

    return 100.0 * float(f1_score(labels, predictions))


def squad(answers: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """SQuAD EM and F1: each prediction against the best of its gold answers."""
    from torchmetrics.functional.text import squad as squad_score

    def clean(text: str) -> str:
        return text.translate(GEEZ_PUNCTUATION)

    preds = [{"id": str(i), "prediction_text": clean(p)} for i, p in enumerate(predictions)]
    target = [{"id": str(i), "answers": {"text": [clean(a) for a in gold], "answer_start": [0] * len(gold)}}
              for i, gold in enumerate(answers)]
    scores = squad_score(preds, target)
    return {"exact_match": float(scores["exact_match"]), "f1": float(scores["f1"])}


SCALAR: dict[str, Callable[[Sequence, Sequence], float]] = {
    "accuracy": accuracy, "f1": f1, "matthews": matthews, "spearman": spearman,
}
