"""A phase's per-step metrics through DVCLive, DVC's own logger, so that `dvc plots show`,
`dvc plots diff`, `dvc exp show` and DVC's live plots read them as DVC users expect.

While a phase trains, its rank-0 worker logs every `runtime.log_every` steps into
`<output_dir>/train/<phase>.live/` (live plots; a restarted or resumed run continues the same
log). The stage's output then gets `dvclive/` written from the complete, exact step history
the checkpoints carry (so a resumed run's output equals a straight run's byte for byte), with
the phase's summary (held-out loss, tokens/s, steps) in `dvclive/metrics.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STEP_METRICS = ("loss", "lr", "batch", "mask_rate", "weight_decay", "tokens")


def _live(folder: Path, resume: bool) -> Any:
    from dvclive import Live

    return Live(dir=str(folder), resume=resume, report=None, save_dvc_exp=False, dvcyaml=None)


def _log(live: Any, record: dict[str, Any]) -> None:
    live.step = int(record["step"])
    for key in STEP_METRICS:
        if key in record:
            live.log_metric(f"train/{key}", record[key], timestamp=False)
    live.next_step()


class LiveLog:
    """The rank-0 worker's live log of a phase."""

    def __init__(self, folder: Path, resume: bool) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        self.live = _live(folder, resume)

    def __call__(self, record: dict[str, Any]) -> None:
        _log(self.live, record)


def write_history(history: list[dict[str, Any]], summary: dict[str, Any], folder: Path) -> None:
    """`folder` (the stage output's dvclive/) from the whole step history and the summary."""
    live = _live(folder, resume=False)
    for record in history:
        _log(live, record)
    live.summary.update({key: value for key, value in summary.items() if value is not None})
    live.make_summary()
    live.end()


def read_history(folder: Path) -> list[dict[str, float]]:
    """The per-step rows back from a dvclive/ folder (what the report draws)."""
    import csv

    rows: dict[int, dict[str, float]] = {}
    for key in STEP_METRICS:
        path = folder / "plots" / "metrics" / "train" / f"{key}.tsv"
        if not path.is_file():
            continue
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                rows.setdefault(int(row["step"]), {"step": int(row["step"])})[key] = float(row[key])
    return [rows[step] for step in sorted(rows)]
