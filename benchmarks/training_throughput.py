"""Training throughput of the packed, document-bounded unpadded path (mmbert.unpadded, what
training runs with `train.attn_implementation: unpadded`) against transformers' padded
ModernBERT (what it ran before: packed rows whose documents attend to each other) on the same
weights and the same packed rows: full steps (masking done beforehand, forward, backward,
AdamW step), real tokens per second, the ratio, and MFU.

MFU = model FLOPs per token x tokens/s / the device's peak. Model FLOPs (mmbert.flops, the
cost plan's formula) count what the document-bounded model must compute (6 x every matrix
multiply's parameters, the decoder on masked tokens only, attention over the pairs each
layer sees within its document), the same for both paths, so the MFU ratio is the throughput
ratio. The peak is --peak-tflops, else the
dense bf16 figure of a known GPU, else on a CPU the measured rate of a large fp32 matmul.

Usage (repo root):
    .venv/bin/python benchmarks/training_throughput.py --architecture embedded --seq-len 128
    .venv/bin/python benchmarks/training_throughput.py --mix outputs/mix/pretrain   # a mix's own rows
    # a GPU: --architecture paper-base --seq-len 1024 --rows 64 --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mmbert.config import load_config
from mmbert.flops import training_flops
from mmbert.masking import mask_tokens
from mmbert.modeling import SpecialIds, architecture, build_config, compile_blocks, new_model
from mmbert.losses import DocumentMaskedLMLoss, MaskedLMLoss
from mmbert.unpadded import Documents

GPU_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def synthetic_rows(batches: int, rows: int, seq_len: int, doc_mean: float, doc_sd: float, vocab: int,
                   ids: SpecialIds, seed: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """`batches` batches of rows packed like the mix stage's: [CLS] doc [SEP] chunks, lengths ~
    Normal clamped to [3, seq_len], best fit into rows, padding after the last document."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        packed, cus = np.full((rows, seq_len), ids.pad, dtype=np.int64), []
        for row in packed:
            cu = [0]
            while True:
                n = int(np.clip(rng.normal(doc_mean, doc_sd), 3, seq_len))
                if cu[-1] + n > seq_len:
                    break
                row[cu[-1]:cu[-1] + n] = rng.integers(5, vocab, n)
                row[cu[-1]], row[cu[-1] + n - 1] = ids.cls, ids.sep
                cu.append(cu[-1] + n)
            cus.append(np.asarray(cu))
        out.append((packed, cus))
    return out


def mix_rows(args: argparse.Namespace) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    from mmbert.train.data import PackedShards

    data = PackedShards(args.mix)
    args.seq_len = data.seq_len
    return [data.batch_with_documents(step * args.rows, args.rows, 0, 1, args.seed)
            for step in range(args.warmup + args.steps)]


def model_flops(mlm: torch.nn.Module, cus: list[np.ndarray], mask_rate: float) -> float:
    """Training FLOPs of the document-bounded model for the documents `cus` (per step):
    mmbert.flops, the cost plan's formula."""
    c = mlm.config
    lengths = np.concatenate([np.diff(cu) for cu in cus])
    return training_flops(c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.global_attn_every_n_layers,
                          c.local_attention, c.vocab_size, mask_rate, lengths)


def peak_flops(device: torch.device, given_tflops: float | None = None) -> tuple[float, str]:
    """The device's peak FLOP/s MFU is taken against, and where the figure comes from."""
    if given_tflops:
        return given_tflops * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_BF16_PEAK_TFLOPS.items():
            if key in name:
                return tflops * 1e12, f"{name} dense bf16"
        raise SystemExit(f"no known peak for {name}: pass --peak-tflops")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    return 5 * 2 * 2048**3 / (time.perf_counter() - started), "measured fp32 2048x2048 matmul"


def adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4)


def train_step(loss_model: torch.nn.Module, inputs: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
               precision: str, device: torch.device) -> float:
    """Seconds of one full step: forward (under bf16 autocast if asked), backward, optimizer."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = loss_model(**inputs)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def timed_steps(paths: dict[str, tuple[torch.nn.Module, list[dict[str, torch.Tensor]]]], warmup: int,
                precision: str, device: torch.device, optimizer=adamw) -> dict[str, list[float]]:
    """Seconds of each path's steps after `warmup` untimed ones. The paths take turns step by
    step, so a machine that slows down or speeds up during the run shifts them alike."""
    optimizers = {name: optimizer(loss_model) for name, (loss_model, _) in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for loss_model, _ in paths.values():
        loss_model.train()
    steps = len(next(iter(paths.values()))[1])
    for step in range(steps):
        for name, (loss_model, inputs) in paths.items():
            seconds = train_step(loss_model, inputs[step], optimizers[name], precision, device)
            if step >= warmup:
                times[name].append(seconds)
    return times


def step_inputs(batches, mask_rate: float, vocab: int, ids: SpecialIds, device: torch.device):
    """Each batch masked once, as transformers' padded model and as the unpadded path take it."""
    padded, unpadded = [], []
    for step, (rows, cus) in enumerate(batches):
        x, y = mask_tokens(torch.from_numpy(rows), mask_rate, mask_id=ids.mask, special_ids=ids.all(),
                           vocab_size=vocab, generator=torch.Generator().manual_seed(step))
        padded.append({"input_ids": x.to(device), "attention_mask": (x != ids.pad).long().to(device),
                       "labels": y.to(device)})
        docs, real = Documents.from_packed_rows(rows.shape[1], cus)
        unpadded.append({"input_ids": x.flatten()[real].to(device), "cu_seqlens": docs.cu_seqlens.to(device),
                         "labels": y.flatten()[real].to(device)})
    return padded, unpadded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="embedded", help="embedded (params.yaml), paper-small, paper-base")
    parser.add_argument("--mix", help="read rows from this mix's MDS shards instead of synthetic ones")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rows", type=int, default=8, help="rows per step")
    parser.add_argument("--doc-mean", type=float, default=48)
    parser.add_argument("--doc-sd", type=float, default=32)
    parser.add_argument("--mask-rate", type=float, default=0.3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--backend", default="auto", help="unpadded attention backend")
    parser.add_argument("--padded-attention", default="sdpa", help="transformers' attn_implementation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the MLPs and head (train.compile)")
    parser.add_argument("--peak-tflops", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.architecture == "embedded":
        cfg = load_config(Path(__file__).resolve().parents[1] / "params.yaml")
        arch, vocab = cfg.model, cfg.tokenizer.vocab_size
    else:
        arch, vocab = architecture(args.architecture)
    ids = SpecialIds()
    batches = mix_rows(args) if args.mix else synthetic_rows(args.warmup + args.steps, args.rows, args.seq_len,
                                                             args.doc_mean, args.doc_sd, vocab, ids, args.seed)
    padded_inputs, unpadded_inputs = step_inputs(batches, args.mask_rate, vocab, ids, device)

    def model():
        config = build_config(arch, vocab, attn_implementation=args.padded_attention, sparse_prediction=True)
        mlm = new_model(config, seed=args.seed, dropout=arch).to(device)
        if args.compile:
            compile_blocks(mlm)
        return mlm

    paths = {"padded": (MaskedLMLoss(model()), padded_inputs),
             "unpadded": (DocumentMaskedLMLoss(model(), args.backend), unpadded_inputs)}
    results = {name: (paths[name][0].mlm, statistics.median(times))
               for name, times in timed_steps(paths, args.warmup, args.precision, device).items()}

    mlm = results["unpadded"][0]
    timed = batches[args.warmup:]
    tokens = statistics.median([sum(int(cu[-1]) for cu in cus) for _, cus in timed])
    flops = statistics.median([model_flops(mlm, cus, args.mask_rate) for _, cus in timed])
    peak, peak_source = peak_flops(device, args.peak_tflops)
    fill = tokens / (args.rows * args.seq_len)
    docs = statistics.mean(len(cu) - 1 for _, cus in timed for cu in cus)
    print(f"torch {torch.__version__}{' compiled' if args.compile else ''}, {args.device} ({torch.get_num_threads()} threads), {args.precision}, "
          f"{args.architecture} ({sum(p.numel() for p in mlm.parameters()) / 1e6:.1f} M parameters), rows of "
          f"{args.seq_len} x {args.rows}, {docs:.1f} documents per row, {fill:.1%} real tokens, mask rate "
          f"{args.mask_rate}, {args.steps} timed steps after {args.warmup}; {flops / tokens / 1e6:.1f} MFLOP "
          f"per token; peak {peak / 1e12:.2f} TFLOP/s ({peak_source})")
    print("| path | tokens/s | vs padded | MFU |")
    print("|---|---|---|---|")
    for name, label in (("padded", f"transformers padded ({args.padded_attention}), documents see each other"),
                        ("unpadded", f"unpadded ({args.backend}), document-bounded")):
        seconds = results[name][1]
        ratio = results["padded"][1] / seconds
        print(f"| {label} | {tokens / seconds:.0f} | {ratio:.2f}x | {flops / seconds / peak:.1%} |")


if __name__ == "__main__":
    main()
