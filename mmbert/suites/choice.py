"""Multiple choice: SocialIQA and COPA for training, XCOPA for scoring. Each option is
encoded as a pair (context, option); the model scores every option of an example."""

from __future__ import annotations

from mmbert.suites.finetune import forward_all
from mmbert.suites.metrics import SCALAR
from mmbert.suites.tasks import Training

# COPA asks for the cause or the effect of its premise; the question word becomes text.
COPA_QUESTION = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def as_choices(row: dict) -> tuple[str, list[str], int]:
    """(context, options, index of the right option) for SocialIQA's and COPA's layouts."""
    if "answerA" in row:  # SocialIQA: label is the string "1".."3"
        return (f"{row['context']} {row['question']}", [row["answerA"], row["answerB"], row["answerC"]],
                int(row["label"]) - 1)
    return f"{row['premise']} {COPA_QUESTION[row['question']]}", [row["choice1"], row["choice2"]], int(row["label"])


def num_labels(dataset, training: Training) -> int:
    return 0  # the head scores each option; the number of options is the data's


def load_model(path: str, labels: int, training: Training):
    from transformers import AutoModelForMultipleChoice

    return AutoModelForMultipleChoice.from_pretrained(path, ignore_mismatched_sizes=True)


def features(dataset, tokenizer, training: Training, with_labels: bool = True) -> list[dict]:
    rows = []
    for row in dataset:
        context, options, label = as_choices(row)
        encoded = tokenizer([context] * len(options), options, truncation=True, max_length=training.max_length)
        rows.append({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": label})
    return rows


def collator(tokenizer):
    import torch

    def collate(rows: list[dict]) -> dict:
        options = len(rows[0]["input_ids"])
        flat = [{"input_ids": ids, "attention_mask": mask} for r in rows
                for ids, mask in zip(r["input_ids"], r["attention_mask"])]
        batch = tokenizer.pad(flat, return_tensors="pt")
        out = {k: v.view(len(rows), options, -1) for k, v in batch.items()}
        out["labels"] = torch.tensor([r["labels"] for r in rows])
        return out

    return collate


def score(model, tokenizer, dataset, training: Training, metric: str, batch_size: int, device, precision: str
          ) -> dict[str, float]:
    rows = features(dataset, tokenizer, training)
    predictions = forward_all(model, rows, collator(tokenizer), batch_size, device, precision,
                              lambda out: out.logits.argmax(-1).tolist())
    return {"score": SCALAR[metric]([r["labels"] for r in rows], predictions), "examples": len(rows)}
