"""A suite's results beside the paper's numbers for the same model size, with the gap per
task, as a markdown table (report.md, and the Prefect artifact)."""

from __future__ import annotations

import statistics
from functools import lru_cache
from pathlib import Path

import yaml

PAPER_FILE = Path(__file__).with_name("paper_results.yaml")


@lru_cache(maxsize=1)
def paper_results() -> dict:
    return yaml.safe_load(PAPER_FILE.read_text(encoding="utf-8"))


def paper_value(suite: str, compare_with: str, column: str, model: str) -> float | None:
    row = paper_results()[suite]["models"].get(compare_with, {})
    value = row.get(column)
    if isinstance(value, dict):  # per decay variant
        value = value.get(model, value.get("merged"))
    return value


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def rows_for(suite: str, results: dict[str, dict], compare_with: str, model: str,
             columns: dict[str, str]) -> list[dict]:
    """One row per task: ours, the paper's, the gap; then the plain mean (and the paper's
    reported average where it has one)."""
    rows = []
    for task, column in columns.items():
        ours = results[task]["score"] if task in results else None
        paper = paper_value(suite, compare_with, column, model)
        rows.append({"task": column, "ours": ours, "paper": paper,
                     "gap": None if ours is None or paper is None else ours - paper})
    scored = [r for r in rows if r["ours"] is not None]
    if len(scored) > 1:
        paper_avg = paper_value(suite, compare_with, paper_results()[suite].get("reported_average", "-"), model)
        full = len(scored) == len(rows)
        mean = statistics.fmean(r["ours"] for r in scored)
        paper_mean = statistics.fmean(r["paper"] for r in scored) if all(r["paper"] is not None for r in scored) else None
        rows.append({"task": "mean" if full else f"mean of {len(scored)}", "ours": mean, "paper": paper_mean,
                     "gap": None if paper_mean is None else mean - paper_mean})
        if full and paper_avg is not None:
            rows.append({"task": "Avg (paper's reported)", "ours": None, "paper": paper_avg, "gap": None})
    return rows


def render(suite: str, summary: dict[str, dict], compare_with: str, columns: dict[str, str],
           extra: dict[str, str] | None = None) -> str:
    lines = [f"# {suite}: ours beside the paper's {compare_with}", ""]
    for key, value in (extra or {}).items():
        lines.append(f"- {key}: {value}")
    for model, results in summary.items():
        lines += ["", f"## {model}", "", "| task | ours | paper | gap | LR | seeds |", "|---|---|---|---|---|---|"]
        for row in rows_for(suite, results, compare_with, model, columns):
            detail = results.get(_task_of(columns, row["task"]), {})
            gap = "–" if row["gap"] is None else f"{row['gap']:+.1f}"
            lines.append(f"| {row['task']} | {_cell(row['ours'])} | {_cell(row['paper'])} | {gap} | "
                         f"{detail.get('lr', '–')} | {detail.get('seeds', '–')} |")
        lines += _breakdown(results, columns)
    return "\n".join(lines) + "\n"


def _breakdown(results: dict[str, dict], columns: dict[str, str]) -> list[str]:
    """Per-language (XTREME) or per-task (MTEB) scores under the table."""
    lines = []
    for task, column in columns.items():
        parts = results.get(task, {}).get("per_language") or results.get(task, {}).get("per_task") or {}
        if len(parts) > 1:
            lines.append(f"- {column}: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    return [""] + lines if lines else []


def _task_of(columns: dict[str, str], column: str) -> str:
    return next((task for task, col in columns.items() if col == column), "")
