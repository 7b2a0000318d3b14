"""Inference throughput of the unpadded ModernBERT path (mmbert.unpadded) against
transformers' padded ModernBERT on the same weights and XLM-R base, on the paper's scheme
sized down for a CPU: synthetic token ids, a fixed length and lengths ~ Normal(mean, sd)
clamped to [1, fixed], batched in arrival order, timed iterations after a warm-up, real
tokens per second, ratios from one run.

Usage (repo root):
    .venv/bin/python benchmarks/unpadded_inference.py --threads 2 --fixed 512 --mean 256 --sd 64

The paper's scheme is fixed 512 / Normal(256, 64) and fixed 8192 / Normal(4096, 1024), the
largest batch that fits and 10 timed iterations, on a GPU, in bf16; there, e.g.:
    .venv/bin/python benchmarks/unpadded_inference.py --device cuda --precision bf16 --documents 8192 --batch-size 256 --repeats 10
Long context on a CPU, sized down (XLM-R stops at 512 tokens, as in the paper's table):
    .venv/bin/python benchmarks/unpadded_inference.py --fixed 8192 --mean 4096 --sd 1024 --documents 4 --batch-size 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from mmbert.bench import FIRST_REGULAR_ID, UNPADDED, batches, prepared, xlmr_base
from mmbert.modeling import architecture, build_config, random_model


def lengths_for(kind: str, args: argparse.Namespace) -> np.ndarray:
    if kind == "fixed":
        return np.full(args.documents, args.fixed)
    rng = np.random.default_rng(args.seed)
    return np.clip(np.rint(rng.normal(args.mean, args.sd, args.documents)), 1, args.fixed).astype(int)


def timed(runs: dict[str, tuple], args: argparse.Namespace) -> dict[str, float]:
    """Median seconds of one pass over each model's data. The models take turns pass by pass,
    so a machine that slows down or speeds up during the run shifts them all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    cuda = args.device.startswith("cuda")
    with torch.inference_mode(), torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16,
                                                enabled=args.precision == "bf16"):
        for run in range(args.warmup + args.repeats):
            for name, (step, data) in runs.items():
                if cuda:
                    torch.cuda.synchronize()
                started = time.perf_counter()
                for item in data:
                    step(item)
                if cuda:
                    torch.cuda.synchronize()
                if run >= args.warmup:
                    times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--architecture", default="paper-small")
    parser.add_argument("--fixed", type=int, default=512)
    parser.add_argument("--mean", type=float, default=256)
    parser.add_argument("--sd", type=float, default=64)
    parser.add_argument("--documents", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast, as the paper")
    parser.add_argument("--backend", default="auto", help="the unpadded path's attention: auto, sdpa, varlen, flash_attn")
    parser.add_argument("--padded-attention", default="sdpa", help="transformers' attn_implementation, e.g. flash_attention_2")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import ModernBertModel

    arch, vocab = architecture(args.architecture)
    device = torch.device(args.device)
    config = build_config(arch, vocab, attn_implementation=args.padded_attention)
    modernbert = random_model(ModernBertModel, config, args.seed).eval().to(device)
    xlmr = xlmr_base(args.seed).eval().to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {where}, {args.precision}, unpadded backend {args.backend}, padded "
          f"{args.padded_attention}, {args.architecture} "
          f"({sum(p.numel() for p in modernbert.parameters()) / 1e6:.0f} M parameters), batch {args.batch_size}, "
          f"{args.documents} documents, {args.repeats} timed passes after {args.warmup}")
    print("| lengths | unpadded (ours) tok/s | transformers padded tok/s | XLM-R base tok/s "
          "| ours / XLM-R | ours / padded | padded / XLM-R |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("fixed", "variable"):
        lengths = lengths_for(kind, args)
        padded = [(ids.to(device), mask.to(device)) for ids, mask in
                  batches(lengths, args.batch_size, vocab, modernbert.config.pad_token_id, args.seed)]
        tokens = int(lengths.sum())
        label = f"fixed {args.fixed}" if kind == "fixed" else f"Normal({args.mean:g}, {args.sd:g}) ≤ {args.fixed}"
        # each run: how it takes one batch, and the batches as it takes them
        runs = {"ours": prepared(args.architecture + UNPADDED, modernbert, padded, args.backend),
                "padded": prepared(args.architecture, modernbert, padded)}
        with_xlmr = args.fixed <= xlmr.config.max_position_embeddings - 2  # XLM-R stops at 512 tokens, as in the paper
        if with_xlmr:
            in_xlmr_vocab = [(torch.where(mask.bool(), ids % (xlmr.config.vocab_size - FIRST_REGULAR_ID)
                                          + FIRST_REGULAR_ID, xlmr.config.pad_token_id), mask) for ids, mask in padded]
            runs["xlmr"] = (lambda item: xlmr(input_ids=item[0], attention_mask=item[1]), in_xlmr_vocab)
        rate = {name: tokens / seconds for name, seconds in timed(runs, args).items()}
        ours, stock = rate["ours"], rate["padded"]
        if not with_xlmr:
            print(f"| {label} | {ours:.0f} | {stock:.0f} | n/a | n/a | {ours / stock:.2f}x | n/a |", flush=True)
            continue
        reference = rate["xlmr"]
        print(f"| {label} | {ours:.0f} | {stock:.0f} | {reference:.0f} | {ours / reference:.2f}x "
              f"| {ours / stock:.2f}x | {stock / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
