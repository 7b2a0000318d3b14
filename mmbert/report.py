"""Stage `report`: the paper's three figures and the training curves, drawn from this run's
own outputs (mix manifests, training logs, evaluation and bench results), never from
constants, into `<output_dir>/report/`: PNG and SVG files, each figure's data as JSON, and
`index.html`, one self-contained page (figures embedded, nothing fetched from the network).

- Figure 1, language shares per phase: the target p ∝ n^τ and the share each mix realised,
  the largest languages named and the rest grouped; the temperature and the languages each
  phase adds.
- Figure 2, the languages seen only in the decay: each decay variant's and the merge's
  held-out loss on them against the base's; TiQuAD and FoQA F1 where that suite ran, the
  paper's bars beside ours.
- Figure 3, inference throughput per scenario and model (the bench stage).
- Training curves of every phase on one token axis: loss, held-out loss, LR, mask rate,
  global batch, tokens/s.
"""

from __future__ import annotations

import argparse
import base64
import html
import logging
from pathlib import Path
from typing import Any

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig
from mmbert.io import atomic_dir, read_json, write_json
from mmbert.stages import write_record
from mmbert.train.live import read_history

log = logging.getLogger("mmbert.report")
NAMED = 8  # languages named per phase in figure 1; the rest are grouped
FIGURES = {"fig1_languages": "Figure 1: language shares per phase",
           "fig2_decay_languages": "Figure 2: languages seen only in the decay phase",
           "fig3_throughput": "Figure 3: inference throughput",
           "training_curves": "Training curves on one token axis"}


# --- figure data: plain functions of the run's outputs ---------------------------------


def language_shares(phases: list[str], manifests: dict[str, dict], temperatures: dict[str, float]) -> list[dict]:
    """Per phase: its temperature, languages (and how many are new), and the named languages'
    target and realised shares with the rest grouped."""
    seen: set[str] = set()
    rows = []
    for phase in phases:
        table = manifests[phase].get("per_language") or {}
        ranked = sorted(table, key=lambda lang: -table[lang]["target_share"])
        named = ranked[:NAMED]
        rest = ranked[NAMED:]
        shares = [{"language": lang, "target": table[lang]["target_share"], "realised": table[lang]["share"]}
                  for lang in named]
        if rest:
            shares.append({"language": f"{len(rest)} others", "target": sum(table[x]["target_share"] for x in rest),
                           "realised": sum(table[x]["share"] for x in rest)})
        new = set(table) - seen
        seen |= set(table)
        rows.append({"phase": phase, "temperature": temperatures[phase], "languages": len(table), "new": len(new),
                     "shares": shares})
    return rows


def decay_languages(eval_metrics: dict, base: str, lowres: dict | None, paper: dict | None) -> dict:
    """Held-out loss on the decay-only languages per model, with the base's; low-resource QA
    F1 per model (ours, and the paper's where the run compares with it)."""
    models = eval_metrics["models"]
    loss = {name: row["heldout_loss"]["decay_only"] for name, row in models.items()}
    out: dict[str, Any] = {"base": base, "decay_only_loss": loss, "languages": eval_metrics["groups"]["decay_only"]}
    if lowres:
        out["f1"] = {model: {task: r["score"] for task, r in tasks.items()} for model, tasks in lowres.items()}
        out["paper_f1"] = paper or {}
    return out


def throughput(bench: dict) -> list[dict]:
    return [{"model": model, "scenario": scenario, "tokens_per_second": result["tokens_per_second"]}
            for model, entry in bench["models"].items() for scenario, result in entry["scenarios"].items()]


def training_curves(phases: list[str], init: dict[str, str | None], logs: dict[str, list[dict]],
                    metrics: dict[str, dict]) -> list[dict]:
    """Each phase's steps on one token axis: a phase starts where its base ended (the decays
    all start at the end of mid-training); its held-out loss is a point at its end."""
    ends: dict[str, float] = {}
    out = []
    for phase in phases:
        start = ends.get(init.get(phase) or "", 0.0)
        rows = logs[phase]
        tokens = [start + float(r["tokens"]) for r in rows]
        ends[phase] = start + float(metrics[phase].get("tokens", rows[-1]["tokens"] if rows else 0))
        out.append({"phase": phase, "start": start, "end": ends[phase], "tokens": tokens,
                    **{key: [float(r[key]) for r in rows] for key in ("loss", "lr", "mask_rate", "batch")},
                    "heldout_loss": metrics[phase].get("heldout_loss"),
                    "tokens_per_second": metrics[phase].get("tokens_per_second")})
    return out


# --- drawing ------------------------------------------------------------------------------


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (9, 4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=size, squeeze=False)


def draw_language_shares(data: list[dict]):
    fig, axes = _figure(1, len(data), (3.2 * len(data), 4.2))
    for ax, phase in zip(axes[0], data):
        names = [s["language"] for s in phase["shares"]][::-1]
        ax.barh(names, [s["realised"] for s in phase["shares"]][::-1], color="#4c78a8", label="realised")
        ax.scatter([s["target"] for s in phase["shares"]][::-1], names, color="#e45756", marker="|", s=200,
                   label="target p ∝ n^τ", zorder=3)
        ax.set_title(f"{phase['phase']}: τ {phase['temperature']}\n{phase['languages']} languages "
                     f"(+{phase['new']} new)", fontsize=9)
        ax.set_xlabel("share of tokens")
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def draw_decay_languages(data: dict):
    panels = 2 if "f1" in data else 1
    fig, axes = _figure(1, panels, (5 * panels, 4))
    loss = data["decay_only_loss"]
    names = list(loss)
    ax = axes[0][0]
    ax.bar(names, [loss[n] for n in names], color=["#9d9d9d" if n == data["base"] else "#4c78a8" for n in names])
    ax.set_title(f"held-out loss on the {data['languages']} languages\nseen only in the decay (lower is better)",
                 fontsize=9)
    ax.set_ylabel("nats")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    if panels == 2:
        ax = axes[0][1]
        tasks = sorted({t for scores in data["f1"].values() for t in scores})
        models = list(data["f1"])
        width = 0.8 / max(1, 2 * len(tasks))
        for i, task in enumerate(tasks):
            ax.bar([m + i * 2 * width for m in range(len(models))], [data["f1"][m].get(task, 0) for m in models],
                   width, label=f"{task} (ours)")
            paper = data["paper_f1"].get(task, {})
            if paper:
                ax.bar([m + (i * 2 + 1) * width for m in range(len(models))], [paper.get(m, 0) for m in models],
                       width, label=f"{task} (paper)", alpha=0.5)
        ax.set_xticks(range(len(models)), models, rotation=30, fontsize=8)
        ax.set_title("low-resource QA F1", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_throughput(data: list[dict]):
    fig, axes = _figure(1, 1, (8, 4))
    ax = axes[0][0]
    scenarios = sorted({r["scenario"] for r in data})
    models = list(dict.fromkeys(r["model"] for r in data))
    width = 0.8 / max(1, len(models))
    values = {(r["model"], r["scenario"]): r["tokens_per_second"] for r in data}
    for i, model in enumerate(models):
        ax.bar([s + i * width for s in range(len(scenarios))], [values.get((model, s), 0) for s in scenarios], width,
               label=model)
    ax.set_xticks([s + 0.4 - width / 2 for s in range(len(scenarios))], scenarios)
    ax.set_ylabel("tokens / s (log scale)")
    ax.set_yscale("log")  # the run's own small model and the paper-size references differ by orders
    ax.set_title("inference throughput (ours unpadded, transformers padded, XLM-R base)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_curves(data: list[dict]):
    fig, axes = _figure(2, 3, (13, 6.5))
    panels = [("loss", "training loss"), ("lr", "learning rate"), ("mask_rate", "mask rate"), ("batch", "global batch")]
    for (key, title), ax in zip(panels, axes.flat):
        for phase in data:
            ax.plot(phase["tokens"], phase[key], label=phase["phase"], linewidth=1)
        ax.set_title(title, fontsize=9)
    ax = axes.flat[4]
    for phase in data:
        if phase["heldout_loss"] is not None:
            ax.scatter([phase["end"]], [phase["heldout_loss"]], label=phase["phase"])
    ax.set_title("held-out loss at the end of each phase", fontsize=9)
    ax = axes.flat[5]
    ax.bar([p["phase"] for p in data], [p["tokens_per_second"] or 0 for p in data], color="#4c78a8")
    ax.set_title("tokens/s", fontsize=9)
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    for ax in list(axes.flat)[:5]:
        ax.set_xlabel("tokens", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --- the stage ----------------------------------------------------------------------------


def collect(cfg: PipelineConfig) -> dict[str, Any]:
    """Every figure's data from the run's outputs."""
    from mmbert.suites.report import paper_results

    phases = cfg.phase_order()
    manifests = {p: read_json(output_dir(cfg, "mix", p, "manifest.json")) for p in phases}
    logs = {p: read_history(output_dir(cfg, "train", p, "dvclive")) for p in phases}
    metrics = {p: read_json(output_dir(cfg, "train", p, "metrics.json")) for p in phases}
    lowres_file = output_dir(cfg, "suites", "lowres_qa", "metrics.json")
    lowres = read_json(lowres_file) if lowres_file.is_file() else {}
    paper = None
    if lowres.get("enabled"):
        table = paper_results()["lowres_qa"]["models"].get(cfg.suites.compare_with, {})
        paper = {task.lower(): row for task, row in table.items()}
    return {
        "fig1_languages": language_shares(phases, manifests, {p: cfg.phases[p].data.temperature for p in phases}),
        "fig2_decay_languages": decay_languages(read_json(output_dir(cfg, "eval", "metrics.json")), cfg.merge.base,
                                                lowres.get("models") if lowres.get("enabled") else None, paper),
        "fig3_throughput": throughput(read_json(output_dir(cfg, "bench", "results.json"))),
        "training_curves": training_curves(phases, {p: cfg.phases[p].init_from for p in phases}, logs, metrics),
    }


DRAW = {"fig1_languages": draw_language_shares, "fig2_decay_languages": draw_decay_languages,
        "fig3_throughput": draw_throughput, "training_curves": draw_curves}


def page(figures: dict[str, Path], tables: str) -> str:
    """index.html: the figures as embedded PNGs (data: URIs) and the result tables."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>mmbert-repro run report</title>",
             "<style>body{font-family:sans-serif;max-width:1300px;margin:auto}img{max-width:100%}"
             "pre{background:#f4f4f4;padding:8px}</style></head><body><h1>mmbert-repro: this run</h1>"]
    for name, png in figures.items():
        encoded = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(FIGURES[name])}</h2><img id='{name}' alt='{html.escape(FIGURES[name])}' "
                     f"src='data:image/png;base64,{encoded}'>")
    parts.append(f"<h2>Results</h2><pre>{html.escape(tables)}</pre></body></html>")
    return "\n".join(parts)


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    import matplotlib.pyplot as plt

    data = collect(cfg)
    report = output_dir(cfg, "eval", "report.md")
    tables = report.read_text(encoding="utf-8") if report.is_file() else ""
    target = output_dir(cfg, "report")
    with atomic_dir(target) as tmp:
        written = {}
        for name, draw in DRAW.items():
            fig = draw(data[name])
            for suffix in ("png", "svg"):
                fig.savefig(tmp / f"{name}.{suffix}", dpi=110)
            plt.close(fig)
            write_json(tmp / f"{name}.json", data[name])
            written[name] = tmp / f"{name}.png"
        (tmp / "index.html").write_text(page(written, tables), encoding="utf-8")
        write_record(tmp, cfg, "report")
    log.info("report: %d figures and index.html -> %s", len(written), target)


if __name__ == "__main__":
    run_stage(main, stage_parser(__doc__))
