"""Hub corpus sources on fixtures in FineWeb2's layout: a budget reads only the files it
needs, a local copy is read through the same path, and without one the error says how."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmbert.corpus.hub_sources import FINEWEB2, SourceUnavailable, fineweb2

COLUMNS = ("text", "id", "dump", "url", "date", "file_path", "language", "language_score", "language_script",
           "minhash_cluster_size", "top_langs")


def write_fineweb2(root: Path, subset: str, files: int, rows: int) -> None:
    folder = root / FINEWEB2 / "data" / subset / "train"
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        n = range(rows)
        table = pa.table({
            "text": [f"{subset} document {f}-{i} " + "word " * 20 for i in n],
            "id": [f"<urn:uuid:{f}-{i}>" for i in n], "dump": ["CC-MAIN-2024-10"] * rows,
            "url": [f"https://example.org/{f}/{i}" for i in n], "date": ["2024-02-20T00:00:00Z"] * rows,
            "file_path": ["s3://commoncrawl/x.warc.gz"] * rows, "language": [subset.split("_")[0]] * rows,
            "language_score": [0.99] * rows, "language_script": [subset.split("_")[1]] * rows,
            "minhash_cluster_size": [1] * rows, "top_langs": ['{"%s_score": 0.99}' % subset] * rows})
        assert tuple(table.column_names) == COLUMNS
        pq.write_table(table, folder / f"000_{f:05d}.parquet")


def test_a_budget_reads_only_the_files_it_needs(tmp_path):
    write_fineweb2(tmp_path, "fao_Latn", files=3, rows=10)
    source = fineweb2(["fao_Latn"], budget_chars=15 * 120, data_dir=str(tmp_path))
    docs = list(source.documents())
    assert [Path(p).name for p in source.files_read["fao_Latn"]] == ["000_00000.parquet", "000_00001.parquet"]
    assert sum(len(d.text) for d in docs) >= 15 * 120 and len(docs) < 20
    assert docs[0].lang == "fao_Latn" and docs[0].source == "fineweb2" and docs[0].key == "<urn:uuid:0-0>"


def test_no_budget_reads_everything_in_order(tmp_path):
    write_fineweb2(tmp_path, "tir_Ethi", files=2, rows=4)
    docs = list(fineweb2(["tir_Ethi"], budget_chars=None, data_dir=str(tmp_path)).documents())
    assert [d.key for d in docs] == [f"<urn:uuid:{f}-{i}>" for f in range(2) for i in range(4)]


def test_without_a_copy_offline_the_error_says_how_to_provide_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = fineweb2(["fao_Latn"], budget_chars=100, data_dir=str(tmp_path))
    with pytest.raises(SourceUnavailable, match=r"HuggingFaceFW/fineweb-2 at af9c1333.*hf download --repo-type dataset"):
        list(source.documents())
