"""Benchmark datasets from the Hugging Face hub, at pinned revisions, or from a local copy.

A local copy is a folder of hub snapshots: `<data_dir>/<hub id>/<config>/<split>-*.parquet`
(or `<split>.parquet`), which is what `hf download --repo-type dataset <id> --local-dir
<data_dir>/<id>` gives for the parquet repos. Either way the rows come through
`datasets.load_dataset`, with the features stored in the parquet files.

Every split a run needs is loaded before any fine-tuning starts, so a missing dataset fails
at once. Gated sets read the hub token from HF_TOKEN (huggingface_hub's own variable); it is
passed to the hub client only, never logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mmbert.suites")
PROBE_TIMEOUT_S = 10.0


class DatasetUnavailable(RuntimeError):
    """A benchmark split can be neither read locally nor downloaded."""


@dataclass(frozen=True)
class DatasetRef:
    hub_id: str
    config: str
    split: str
    revision: str  # a commit, or the hub's parquet conversion branch for script datasets
    gated: bool = False
    # "repo": parquet files in the repository, loaded by config name. "export": a repository
    # that still holds a loading script (datasets >= 4 refuses those), read from the hub's
    # parquet export (refs/convert/parquet), laid out as <config>/<split>/*.parquet.
    layout: str = "repo"

    def label(self) -> str:
        return f"{self.hub_id} (config {self.config!r}, split {self.split!r})"


LOCAL_PATTERNS = ("{split}-*.parquet", "{split}.parquet", "{split}/*.parquet")


def local_files(ref: DatasetRef, data_dir: str | Path) -> list[Path]:
    """The split's files in a local copy: a repository snapshot (<split>-00000-of-00001.parquet)
    or a parquet-export snapshot (<split>/0000.parquet)."""
    folder = Path(data_dir) / ref.hub_id / ref.config
    return [f for pattern in LOCAL_PATTERNS for f in sorted(folder.glob(pattern.format(split=ref.split)))]


def export_files(ref: DatasetRef) -> str:
    revision = ref.revision.replace("/", "%2F")  # a branch name inside an hf:// path
    return f"hf://datasets/{ref.hub_id}@{revision}/{ref.config}/{ref.split}/*.parquet"


def how_to_provide(ref: DatasetRef) -> str:
    token = " (gated: accept its terms on the hub and set HF_TOKEN)" if ref.gated else ""
    return (f"either allow access to the hub{token}, or set suites.data_dir to a folder holding "
            f"{ref.hub_id}/{ref.config}/{ref.split}-*.parquet, e.g. `hf download --repo-type dataset "
            f"{ref.hub_id} --revision {ref.revision} --local-dir <data_dir>/{ref.hub_id}`")


def hub_reachable(hub_id: str) -> str | None:
    """None when the hub answers; else why not (offline mode, no network)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(hub_id, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means the hub cannot serve the data
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the hub did not answer ({type(exc).__name__}: {message[:160]})"
    return None


def check_available(refs: list[DatasetRef], data_dir: str | None) -> None:
    """Fail before any compute when a split has no local copy and the hub cannot be reached,
    naming every such dataset and how to provide it."""
    missing = [ref for ref in dict.fromkeys(refs) if not (data_dir and local_files(ref, data_dir))]
    if not missing:
        return
    reason = hub_reachable(missing[0].hub_id)
    if reason is None:
        return
    lines = "\n".join(f"  - {ref.label()}: {how_to_provide(ref)}" for ref in missing)
    where = f"not under suites.data_dir={data_dir}" if data_dir else "suites.data_dir is not set"
    raise DatasetUnavailable(f"{len(missing)} benchmark dataset split(s) cannot be loaded: {reason}, and "
                             f"{where}:\n{lines}")


def load_split(ref: DatasetRef, data_dir: str | None):
    """The split as a `datasets.Dataset`, from the local copy when there is one."""
    import datasets

    files = local_files(ref, data_dir) if data_dir else []
    if files:
        log.info("loading %s from %s", ref.label(), files[0].parent)
        return datasets.load_dataset("parquet", data_files={ref.split: [str(f) for f in files]}, split=ref.split)
    log.info("loading %s from the hub at revision %s", ref.label(), ref.revision)
    try:
        if ref.layout == "export":
            return datasets.load_dataset("parquet", data_files={ref.split: export_files(ref)}, split=ref.split)
        return datasets.load_dataset(ref.hub_id, ref.config, split=ref.split, revision=ref.revision)
    except Exception as exc:
        raise DatasetUnavailable(f"{ref.label()} could not be loaded ({type(exc).__name__}); "
                                 f"{how_to_provide(ref)}") from exc


def require_columns(dataset, ref: DatasetRef, columns: tuple[str, ...]) -> None:
    absent = [c for c in columns if c not in dataset.column_names]
    if absent:
        raise DatasetUnavailable(f"{ref.label()} lacks column(s) {absent}; it has {dataset.column_names}")
