"""Extractive QA in SQuAD's layout (SQuAD, XQuAD, MLQA, TyDiQA-GoldP, TiQuAD, FoQA).

A long context is cut into windows of `max_length` tokens overlapping by `stride`; a window
that does not hold the whole answer is trained to point at the first token (no answer). An
answer is the best-scoring span (start <= end, at most MAX_ANSWER_TOKENS) over all windows of
its example, read back from the context through the tokenizer's character offsets.
"""

from __future__ import annotations

from mmbert.suites.finetune import forward_all
from mmbert.suites.metrics import squad
from mmbert.suites.tasks import Training

MAX_ANSWER_TOKENS = 30
TOP_K = 20


def num_labels(dataset, training: Training) -> int:
    return 2


def load_model(path: str, labels: int, training: Training):
    from transformers import AutoModelForQuestionAnswering

    return AutoModelForQuestionAnswering.from_pretrained(path, ignore_mismatched_sizes=True)


def windows(dataset, tokenizer, training: Training):
    return tokenizer([q.lstrip() for q in dataset["question"]], list(dataset["context"]), truncation="only_second",
                     max_length=training.max_length, stride=training.stride, return_overflowing_tokens=True,
                     return_offsets_mapping=True)


def _answer_tokens(offsets, context_ids: list[int], start_char: int, end_char: int) -> tuple[int, int]:
    first, last = context_ids[0], context_ids[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def features(dataset, tokenizer, training: Training, with_labels: bool = True) -> list[dict]:
    encoded = windows(dataset, tokenizer, training)
    rows = []
    for i, example in enumerate(encoded["overflow_to_sample_mapping"]):
        row = {"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i]}
        if with_labels:
            answers = dataset[example]["answers"]
            start_char = answers["answer_start"][0]
            context_ids = [t for t, s in enumerate(encoded.sequence_ids(i)) if s == 1]
            row["start_positions"], row["end_positions"] = _answer_tokens(
                encoded["offset_mapping"][i], context_ids, start_char, start_char + len(answers["text"][0]))
        rows.append(row)
    return rows


def collator(tokenizer):
    import torch

    def collate(rows: list[dict]) -> dict:
        batch = dict(tokenizer.pad([{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows],
                                   return_tensors="pt"))
        for key in ("start_positions", "end_positions"):
            if key in rows[0]:
                batch[key] = torch.tensor([r[key] for r in rows])
        return batch

    return collate


def best_span(starts: list[float], ends: list[float], offsets, context_ids: set[int]) -> tuple[float, tuple[int, int]]:
    order = sorted(range(len(starts)), key=starts.__getitem__, reverse=True)[:TOP_K]
    order_end = sorted(range(len(ends)), key=ends.__getitem__, reverse=True)[:TOP_K]
    best = (float("-inf"), (0, 0))
    for s in order:
        for e in order_end:
            if s in context_ids and e in context_ids and s <= e < s + MAX_ANSWER_TOKENS:
                value = starts[s] + ends[e]
                if value > best[0]:
                    best = (value, (offsets[s][0], offsets[e][1]))
    return best


def predict(model, tokenizer, dataset, training: Training, batch_size: int, device, precision: str) -> list[str]:
    encoded = windows(dataset, tokenizer, training)
    rows = [{"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
    logits = forward_all(model, rows, collator(tokenizer), batch_size, device, precision,
                         lambda out: list(zip(out.start_logits.float().tolist(), out.end_logits.float().tolist())))
    best: dict[int, tuple[float, tuple[int, int]]] = {}
    for i, example in enumerate(encoded["overflow_to_sample_mapping"]):
        n = len(encoded["input_ids"][i])
        context_ids = {t for t, s in enumerate(encoded.sequence_ids(i)) if s == 1}
        found = best_span(logits[i][0][:n], logits[i][1][:n], encoded["offset_mapping"][i], context_ids)
        if example not in best or found[0] > best[example][0]:
            best[example] = found
    contexts = list(dataset["context"])
    # strip: a byte-level token's offsets include the space before its word
    return [contexts[i][slice(*best[i][1])].strip() if i in best else "" for i in range(len(dataset))]


def score(model, tokenizer, dataset, training: Training, metric: str, batch_size: int, device, precision: str
          ) -> dict[str, float]:
    predictions = predict(model, tokenizer, dataset, training, batch_size, device, precision)
    scores = squad([list(a["text"]) for a in dataset["answers"]], predictions)
    return {"score": scores["f1"], "exact_match": scores["exact_match"], "examples": len(predictions)}
