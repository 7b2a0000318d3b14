"""Sentence and sentence-pair classification (GLUE, XNLI, PAWS-X) and regression (STS-B)."""

from __future__ import annotations

from mmbert.suites.finetune import forward_all
from mmbert.suites.metrics import SCALAR
from mmbert.suites.tasks import Training

LABEL = "label"


def num_labels(dataset, training: Training) -> int:
    return 1 if training.kind == "regress" else dataset.features[LABEL].num_classes


def load_model(path: str, labels: int, training: Training):
    from transformers import AutoModelForSequenceClassification

    kind = {"problem_type": "regression"} if training.kind == "regress" else {}
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=labels, ignore_mismatched_sizes=True,
                                                              **kind)


def features(dataset, tokenizer, training: Training, with_labels: bool = True) -> list[dict]:
    texts = [list(dataset[column]) for column in training.columns]
    encoded = tokenizer(*texts, truncation=True, max_length=training.max_length)
    rows = [{k: encoded[k][i] for k in ("input_ids", "attention_mask")} for i in range(len(dataset))]
    if with_labels:
        cast = float if training.kind == "regress" else int
        for row, label in zip(rows, dataset[LABEL]):
            row["labels"] = cast(label)
    return rows


def collator(tokenizer):
    import torch

    def collate(rows: list[dict]) -> dict:
        labels = [r["labels"] for r in rows] if "labels" in rows[0] else None
        batch = tokenizer.pad([{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows], return_tensors="pt")
        if labels is not None:
            batch["labels"] = torch.tensor(labels)
        return dict(batch)

    return collate


def score(model, tokenizer, dataset, training: Training, metric: str, batch_size: int, device, precision: str
          ) -> dict[str, float]:
    rows = features(dataset, tokenizer, training, with_labels=False)
    regress = training.kind == "regress"
    predictions = forward_all(model, rows, collator(tokenizer), batch_size, device, precision,
                              lambda out: (out.logits[:, 0] if regress else out.logits.argmax(-1)).float().tolist())
    if not regress:
        predictions = [int(p) for p in predictions]
    return {"score": SCALAR[metric](list(dataset[LABEL]), predictions), "examples": len(rows)}
