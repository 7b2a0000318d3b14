"""Data-stage benchmark: the mix stage (Ray Data tokenize + chunk, sample, pack, MDS write)
against the tokenizer's raw batch encoding on the same text, and its peak memory for a
corpus and the same corpus repeated.

Usage (after `make reproduce`, from the repo root):
    .venv/bin/python benchmarks/data_stage.py --outputs outputs --copies 1 4

For each copy count it builds a scratch run whose corpus is `outputs/corpus/train.jsonl`
repeated N times, runs `python -m mmbert.mix --phase pretrain` on it (all languages, a
token budget equal to the corpus, so every token goes through every step) and samples the
resident memory of the stage's whole process tree (driver, Ray and its workers) every 0.1 s.
Prints tokens/s per core for the pipeline and for the raw tokenizer (one thread), the
overhead, and peak RSS per copy count with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent


def raw_tokenizer_rate(texts: list[str], tokenizer_dir: Path) -> tuple[int, float]:
    """Tokens and seconds of one-thread batch encoding (the tokenizer's own speed)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from mmbert.mixing.tokenize import batch_encoder
    from mmbert.tokenizer import load_tokenizer

    encode = batch_encoder(load_tokenizer(tokenizer_dir))  # the Rust tokenizer's own batch call, as the stage's
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(texts), 256):
        tokens += sum(len(ids) for ids in encode(texts[start:start + 256]))
    return tokens, time.perf_counter() - started


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def joined_documents(lines: list[str], doc_chars: int) -> list[str]:
    """Consecutive documents of one language joined (by newlines) to about `doc_chars`
    characters: web-length documents made of the same text (the embedded corpus is mostly
    one-line UI strings, the paper's sources are web pages averaging thousands of characters)."""
    out: list[str] = []
    current: dict | None = None
    for line in lines:
        doc = json.loads(line)
        if current is not None and (current["lang"] != doc["lang"] or len(current["text"]) >= doc_chars):
            out.append(json.dumps(current, ensure_ascii=False))
            current = None
        if current is None:
            current = dict(doc)
        else:
            current["text"] += "\n" + doc["text"]
    if current is not None:
        out.append(json.dumps(current, ensure_ascii=False))
    return out


def scratch_run(outputs: Path, copies: int, workdir: Path, doc_chars: int = 0) -> tuple[Path, list[str]]:
    run = workdir / f"x{copies}-{doc_chars}"
    (run / "outputs" / "corpus").mkdir(parents=True)
    shutil.copytree(outputs / "tokenizer", run / "outputs" / "tokenizer")
    shutil.copy(outputs / "corpus" / "stats.json", run / "outputs" / "corpus" / "stats.json")
    lines = (outputs / "corpus" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    if doc_chars:
        lines = joined_documents(lines, doc_chars)
    with (run / "outputs" / "corpus" / "train.jsonl").open("w", encoding="utf-8") as handle:
        for _ in range(copies):
            handle.write("\n".join(lines) + "\n")
    return run, [json.loads(line)["text"] for line in lines]


CPU_BY_PROCESS: dict[str, float] = {}  # of the last run: CPU seconds by process title


def sample_cpu(root: psutil.Process, seen: dict[int, tuple[str, float]]) -> None:
    """The latest CPU time of every process in the stage's tree (driver, Ray daemons, workers)."""
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
            title = " ".join(p.cmdline())[:60] or p.name()
            seen[p.pid] = (title, times.user + times.system)
        except psutil.Error:
            pass


WORK_SECONDS = re.compile(r"rows written by \d+ task\(s\), ([\d.]+) s in all")


def run_mix(run: Path, tokens: int, seq_len: int | None) -> tuple[float, float, int, dict]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["output_dir"] = "outputs"
    params["phases"]["pretrain"]["data"].update(languages="all", tokens=tokens)
    if seq_len:
        params["phases"]["pretrain"]["data"]["seq_len"] = seq_len
        params["model"]["max_position_embeddings"] = max(seq_len, params["model"]["max_position_embeddings"])
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a private local cluster
    started = time.perf_counter()
    log = (run / "mix.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mmbert.mix", "--phase", "pretrain", "--params", "params.yaml"],
                            cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT)
    watched, peak = psutil.Process(proc.pid), 0
    cpu: dict[int, tuple[str, float]] = {}
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        sample_cpu(watched, cpu)
        time.sleep(0.1)
    CPU_BY_PROCESS.clear()
    for name, seconds in cpu.values():
        CPU_BY_PROCESS[name] = CPU_BY_PROCESS.get(name, 0.0) + seconds
    seconds = time.perf_counter() - started
    log.close()
    if proc.returncode:
        raise SystemExit(f"mix stage failed in {run}: {(run / 'mix.log').read_text()[-2000:]}")
    work = float(WORK_SECONDS.findall((run / "mix.log").read_text())[-1])
    return seconds, work, peak, json.loads((run / "outputs" / "mix" / "pretrain" / "manifest.json").read_text())


def reader_rate(mix_dir: Path, cache: Path, batch: int = 64, world: int = 2) -> float:
    """Tokens/s one rank's reader delivers: its share of global batches, read from the shards."""
    from mmbert.train.data import PackedShards

    data = PackedShards(mix_dir, cache=str(cache))
    data.batch(0, batch, 0, world, seed=0)  # first touch: the shard is copied into the cache
    steps = max(1, 4 * len(data) // batch)
    started = time.perf_counter()
    for step in range(steps):
        data.batch(step * batch, batch, 0, world, seed=0)
    return steps * (batch // world) * data.seq_len / (time.perf_counter() - started)


def paper_small_demand(mfu: float = 0.5, peak_flops: float = 989e12) -> float:
    """Tokens/s one H100 trains the paper-small model at `mfu` (6 x parameters FLOPs a token)."""
    from transformers import ModernBertForMaskedLM

    from mmbert.config import parse_config
    from mmbert.modeling import build_config
    from mmbert.preset import preset_values

    cfg = parse_config(preset_values("paper-small"))
    config = build_config(cfg.model, cfg.tokenizer.vocab_size)
    params = sum(p.numel() for p in ModernBertForMaskedLM(config).parameters())
    return mfu * peak_flops / (6 * params)


PAPER_SMALL_PRETRAIN_TOKENS = 2_300_000_000_000


def sampling_seconds_per_chunk(chunks: int = 500_000, languages: int = 700) -> float:
    """The driver's one serial step per drawn chunk (mmbert.mix.sample_chunks), timed on
    synthetic chunk lengths."""
    import numpy as np

    from mmbert.mix import sample_chunks

    rng = np.random.default_rng(0)
    lengths = {f"l{i}": rng.integers(16, 1022, chunks // languages) for i in range(languages)}
    probs = dict.fromkeys(lengths, 1 / languages)
    started = time.perf_counter()
    _, drawn, _, _ = sample_chunks(lengths, probs, int(sum(n.sum() for n in lengths.values())), seed=0)
    return (time.perf_counter() - started) / len(drawn)


def project(per_core: float, fixed: float, node_cores: int, chunk_tokens: float) -> None:
    """Wall time of the paper-small pre-training mix on N nodes: every core tokenizes at the
    measured marginal rate, then the driver samples every chunk serially (downloads assumed
    to keep up)."""
    sampling = PAPER_SMALL_PRETRAIN_TOKENS / chunk_tokens * sampling_seconds_per_chunk()
    print(f"projection, paper-small pre-training mix ({PAPER_SMALL_PRETRAIN_TOKENS:.2e} tokens), {node_cores} cores "
          f"a node, {per_core:.0f} tokens/s/core, {fixed:.0f} s fixed, serial sampling {sampling / 3600:.1f} h "
          f"({chunk_tokens:.0f} tokens a chunk as measured):")
    for nodes in (1, 8, 32, 128):
        tokenizing = PAPER_SMALL_PRETRAIN_TOKENS / (per_core * node_cores * nodes) + fixed
        print(f"  {nodes:>4} node(s): {(tokenizing + sampling) / 3600:8.1f} h ({tokenizing / 3600:.1f} h tokenizing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, default=Path("outputs"))
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--doc-chars", type=int, default=0,
                        help="join each language's consecutive documents to about this many characters (0: as built)")
    parser.add_argument("--seq-len", type=int, default=None, help="row length (default: params.yaml's pretrain)")
    parser.add_argument("--node-cores", type=int, default=96, help="cores a node, for the N-node projection")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rows, driver_cpu = [], []
    with tempfile.TemporaryDirectory(prefix="mmbert-databench-") as tmp:
        for copies in args.copies:
            run, texts = scratch_run(args.outputs, copies, Path(tmp), args.doc_chars)
            raw_tokens, raw_seconds = raw_tokenizer_rate(texts, args.outputs / "tokenizer")
            seconds, work, peak, manifest = run_mix(run, tokens=raw_tokens * copies, seq_len=args.seq_len)
            pipeline_per_core = manifest["tokens"] / work / cores
            raw_per_core = raw_tokens / raw_seconds
            rows.append((copies, manifest["tokens"], seconds, work, pipeline_per_core, raw_per_core, peak))
            driver_cpu.append(sum(t for name, t in CPU_BY_PROCESS.items() if "-m mmbert.mix" in name))
            if copies == args.copies[0]:
                read_rate = reader_rate(run / "outputs" / "mix" / "pretrain", run / "cache")
                seq_len = manifest["seq_len"]
            shutil.rmtree(run, ignore_errors=True)
    print(f"cores: {cores}; documents: {'as built' if not args.doc_chars else f'joined to ~{args.doc_chars} characters'}"
          f"; rows of {seq_len} tokens")
    print("| corpus | tokens through the stage | process wall s | tokenize+mix+pack+write s | tokens/s/core "
          "| raw tokenizer tokens/s/core | overhead | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for copies, tokens, seconds, work, per_core, raw, peak in rows:
        print(f"| x{copies} | {tokens} | {seconds:.1f} | {work:.1f} | {per_core:.0f} | {raw:.0f} "
              f"| {1 - per_core / raw:.0%} | {peak / 2**20:.0f} |")
    if len(rows) > 1:
        print(f"peak RSS x{rows[-1][0]} / x{rows[0][0]}: {rows[-1][6] / rows[0][6]:.2f}")
        (c0, t0, _, w0, *_), (c1, t1, _, w1, *_) = rows[0], rows[-1]
        marginal = (t1 - t0) / (w1 - w0) / cores
        print(f"marginal rate x{c0} -> x{c1} (fixed costs cancelled): {marginal:.0f} tokens/s/core, overhead "
              f"{1 - marginal / rows[-1][5]:.0%} against the raw tokenizer")
        print("driver CPU s (start-up, Ray Data's executor, sampling; no token passes through it): "
              + ", ".join(f"x{r[0]} {c:.1f}" for r, c in zip(rows, driver_cpu)))
        project(marginal, fixed=w0 - t0 / (marginal * cores), node_cores=args.node_cores,
                chunk_tokens=manifest["tokens"] / manifest["chunks"])
    print(f"CPU seconds by process, x{rows[-1][0]} (Ray workers are titled by their last task):")
    for name, seconds in sorted(CPU_BY_PROCESS.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {seconds:7.1f}  {name}")
    demand = paper_small_demand()
    print(f"reader, one rank of 2, rows of {seq_len}: {read_rate:.0f} tokens/s; paper-small training on one H100 "
          f"at 50% MFU needs {demand:.0f} tokens/s: {read_rate / demand:.1f}x the demand")


if __name__ == "__main__":
    main()
