"""Every GPU path of the project checked and measured by one command, sized for a short lease.

    python3 benchmarks/gpu_check.py --out DIR          # on one GPU (about 5 minutes)
    python3 benchmarks/gpu_check.py --tiny --out DIR   # the same code on a CPU, tiny sizes

Sections, in this order, each recorded in DIR/gpu_check.json and DIR/gpu_check.md:
1. environment: device, driver, CUDA, torch / transformers / Python versions, the attention
   backends present (torch's `varlen_attn`, the flash-attn package, SDPA);
2. parity: the unpadded path (mmbert.unpadded) against transformers' ModernBertForMaskedLM on
   the same weights, per backend present, fp32 (SDPA; FlashAttention takes no float32) and
   bf16 autocast: logits and the gradient of a Wqkv against transformers run in float64 on the
   CPU, beside transformers' own error at the same precision; documents packed in one row
   against each alone, and the same row read as one document (which must differ);
3. inference: the paper's scheme (ModernBERT's efficiency benchmark: synthetic ids, fixed 512
   and 8192, lengths ~ Normal(256, 64) and Normal(4096, 1024) clamped, the largest batch that
   fits, found on the fixed set and reused for the variable one) for mmBERT-small and -base
   through the unpadded path and transformers' padded model, and XLM-R base up to 512, in bf16;
   ratios from one run;
4. training: paper-small and paper-base on packed, document-bounded rows of 1024 tokens, bf16
   autocast, StableAdamW step included, the unpadded path against transformers' padded model
   on the same rows and weights, without and with torch.compile (train.compile): tokens/s, MFU
   (benchmarks/training_throughput.py's formula: 6 x matmul parameters per token, the decoder on
   masked tokens only, 12 x hidden per attention pair within each document's window; against
   the GPU's dense bf16 peak) and peak GPU memory.

It needs only torch, transformers, numpy, pyyaml, pydantic and torch-optimi (no Ray, Prefect,
DVC or the data stack): on a machine that lacks pydantic or torch-optimi, `make gpu-wheels`
puts their wheels in benchmarks/wheels/, which this script unpacks and uses. It refuses to
start, naming what is missing, when a check cannot run. A time budget (--budget-s) keeps it
within a lease: a section that would start after it is recorded as skipped.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / "benchmarks" / "wheels"
# module -> what provides it; the last two come as carried wheels where a machine lacks them
NEEDED = {"torch": "torch", "transformers": "transformers", "numpy": "numpy", "yaml": "pyyaml",
          "pydantic": "pydantic (make gpu-wheels)", "optimi": "torch-optimi (make gpu-wheels)"}


def use_carried_wheels(folder: Path) -> list[str]:
    """Unpack the wheels in `folder` into a temporary site folder placed after the machine's
    own (a package it has wins); the wheels' names."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if wheels:
        site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
        sys.path.append(str(site))
    return [w.name for w in wheels]


def missing_modules() -> list[str]:
    missing = []
    for module, source in NEEDED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"{module} (from {source})")
    return missing


@dataclass(frozen=True)
class Profile:
    """What is measured, and how big. `gpu` is the lease-sized one; `tiny` runs the same code on
    a CPU in well under a minute."""

    name: str
    parity_model: dict[str, Any]
    parity_vocab: int
    parity_lengths: list[int]
    architectures: dict[str, tuple[dict[str, Any], int]]  # name -> (model settings, vocabulary)
    train_seq_len: int
    train_rows: dict[str, int]
    train_steps: int
    train_warmup: int
    doc_mean: float
    doc_sd: float
    mask_rate: float
    compiled: tuple[str, ...]  # architectures also measured under torch.compile
    scenarios: list[dict[str, Any]]  # fixed length, variable mean/sd, documents
    batch_start: int
    infer_repeats: int
    infer_warmup: int
    xlmr: dict[str, Any] = field(default_factory=dict)  # XLMRobertaConfig overrides


def _arch(hidden: int, layers: int, heads: int, intermediate: int, window: int, positions: int) -> dict[str, Any]:
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                intermediate_size=intermediate, local_attention=window, global_attn_every_n_layers=3,
                max_position_embeddings=positions, attention_output_dropout=0.0, attention_probs_dropout=0.0,
                norm_eps=1e-5, initializer_range=0.02)


def paper_architectures() -> dict[str, tuple[dict[str, Any], int]]:
    import yaml

    table = yaml.safe_load((REPO / "mmbert" / "presets" / "architectures.yaml").read_text())
    return {name: (table[name]["model"], int(table[name]["vocab_size"])) for name in ("paper-small", "paper-base")}


def gpu_profile() -> Profile:
    return Profile(
        name="gpu", parity_model=_arch(128, 4, 2, 192, 32, 1024), parity_vocab=512,
        parity_lengths=[300, 77, 150, 1], architectures=paper_architectures(), train_seq_len=1024,
        train_rows={"paper-small": 64, "paper-base": 32}, train_steps=8, train_warmup=3, doc_mean=400,
        doc_sd=300, mask_rate=0.3, compiled=("paper-small", "paper-base"),
        scenarios=[dict(fixed=512, mean=256, sd=64, documents=1024), dict(fixed=8192, mean=4096, sd=1024, documents=32)],
        batch_start=1024, infer_repeats=2, infer_warmup=1)


def tiny_profile() -> Profile:
    return Profile(
        name="tiny", parity_model=_arch(32, 4, 2, 48, 8, 128), parity_vocab=100, parity_lengths=[37, 12, 25, 1],
        architectures={"tiny-small": (_arch(32, 3, 2, 48, 8, 256), 300), "tiny-base": (_arch(48, 3, 3, 64, 8, 256), 300)},
        train_seq_len=64, train_rows={"tiny-small": 4, "tiny-base": 4}, train_steps=2, train_warmup=1, doc_mean=20,
        doc_sd=10, mask_rate=0.3, compiled=("tiny-small",),  # compiling costs a CPU ~30 s a path
        scenarios=[dict(fixed=64, mean=32, sd=8, documents=8), dict(fixed=128, mean=64, sd=16, documents=4)],
        batch_start=4, infer_repeats=1, infer_warmup=1,
        xlmr=dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=66))


@dataclass
class Budget:
    """Seconds a run may take: work that would start after them is skipped, and named."""

    seconds: float
    started: float = field(default_factory=time.monotonic)
    skipped: list[str] = field(default_factory=list)

    def spent(self, what: str) -> bool:
        if time.monotonic() - self.started <= self.seconds:
            return False
        self.skipped.append(what)
        return True


# ----------------------------------------------------------------------------- environment


def environment(device: Any, wheels: list[str]) -> dict[str, Any]:
    import torch
    import transformers

    from mmbert.unpadded import pick_backend

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "cuda": torch.version.cuda,
                            "device_type": device.type, "carried_wheels": wheels, "backends": backends(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, driver=_driver(),
                    auto_backend_bf16=pick_backend("auto", device, torch.bfloat16))
    else:
        info.update(device=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def backends(device: Any) -> list[str]:
    """The unpadded path's attention backends that can run here."""
    if device.type != "cuda":
        return ["sdpa"]
    found = ["sdpa"]
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
        found.append("varlen")
    except ImportError:
        pass
    if importlib.util.find_spec("flash_attn") is not None:
        found.append("flash_attn")
    return found


# ----------------------------------------------------------------------------- parity


def parity(profile: Profile, device: Any) -> list[dict[str, Any]]:
    """One row per (backend, precision)."""
    import torch

    from mmbert.config import ModelConfig
    from mmbert.modeling import build_config, new_model

    arch = ModelConfig(**profile.parity_model)
    model = new_model(build_config(arch, profile.parity_vocab, rope_theta_global=160_000, rope_theta_local=10_000,
                                   attn_implementation="sdpa"), seed=0)
    with torch.no_grad():  # a wide init: attention far from uniform, so a wrong mask or position shows
        for index, (_, p) in enumerate(model.named_parameters()):
            if p.dim() > 1:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(index))
    model.eval()
    case = _parity_case(profile)
    exact = _reference(model.double(), case, "cpu")  # float64 on the CPU: the yardstick
    model.float().to(device)
    rows = []
    for backend in backends(device):
        for precision in ("fp32", "bf16"):
            if backend != "sdpa" and precision == "fp32":
                continue  # FlashAttention kernels take fp16/bf16 only (refused by pick_backend)
            rows.append(_parity_row(model, case, exact, backend, precision, device))
    return rows


def _parity_case(profile: Profile) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(8)
    lengths = profile.parity_lengths
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, profile.parity_vocab, (n,), generator=g)
        mask[row, :n] = 1
    real = torch.nonzero(mask.flatten()).flatten()
    weights = torch.randn(len(real), profile.parity_vocab, generator=torch.Generator().manual_seed(9))
    return {"ids": ids, "mask": mask, "real": real, "weights": weights, "first": lengths[0]}


def _reference(model: Any, case: dict[str, Any], device: str) -> tuple[Any, Any]:
    """transformers' logits at the real tokens and the gradient of layer 1's Wqkv."""
    import torch

    ids, mask = case["ids"].to(device), case["mask"].to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits.flatten(0, 1)[case["real"].to(device)]
    wqkv = model.model.layers[1].attn.Wqkv.weight
    grad = torch.autograd.grad((logits * case["weights"].to(device, logits.dtype)).sum(), wqkv)[0]
    return logits.detach().double().cpu(), grad.double().cpu()


def _parity_row(model: Any, case: dict[str, Any], exact: tuple[Any, Any], backend: str, precision: str,
                device: Any) -> dict[str, Any]:
    import torch

    from mmbert.unpadded import Documents, encode, masked_lm_logits

    docs, real = Documents.from_attention_mask(case["mask"].to(device))
    flat = case["ids"].to(device).flatten()[real]
    wqkv = model.model.layers[1].attn.Wqkv.weight
    weights = case["weights"].to(device)

    def run(forward) -> tuple[Any, Any]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = forward().float()
        grad = torch.autograd.grad((logits * weights).sum(), wqkv)[0]
        return logits.detach().double().cpu(), grad.double().cpu()

    theirs = run(lambda: model(input_ids=case["ids"].to(device), attention_mask=case["mask"].to(device))
                 .logits.flatten(0, 1)[real])
    ours = run(lambda: masked_lm_logits(model, flat, docs, backend=backend))
    n = case["first"]
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        together = encode(model, flat, docs, backend=backend)[:n].float()
        alone = encode(model, flat[:n], Documents.from_cu_seqlens(torch.tensor([0, n], device=device)), backend).float()
        crossed = encode(model, flat, Documents.from_cu_seqlens(torch.tensor([0, len(flat)], device=device)),
                         backend)[:n].float()
    err = {name: float((got - want).abs().max()) for name, got, want in
           (("logits_ours", ours[0], exact[0]), ("logits_transformers", theirs[0], exact[0]),
            ("grad_ours", ours[1], exact[1]), ("grad_transformers", theirs[1], exact[1]))}
    row = {"backend": backend, "precision": precision, **err,
           "packed_vs_alone": float((together - alone).abs().max()),
           "one_document_vs_alone": float((crossed - alone).abs().max())}
    row["passed"] = parity_passed(row)
    return row


def parity_passed(row: dict[str, Any]) -> bool:
    """Within twice transformers' own error at the same precision (bf16 rounding differs from
    kernel to kernel; a wrong mask, window or position errs by orders of magnitude more), packed
    documents as each alone, and the check able to see a crossing."""
    floor = 1e-5 if row["precision"] == "fp32" else 1e-3
    packed_limit = 1e-4 if row["precision"] == "fp32" else 5e-2
    return (row["logits_ours"] <= 2 * row["logits_transformers"] + floor
            and row["grad_ours"] <= 2 * row["grad_transformers"] + floor
            and row["packed_vs_alone"] <= packed_limit
            and row["one_document_vs_alone"] > 10 * packed_limit)


# ----------------------------------------------------------------------------- inference


def inference(profile: Profile, device: Any, precision: str, budget: Budget) -> list[dict[str, Any]]:
    """One row per (model, scenario): tokens/s of ours, transformers' padded model and XLM-R."""
    rows = []
    for name, (settings, vocab) in profile.architectures.items():
        if budget.spent(f"inference {name}"):
            continue
        model = _modernbert(settings, vocab, device, precision)
        xlmr = _xlmr(profile, device, precision)
        for scenario in profile.scenarios:
            rows.extend(_scenario_rows(name, model, xlmr, scenario, profile, device))
        del model, xlmr
        _free(device)
    return rows


def _modernbert(settings: dict[str, Any], vocab: int, device: Any, precision: str) -> Any:
    import torch
    from transformers import ModernBertModel

    from mmbert.config import ModelConfig
    from mmbert.modeling import build_config, random_model

    model = random_model(ModernBertModel, build_config(ModelConfig(**settings), vocab, attn_implementation="sdpa"), 0)
    return model.to(device, torch.bfloat16 if precision == "bf16" else torch.float32).eval()


def _xlmr(profile: Profile, device: Any, precision: str) -> Any:
    import torch

    from mmbert.bench import xlmr_base

    model = xlmr_base(0, **profile.xlmr)
    return model.to(device, torch.bfloat16 if precision == "bf16" else torch.float32).eval()


def _scenario_rows(name: str, model: Any, xlmr: Any, scenario: dict[str, Any], profile: Profile,
                   device: Any) -> list[dict[str, Any]]:
    import numpy as np

    from mmbert.bench import UNPADDED, batches, prepared

    fixed, documents = scenario["fixed"], scenario["documents"]
    rng = np.random.default_rng(0)
    sets = {"fixed": np.full(documents, fixed),
            "variable": np.clip(np.rint(rng.normal(scenario["mean"], scenario["sd"], documents)), 16, fixed).astype(int)}
    with_xlmr = fixed <= xlmr.config.max_position_embeddings - 2  # XLM-R stops at 512 tokens, as in the paper
    found: dict[str, int] = {}
    rows = []
    for kind, lengths in sets.items():
        runs = {"ours": (name + UNPADDED, model), "padded": (name, model)} | ({"xlmr": ("xlmr", xlmr)} if with_xlmr else {})
        row = {"model": name, "scenario": f"{kind} {fixed}" if kind == "fixed" else
               f"Normal({scenario['mean']}, {scenario['sd']}) <= {fixed}", "documents": documents,
               "tokens": int(lengths.sum())}
        for label, (run_name, net) in runs.items():
            vocab = net.config.vocab_size
            if kind == "fixed":  # the variable set reuses the fixed set's batch size, as the paper
                found[label] = largest_batch(run_name, net, fixed, min(profile.batch_start, documents), vocab, device)
            data = [(ids.to(device), mask.to(device)) for ids, mask in
                    batches(lengths, found[label], vocab, net.config.pad_token_id, seed=0)]
            step, items = prepared(run_name, net, data)
            seconds = _timed_passes(step, items, profile, device)
            row[f"{label}_tokens_per_s"] = row["tokens"] / seconds
            row[f"{label}_batch"] = found[label]
            del data, items
        row["ours_vs_padded"] = row["ours_tokens_per_s"] / row["padded_tokens_per_s"]
        if with_xlmr:
            row["ours_vs_xlmr"] = row["ours_tokens_per_s"] / row["xlmr_tokens_per_s"]
        rows.append(row)
        print(f"  inference {name} {row['scenario']}: ours {row['ours_tokens_per_s']:.0f} tok/s, "
              f"x{row['ours_vs_padded']:.2f} padded" + (f", x{row['ours_vs_xlmr']:.2f} XLM-R" if with_xlmr else ""),
              flush=True)
    return rows


def largest_batch(run_name: str, net: Any, length: int, start: int, vocab: int, device: Any) -> int:
    """The largest batch of `length`-token documents, halving from `start`, that runs (the
    paper's search); one forward pass per try."""
    import numpy as np
    import torch

    from mmbert.bench import batches, prepared

    size = start
    while size > 1:
        try:
            data = [(ids.to(device), mask.to(device)) for ids, mask in
                    batches(np.full(size, length), size, vocab, net.config.pad_token_id, seed=1)]
            step, items = prepared(run_name, net, data)
            with torch.inference_mode():
                step(items[0])
            return size
        except torch.OutOfMemoryError:
            size //= 2
        finally:
            _free(device)
    return 1


def _timed_passes(step: Any, items: list[Any], profile: Profile, device: Any) -> float:
    import torch

    times = []
    with torch.inference_mode():
        for run in range(profile.infer_warmup + profile.infer_repeats):
            _sync(device)
            started = time.perf_counter()
            for item in items:
                step(item)
            _sync(device)
            if run >= profile.infer_warmup:
                times.append(time.perf_counter() - started)
    return statistics.median(times)


# ----------------------------------------------------------------------------- training


def training(profile: Profile, device: Any, precision: str, compiled: bool, budget: Budget) -> list[dict[str, Any]]:
    """One row per architecture: both paths on the same rows, each with its own fresh model."""
    rows = []
    for name, (settings, vocab) in profile.architectures.items():
        if (compiled and name not in profile.compiled) or budget.spent(f"training {name}{' compiled' * compiled}"):
            continue
        rows.append(_training_row(name, settings, vocab, profile, device, precision, compiled))
        _free(device)
    return rows


def _training_row(name: str, settings: dict[str, Any], vocab: int, profile: Profile, device: Any, precision: str,
                  compiled: bool) -> dict[str, Any]:
    from training_throughput import model_flops, peak_flops, step_inputs, synthetic_rows

    from mmbert.losses import DocumentMaskedLMLoss, MaskedLMLoss
    from mmbert.modeling import SpecialIds

    ids = SpecialIds()
    rows = profile.train_rows[name]
    steps = profile.train_warmup + profile.train_steps
    data = synthetic_rows(steps, rows, profile.train_seq_len, profile.doc_mean, profile.doc_sd, vocab, ids, seed=0)
    padded_inputs, unpadded_inputs = step_inputs(data, profile.mask_rate, vocab, ids, device)
    timed = data[profile.train_warmup:]
    tokens = statistics.median([sum(int(cu[-1]) for cu in cus) for _, cus in timed])
    peak, peak_source = peak_flops(device)
    row: dict[str, Any] = {"model": name, "compiled": compiled, "seq_len": profile.train_seq_len, "rows": rows,
                           "tokens_per_step": tokens, "peak_tflops": peak / 1e12, "peak_source": peak_source,
                           "documents_per_row": statistics.mean(len(cu) - 1 for _, cus in timed for cu in cus)}
    for label, loss_cls, inputs in (("padded", MaskedLMLoss, padded_inputs),
                                    ("ours", lambda mlm: DocumentMaskedLMLoss(mlm, "auto"), unpadded_inputs)):
        mlm = _trainable(settings, vocab, device, compiled)
        seconds, memory = _run_path(loss_cls(mlm), inputs, profile, device, precision)
        flops = statistics.median([model_flops(mlm, cus, profile.mask_rate) for _, cus in timed])
        row.update({f"{label}_tokens_per_s": tokens / seconds, f"{label}_mfu": flops / seconds / peak,
                    f"{label}_peak_memory_gib": memory, "model_tflop_per_step": flops / 1e12})
        del mlm
        _free(device)
    row["ours_vs_padded"] = row["ours_tokens_per_s"] / row["padded_tokens_per_s"]
    print(f"  training {name}{' compiled' if compiled else ''}: ours {row['ours_tokens_per_s']:.0f} tok/s "
          f"(MFU {row['ours_mfu']:.1%}), x{row['ours_vs_padded']:.2f} padded", flush=True)
    return row


def _trainable(settings: dict[str, Any], vocab: int, device: Any, compiled: bool) -> Any:
    from mmbert.config import ModelConfig
    from mmbert.modeling import build_config, compile_blocks, new_model

    arch = ModelConfig(**settings | {"attention_output_dropout": 0.1})  # the paper's dropout split
    mlm = new_model(build_config(arch, vocab, attn_implementation="sdpa", sparse_prediction=True), seed=0,
                    dropout=arch).to(device)
    if compiled:
        compile_blocks(mlm)
    return mlm


def stable_adamw(model: Any) -> Any:
    """The paper's optimizer with the paper-base pre-training settings (torch-optimi)."""
    from optimi import StableAdamW

    from mmbert.train.optim import decay_groups

    return StableAdamW(decay_groups(model, 8e-5), lr=8e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=8e-5,
                       decouple_lr=True, max_lr=8e-4)


def _run_path(loss_model: Any, inputs: list[dict[str, Any]], profile: Profile, device: Any,
              precision: str) -> tuple[float, float | None]:
    """Median seconds of the timed steps, and the peak GPU memory (GiB) of the whole run."""
    import torch
    from training_throughput import train_step

    optimizer = stable_adamw(loss_model)
    loss_model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [train_step(loss_model, batch, optimizer, precision, device) for batch in inputs]
    memory = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times[profile.train_warmup:]), memory


# ----------------------------------------------------------------------------- helpers and report


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: Any) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (paper Figure 3 and our goals), where the run measured them."""
    out = []
    small = [r for r in result.get("inference") or [] if r["model"] == "paper-small" and r["scenario"].startswith("Normal")
             and "ours_vs_xlmr" in r]
    if small:
        out.append({"target": "512 variable: mmBERT-small unpadded >= 7x XLM-R base tokens/s",
                    "value": round(small[0]["ours_vs_xlmr"], 2), "met": small[0]["ours_vs_xlmr"] >= 7})
    for row in (result.get("training") or []) + (result.get("training_compiled") or []):
        if row["model"] == "paper-base":
            out.append({"target": f"paper-base training MFU at 1024, bf16{', compiled' if row['compiled'] else ''} >= 40 % "
                        "(aim 50 %)", "value": round(row["ours_mfu"], 3), "met": row["ours_mfu"] >= 0.40})
    return out


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [f"# GPU check ({result['profile']} profile)", "",
             f"`{result['command']}` — {env['device']}, driver {env.get('driver')}, CUDA {env['cuda']}, torch "
             f"{env['torch']}, transformers {env['transformers']}, Python {env['python']}; backends "
             f"{', '.join(env['backends'])}; {result['seconds']:.0f} s in all "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in result['section_seconds'].items())}).", ""]
    if result.get("skipped"):
        lines += [f"Skipped (over the time budget): {', '.join(result['skipped'])}.", ""]
    lines += _table("Parity with transformers (max abs error against float64; packed = documents in one row vs alone)",
                    result.get("parity"), ["backend", "precision", "logits_ours", "logits_transformers", "grad_ours",
                                           "grad_transformers", "packed_vs_alone", "one_document_vs_alone", "passed"])
    lines += _table("Inference (tokens/s, bf16 on a GPU)", result.get("inference"),
                    ["model", "scenario", "ours_tokens_per_s", "padded_tokens_per_s", "xlmr_tokens_per_s",
                     "ours_vs_padded", "ours_vs_xlmr", "ours_batch", "padded_batch", "xlmr_batch"])
    for key in ("training", "training_compiled"):
        lines += _table(f"Training ({'torch.compile' if key.endswith('compiled') else 'eager'}; StableAdamW; MFU "
                        "against the dense bf16 peak)", result.get(key),
                        ["model", "rows", "tokens_per_step", "ours_tokens_per_s", "padded_tokens_per_s", "ours_vs_padded",
                         "ours_mfu", "padded_mfu", "ours_peak_memory_gib", "padded_peak_memory_gib"])
    lines += _table("Targets", result.get("targets"), ["target", "value", "met"])
    return "\n".join(lines) + "\n"


def _table(title: str, rows: list[dict[str, Any]] | None, columns: list[str]) -> list[str]:
    if not rows:
        return []
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)
    return ([f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows] + [""])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "outputs" / "gpu_check"), help="folder for the JSON and markdown")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (what `make test` runs)")
    parser.add_argument("--budget-s", type=float, default=270,
                        help="start no model after this many seconds (the longest, a compiled paper-base, takes ~1 min)")
    parser.add_argument("--wheels", default=str(WHEELS), help="wheels to use where the machine lacks a package")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.monotonic()
    sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
    wheels = use_carried_wheels(Path(args.wheels))
    if missing := missing_modules():
        raise SystemExit(f"gpu_check: cannot start, missing: {', '.join(missing)}")
    import torch

    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("gpu_check: cannot start, no CUDA device is visible (torch.cuda.is_available() is False); "
                         "--tiny runs the same checks on the CPU at tiny sizes")
    if not args.tiny and not torch.cuda.is_bf16_supported():
        raise SystemExit(f"gpu_check: cannot start, {torch.cuda.get_device_name()} has no bf16 support")
    device = torch.device("cpu" if args.tiny else "cuda")
    profile = tiny_profile() if args.tiny else gpu_profile()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity means fp32
    result: dict[str, Any] = {"profile": profile.name, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                              "environment": environment(device, wheels), "section_seconds": {},
                              "sizes": asdict(profile)}
    budget = Budget(args.budget_s, started)
    sections = {"parity": lambda: parity(profile, device),
                "inference": lambda: inference(profile, device, "bf16", budget),
                "training": lambda: training(profile, device, "bf16", False, budget),
                "training_compiled": lambda: training(profile, device, "bf16", True, budget)}
    for name, run in sections.items():
        if budget.spent(name):
            continue
        print(f"gpu_check: {name} ...", flush=True)
        section_start = time.monotonic()
        result[name] = run()
        result["section_seconds"][name] = time.monotonic() - section_start
    result["skipped"] = budget.skipped
    result["targets"] = targets(result) if profile.name == "gpu" else []
    result["seconds"] = time.monotonic() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
