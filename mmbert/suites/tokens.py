"""Token classification (WikiANN NER, UDPOS): a word's tag is predicted at its first
sub-word; words cut off by the length limit are scored as the first tag ('O' for NER)."""

from __future__ import annotations

from mmbert.suites.finetune import forward_all
from mmbert.suites.metrics import span_f1
from mmbert.suites.tasks import Training

IGNORE = -100


def tag_column(training: Training) -> str:
    return training.columns[0]


def tag_names(dataset, training: Training) -> list[str]:
    return list(dataset.features[tag_column(training)].feature.names)


def num_labels(dataset, training: Training) -> int:
    return len(tag_names(dataset, training))


def load_model(path: str, labels: int, training: Training):
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(path, num_labels=labels, ignore_mismatched_sizes=True)


def _first_subwords(word_ids: list[int | None]) -> dict[int, int]:
    """word index -> position of its first sub-word."""
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None and word not in first:
            first[word] = position
    return first


def features(dataset, tokenizer, training: Training, with_labels: bool = True) -> list[dict]:
    encoded = tokenizer([list(t) for t in dataset["tokens"]], is_split_into_words=True, truncation=True, max_length=training.max_length)
    rows = []
    for i, tags in enumerate(dataset[tag_column(training)]):
        labels = [IGNORE] * len(encoded["input_ids"][i])
        for word, position in _first_subwords(encoded.word_ids(i)).items():
            labels[position] = tags[word]
        rows.append({"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i],
                     "labels": labels, "word_positions": _first_subwords(encoded.word_ids(i))})
    return rows


def collator(tokenizer):
    import torch

    def collate(rows: list[dict]) -> dict:
        batch = dict(tokenizer.pad([{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows],
                                   return_tensors="pt"))
        width = batch["input_ids"].shape[1]
        batch["labels"] = torch.tensor([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows])
        return batch

    return collate


def score(model, tokenizer, dataset, training: Training, metric: str, batch_size: int, device, precision: str,
          names: list[str] | None = None) -> dict[str, float]:
    names = names or tag_names(dataset, training)
    rows = features(dataset, tokenizer, training)
    predicted = forward_all(model, rows, collator(tokenizer), batch_size, device, precision,
                            lambda out: out.logits.argmax(-1).tolist())
    gold, guess = [], []
    for row, tags, ids in zip(rows, dataset[tag_column(training)], predicted):
        gold.append([names[t] for t in tags])
        guess.append([names[ids[row["word_positions"][w]]] if w in row["word_positions"] else names[0]
                      for w in range(len(tags))])
    return {"score": span_f1(gold, guess), "examples": len(rows)}
