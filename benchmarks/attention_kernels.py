"""SDPA's math kernel against its flash kernel on the grids the unpadded path builds (`n`
documents of `width` tokens as the rows of one grid, a padding mask), forward and backward or
forward alone: the time ratio that sets `mmbert.unpadded.MATH_BELOW`. The kernels take turns
call by call, so a machine that slows down shifts them alike.

Usage (repo root):
    .venv/bin/python benchmarks/attention_kernels.py --threads 2
    .venv/bin/python benchmarks/attention_kernels.py --shapes 3x32,6x64 --widths 16,32,64 --tokens 2048
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def grid(n: int, heads: int, width: int, dim: int, grad: bool, seed: int) -> tuple[torch.Tensor, ...]:
    """q, k, v [n, heads, width, dim] and a mask of real keys (a fifth of the slots padding,
    the first always real)."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, heads, width, dim, generator=g).requires_grad_(grad) for _ in range(3))
    real = torch.rand(n, 1, 1, width, generator=g) > 0.2
    real[..., 0] = True
    return q, k, v, real


def seconds(kernel: SDPBackend, tensors: tuple[torch.Tensor, ...], grad: bool) -> float:
    q, k, v, mask = tensors
    started = time.perf_counter()
    with sdpa_kernel(kernel):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if grad:
        out.backward(torch.ones_like(out))
    return time.perf_counter() - started


def ratio(heads: int, dim: int, width: int, args: argparse.Namespace, grad: bool) -> float:
    """Median time of the math kernel over the flash kernel's, `args.tokens` tokens a grid."""
    tensors = grid(max(1, args.tokens // width), heads, width, dim, grad, args.seed)
    times: dict[str, list[float]] = {name: [] for name in KERNELS}
    for call in range(args.warmup + args.repeats):
        for name, kernel in KERNELS.items():
            took = seconds(kernel, tensors, grad)
            if call >= args.warmup:
                times[name].append(took)
    return statistics.median(times["math"]) / statistics.median(times["flash"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", default="3x32,6x64,12x64", help="heads x head dim, comma-separated "
                        "(the embedded model, mmBERT-small, mmBERT-base)")
    parser.add_argument("--widths", default="8,16,24,32,48,64,96,128")
    parser.add_argument("--tokens", type=int, default=1024, help="tokens in each grid (rows = tokens / width)")
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    widths = [int(w) for w in args.widths.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, {args.tokens} tokens a grid; "
          "math kernel's time / flash kernel's time (below 1: math is faster)")
    print("| heads x dim | pass | " + " | ".join(f"width {w}" for w in widths) + " |")
    print("|---|---|" + "---|" * len(widths))
    for shape in args.shapes.split(","):
        heads, dim = (int(x) for x in shape.split("x"))
        for grad in (True, False):
            cells = " | ".join(f"{ratio(heads, dim, w, args, grad):.2f}" for w in widths)
            print(f"| {heads} x {dim} | {'forward + backward' if grad else 'forward'} | {cells} |")


if __name__ == "__main__":
    main()
