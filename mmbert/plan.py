"""What a run of params.yaml will cost on a described cluster, before anything runs:

    python -m mmbert.plan                                   # params.yaml on 8 x H100 at MFU 0.40
    python -m mmbert.plan --gpus 16 --nodes 2 --price 2.9 --mfu 0.35
    python -m mmbert.plan --mfu-from DIR/gpu_check.json     # the MFU benchmarks/gpu_check.py measured

Per stage: tokens, model FLOPs (mmbert.flops: 6 x matmul parameters per token, the decoder on
masked tokens, attention within each document's window), GPU-hours and wall time at the MFU
(measured or set), download size and time, disk for shards and checkpoints, and the paper
suites' device-hours; totals in hours and money. Its assumptions are printed with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmbert.config import PipelineConfig, load_config
from mmbert.flops import training_flops

GPU_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "B200": 2250.0}
BYTES_PER_TOKEN_STORED = 4  # MDS rows of uint32 ids (256k vocabulary); cu_seqlens are noise
BYTES_PER_PARAMETER_STATE = 16  # fp32 weights (4) + StableAdamW's two moments (8) + gradients (4)
CHECKPOINTS_KEPT = 2  # CheckpointConfig(num_to_keep=2), plus the phase's final model
# Fine-tuning sets of the paper's suites (train examples, epochs): the protocol's English
# training sets; each example runs at the suite's max length (an upper bound).
SUITE_TRAINING = {
    "glue": [("mnli", 392_702, 3), ("qqp", 363_846, 3), ("qnli", 104_743, 3), ("sst2", 67_349, 3),
             ("cola", 8_551, 3), ("stsb", 5_749, 3), ("mrpc", 3_668, 3), ("rte", 2_490, 3)],
    "xtreme": [("mnli", 392_702, 3), ("paws-x", 49_401, 3), ("siqa+copa", 33_810, 3), ("squad", 87_599, 3),
               ("wikiann", 20_000, 3), ("udpos", 12_543, 3)],
    "lowres_qa": [("squad", 87_599, 3)],
}
SUITE_LENGTH = {"glue": 128, "xtreme": 384, "lowres_qa": 384}  # the protocols' max lengths (QA: 384)


@dataclass
class Cluster:
    gpu: str = "H100"
    gpus: int = 8
    nodes: int = 1
    price_per_gpu_hour: float = 2.5
    network_gbit_per_s: float = 10.0
    disk_mb_per_s: float = 1000.0
    mfu: float = 0.40
    mfu_source: str = "set"

    @property
    def peak_flops(self) -> float:
        if self.gpu not in GPU_BF16_TFLOPS:
            raise ValueError(f"--gpu {self.gpu!r}: no known peak; one of {sorted(GPU_BF16_TFLOPS)}")
        return GPU_BF16_TFLOPS[self.gpu] * 1e12


@dataclass
class StagePlan:
    stage: str
    tokens: float = 0.0
    flops: float = 0.0
    gpu_hours: float = 0.0
    wall_hours: float = 0.0
    download_gb: float = 0.0
    download_hours: float = 0.0
    disk_gb: float = 0.0
    notes: list[str] = field(default_factory=list)


def flops_per_token(cfg: PipelineConfig, phase: str, vocab: int) -> float:
    """Training FLOPs per token of a phase, its documents as long as its rows (an upper bound
    on attention: most documents are shorter)."""
    m, p = cfg.model, cfg.phases[phase]
    n = p.data.seq_len
    return training_flops(m.hidden_size, m.intermediate_size, m.num_hidden_layers, m.global_attn_every_n_layers,
                          m.local_attention, vocab, p.mask_rate, [n]) / n


def parameters(cfg: PipelineConfig, vocab: int) -> int:
    m = cfg.model
    per_layer = 4 * m.hidden_size ** 2 + 3 * m.intermediate_size * m.hidden_size + 2 * m.hidden_size
    return vocab * m.hidden_size + m.num_hidden_layers * per_layer + m.hidden_size ** 2 + 3 * m.hidden_size + vocab


def download_bytes(cfg: PipelineConfig, phase: str) -> float:
    """Bytes a hub phase downloads: each source's budget at its tokens per stored byte, with
    the plan margin (released mixes: 4 bytes a token; the embedded corpus: nothing)."""
    from mmbert.corpus.hub_catalog import CATALOG

    data = cfg.phases[phase].data
    if data.released:
        return data.tokens * BYTES_PER_TOKEN_STORED
    return sum(share * data.tokens / CATALOG[name].tokens_per_byte * cfg.corpus.hub.plan_margin
               for name, share in data.sources.items())


def phase_plans(cfg: PipelineConfig, cluster: Cluster, vocab: int) -> list[StagePlan]:
    plans = []
    throughput = cluster.peak_flops * cluster.mfu * cluster.gpus  # model FLOP/s of the whole cluster
    state = parameters(cfg, vocab) * BYTES_PER_PARAMETER_STATE
    for phase, p in cfg.phases.items():
        tokens = float(p.data.tokens)
        download = download_bytes(cfg, phase)
        plans.append(StagePlan(f"mix@{phase}", tokens=tokens, download_gb=download / 1e9,
                               download_hours=download * 8 / (cluster.network_gbit_per_s * 1e9) / 3600,
                               disk_gb=tokens * BYTES_PER_TOKEN_STORED / 1e9))
        flops = tokens * flops_per_token(cfg, phase, vocab)
        seconds = flops / throughput
        plans.append(StagePlan(f"train@{phase}", tokens=tokens, flops=flops, gpu_hours=seconds * cluster.gpus / 3600,
                               wall_hours=seconds / 3600, disk_gb=state * (CHECKPOINTS_KEPT + 1) / 1e9))
    return plans


def suite_plans(cfg: PipelineConfig, cluster: Cluster, vocab: int) -> list[StagePlan]:
    """Fine-tuning cost of the enabled paper suites: 6 x parameters per token (a fine-tuned
    encoder updates everything), every trial (models x tasks x learning rates x seeds)."""
    plans = []
    params = parameters(cfg, vocab)
    for suite in ("glue", "xtreme", "lowres_qa", "mteb"):
        section = getattr(cfg.suites, suite)
        if not section.enabled:
            continue
        trials = len(section.models) * len(getattr(section, "lrs", None) or [None]) * len(section.seeds)
        if suite == "mteb":  # one epoch of triplets: query, positive, hard negative
            tokens = trials * 3 * section.train.rows * section.train.max_length
        else:
            cap = section.max_train_examples or float("inf")
            tokens = trials * sum(min(n, cap) * (section.epochs or epochs) * SUITE_LENGTH[suite]
                                  for _, n, epochs in SUITE_TRAINING[suite])
        flops = 6 * params * tokens
        seconds = flops / (cluster.peak_flops * cluster.mfu)
        plans.append(StagePlan(f"eval-{suite}", tokens=tokens, flops=flops, gpu_hours=seconds / 3600,
                               wall_hours=seconds / 3600 / cluster.gpus, notes=[f"{trials} trials"]))
    return plans


def plan(cfg: PipelineConfig, cluster: Cluster) -> dict[str, object]:
    vocab = cfg.tokenizer.vocab_size
    stages = phase_plans(cfg, cluster, vocab) + suite_plans(cfg, cluster, vocab)
    gpu_hours = sum(s.gpu_hours for s in stages)
    download_hours = sum(s.download_hours for s in stages)
    train_wall = _critical_path_hours(cfg, stages)
    return {"cluster": asdict(cluster), "parameters": parameters(cfg, vocab), "stages": [asdict(s) for s in stages],
            "total": {"gpu_hours": gpu_hours, "cost": gpu_hours * cluster.price_per_gpu_hour,
                      "training_wall_days": train_wall / 24, "download_gb": sum(s.download_gb for s in stages),
                      "download_hours": download_hours, "disk_gb": sum(s.disk_gb for s in stages)},
            "assumptions": assumptions(cluster)}


def _critical_path_hours(cfg: PipelineConfig, stages: list[StagePlan]) -> float:
    """Training wall time along the chain: a phase waits for its base; phases that branch from
    the same base (the decays) share the cluster, so their times add up."""
    by_stage = {s.stage: s.wall_hours for s in stages}
    return sum(by_stage[f"train@{phase}"] for phase in cfg.phases)


def assumptions(cluster: Cluster) -> list[str]:
    return [f"MFU {cluster.mfu:.0%} ({cluster.mfu_source}) of the {cluster.gpu}'s dense bf16 peak "
            f"({GPU_BF16_TFLOPS.get(cluster.gpu, 0):.0f} TFLOP/s) on {cluster.gpus} GPUs",
            "model FLOPs: 6 x matmul parameters per token, the decoder on masked tokens only, attention "
            "within documents as long as the rows (an upper bound), no recomputation",
            f"downloads at {cluster.network_gbit_per_s:g} Gbit/s, each hub source at its tokens per stored byte "
            "(mmbert/corpus/hub_catalog.py) with corpus.hub.plan_margin",
            f"shards at {BYTES_PER_TOKEN_STORED} bytes a token; checkpoints at {BYTES_PER_PARAMETER_STATE} bytes a "
            f"parameter (weights, moments, gradients), {CHECKPOINTS_KEPT} kept per phase plus its final model",
            "the decay variants run one after another on the whole cluster (their wall times add up)",
            "suites: every example at the suite's max length, all parameters trained"]


def mfu_from(path: Path) -> float:
    """paper-base's training MFU (compiled if measured) from a gpu_check.json."""
    result = json.loads(path.read_text())
    rows = [r for key in ("training_compiled", "training") for r in result.get(key) or [] if r["model"] == "paper-base"]
    if not rows:
        raise ValueError(f"{path}: no paper-base training row (run benchmarks/gpu_check.py on a GPU)")
    return float(rows[0]["ours_mfu"])


def render(result: dict) -> str:
    lines = ["| stage | tokens | model PFLOP | GPU-hours | wall hours | download GB | download hours | disk GB |",
             "|---|---|---|---|---|---|---|---|"]
    for s in result["stages"]:
        lines.append(f"| {s['stage']} | {s['tokens']:.3g} | {s['flops'] / 1e15:,.0f} | {s['gpu_hours']:,.1f} | "
                     f"{s['wall_hours']:,.1f} | {s['download_gb']:,.0f} | {s['download_hours']:,.1f} | "
                     f"{s['disk_gb']:,.0f} |")
    t, c = result["total"], result["cluster"]
    lines += ["", f"Total: {t['gpu_hours']:,.0f} GPU-hours, {t['cost']:,.0f} at {c['price_per_gpu_hour']:g} per "
              f"GPU-hour; training {t['training_wall_days']:,.1f} days of wall time on {c['gpus']} x {c['gpu']} "
              f"({c['nodes']} node(s)); {t['download_gb']:,.0f} GB to download ({t['download_hours']:,.1f} h); "
              f"{t['disk_gb']:,.0f} GB of disk.", "", "Assumptions:"] + [f"- {a}" for a in result["assumptions"]]
    return "\n".join(lines) + "\n"


def parse_cluster(args: argparse.Namespace) -> Cluster:
    mfu, source = args.mfu, "set"
    if args.mfu_from:
        mfu, source = mfu_from(Path(args.mfu_from)), f"measured: {args.mfu_from}"
    return Cluster(args.gpu, args.gpus, args.nodes, args.price, args.network_gbit, args.disk_mb_s, mfu, source)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--gpu", default="H100", help=f"one of {sorted(GPU_BF16_TFLOPS)}")
    p.add_argument("--gpus", type=int, default=8, help="GPUs in all")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--price", type=float, default=2.5, help="price per GPU-hour")
    p.add_argument("--network-gbit", type=float, default=10.0, help="download bandwidth, Gbit/s")
    p.add_argument("--disk-mb-s", type=float, default=1000.0)
    p.add_argument("--mfu", type=float, default=0.40, help="model FLOPs utilisation assumed")
    p.add_argument("--mfu-from", help="a gpu_check.json whose paper-base training MFU to use")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        result = plan(load_config(args.params), parse_cluster(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(result, indent=1) if args.json else render(result))


if __name__ == "__main__":
    main()
