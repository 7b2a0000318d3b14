"""Stage `bench`: inference throughput (real tokens per second) of the merged model and of
random-weight reference architectures (mmBERT small/base, XLM-R base: no download),
on the paper's scheme: a set of synthetic documents of one fixed length, and one of
lengths ~ Normal(mean, sd) clamped to [1, fixed length], batched in arrival order.

A ModernBERT model named `<name>:unpadded` runs through mmbert.unpadded (real tokens only,
attention per document) on the same batches; `<name>` alone is transformers' padded model."""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import BenchConfig, PipelineConfig
from mmbert.io import atomic_dir, write_json
from mmbert.stages import write_record

log = logging.getLogger("mmbert.bench")
FIRST_REGULAR_ID = 5  # above the special tokens of every model benchmarked


UNPADDED = ":unpadded"


def reference_model(name: str, cfg: PipelineConfig) -> torch.nn.Module:
    from transformers import AutoModel, ModernBertModel

    from mmbert.modeling import architecture, build_config, random_model

    name = name.removesuffix(UNPADDED)
    if name == "merged":
        return AutoModel.from_pretrained(output_dir(cfg, "merge", "model"), attn_implementation="sdpa")
    if name == "xlmr-base":
        return xlmr_base(cfg.seed)
    arch, vocab = architecture(name)
    return random_model(ModernBertModel, build_config(arch, vocab, attn_implementation="sdpa"), cfg.seed)


def xlmr_base(seed: int, **overrides: Any) -> torch.nn.Module:
    """XLM-R base with random weights (no download), the paper's reference encoder."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from mmbert.modeling import random_model

    settings = {"vocab_size": 250002, "max_position_embeddings": 514, "type_vocab_size": 1} | overrides
    return random_model(XLMRobertaModel, XLMRobertaConfig(**settings, attn_implementation="sdpa"), seed)


def document_lengths(cfg: BenchConfig, scenario: str, max_length: int, seed: int) -> np.ndarray:
    limit = min(cfg.fixed_length, max_length)
    if scenario == "fixed":
        return np.full(cfg.documents, limit)
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(rng.normal(cfg.variable_mean, cfg.variable_sd, cfg.documents)), 1, limit).astype(int)


def batches(lengths: np.ndarray, batch_size: int, vocab: int, pad_id: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(lengths), batch_size):
        chunk = lengths[start : start + batch_size]
        ids = torch.randint(FIRST_REGULAR_ID, vocab, (len(chunk), int(chunk.max())), generator=gen)
        mask = torch.arange(ids.shape[1])[None, :] < torch.as_tensor(chunk)[:, None]
        out.append((ids.masked_fill(~mask, pad_id), mask.long()))
    return out


@torch.inference_mode()
def throughput(run: Callable[[Any], object], items: list[Any], tokens: int, cfg: BenchConfig) -> dict[str, float]:
    """Seconds for `run` over every prepared item, after `cfg.warmup` untimed passes; `tokens`
    real tokens per pass."""
    times = []
    for repeat in range(cfg.warmup + cfg.repeats):
        start = time.perf_counter()
        for item in items:
            run(item)
        if repeat >= cfg.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"tokens": tokens, "seconds_median": median, "tokens_per_second": tokens / median,
            "seconds_min": min(times), "seconds_max": max(times)}


def prepared(name: str, model: torch.nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]],
             backend: str = "auto") -> tuple[Callable[[Any], object], list[Any]]:
    """How `name` runs one batch, and the batches as it takes them (unpadded before the clock
    runs, as a data loader would hand them over; `backend`: the unpadded path's attention)."""
    if not name.endswith(UNPADDED):
        return (lambda item: model(input_ids=item[0], attention_mask=item[1])), data
    from mmbert.unpadded import Documents, encode

    items = []
    for ids, mask in data:
        docs, real = Documents.from_attention_mask(mask)
        items.append((ids.flatten()[real], docs))

    def run(item: tuple[torch.Tensor, Documents]) -> torch.Tensor:
        item[1].cache.clear()  # length buckets and masks are built in every forward, as in training
        return encode(model, item[0], item[1], backend=backend)  # type: ignore[arg-type]

    return run, items


def run_bench(cfg: PipelineConfig) -> dict[str, object]:
    torch.set_num_threads(cfg.bench.threads)
    results: dict[str, object] = {}
    for name in cfg.bench.models:
        model = reference_model(name, cfg).eval()
        c = model.config
        entry = {"parameters": sum(p.numel() for p in model.parameters()), "scenarios": {}}
        for scenario in ("fixed", "variable"):
            lengths = document_lengths(cfg.bench, scenario, c.max_position_embeddings - 2, cfg.seed)
            data = batches(lengths, cfg.bench.batch_size, c.vocab_size, c.pad_token_id, cfg.seed)
            run, items = prepared(name, model, data)
            entry["scenarios"][scenario] = throughput(run, items, int(lengths.sum()), cfg.bench)
            log.info("bench %s %s: %.0f tokens/s", name, scenario, entry["scenarios"][scenario]["tokens_per_second"])
        results[name] = entry
        del model
    return results


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    results = run_bench(cfg)
    setup = cfg.bench.model_dump() | {"torch_threads": torch.get_num_threads(), "device": "cpu"}
    target = output_dir(cfg, "bench")
    with atomic_dir(target) as tmp:
        write_json(tmp / "results.json", {"setup": setup, "models": results})
        write_record(tmp, cfg, "bench")
    log.info("bench: %d models -> %s", len(results), target)


if __name__ == "__main__":
    run_stage(main, stage_parser(__doc__))
