"""benchmarks/gpu_check.py on a CPU at tiny sizes, as `make test` runs it so that the GPU check
is never broken when a GPU turns up: in a process where the pipeline's own stack (Ray,
Prefect, DVC, the data libraries) cannot be imported, as on a lent GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
# what a lent GPU machine lacks (stack-notes: its Python has torch, transformers, numpy, pyyaml)
ABSENT = ["ray", "prefect", "dvc", "mergekit", "mteb", "streaming", "datasets", "sentence_transformers", "ruamel",
          "polib", "gflanguages"]


def _run(tmp_path: Path, *args: str, absent: list[str] = ABSENT) -> subprocess.CompletedProcess:
    """The script with `absent` modules made unimportable (an import of one fails)."""
    blocker = (
        "import sys, runpy\n"
        "class Absent:\n"
        f"    names = {absent!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ImportError(f'{name} is not on this machine')\n"
        "sys.meta_path.insert(0, Absent())\n"
        f"sys.argv = [{str(SCRIPT)!r}, *sys.argv[1:]]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    empty = tmp_path / "no-wheels"
    empty.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", blocker, "--wheels", str(empty), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    result = _run(out, "--tiny", "--out", str(out / "report"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "report" / "gpu_check.json").read_text()), (out / "report" / "gpu_check.md").read_text()


@pytest.mark.slow  # the script as a whole: about a minute on two cores
def test_parity_rows_per_backend_and_precision(tiny_run):
    result, _ = tiny_run
    rows = {(r["backend"], r["precision"]): r for r in result["parity"]}
    assert set(rows) == {("sdpa", "fp32"), ("sdpa", "bf16")}  # a CPU has SDPA only
    assert all(r["passed"] for r in rows.values()), rows
    fp32 = rows[("sdpa", "fp32")]
    assert fp32["logits_ours"] < 1e-4 and fp32["grad_ours"] < 1e-3 and fp32["packed_vs_alone"] < 1e-5
    assert fp32["one_document_vs_alone"] > 0.1  # the check sees documents that attend to each other


@pytest.mark.slow
def test_inference_and_training_rows(tiny_run):
    result, markdown = tiny_run
    sizes = result["sizes"]
    assert result["profile"] == "tiny" and result["environment"]["backends"] == ["sdpa"]
    inference = {(r["model"], r["scenario"]): r for r in result["inference"]}
    assert set(inference) == {(m, s) for m in ("tiny-small", "tiny-base")
                              for s in ("fixed 64", "Normal(32, 8) <= 64", "fixed 128", "Normal(64, 16) <= 128")}
    for (model, scenario), row in inference.items():
        documents = 8 if scenario.endswith("64") else 4
        assert row["documents"] == documents
        if scenario.startswith("fixed"):
            assert row["tokens"] == documents * int(scenario.split()[1])
        assert row["ours_batch"] == row["padded_batch"] == min(sizes["batch_start"], documents)  # nothing ran out
        assert ("ours_vs_xlmr" in row) == scenario.endswith("64")  # XLM-R only up to its 64 positions here
        assert row["ours_vs_padded"] == pytest.approx(row["ours_tokens_per_s"] / row["padded_tokens_per_s"])
    assert [(r["model"], r["compiled"]) for r in result["training"] + result["training_compiled"]] == [
        ("tiny-small", False), ("tiny-base", False), ("tiny-small", True)]
    for row in result["training"]:
        assert row["seq_len"] == 64 and row["rows"] == 4
        assert row["ours_mfu"] == pytest.approx(row["model_tflop_per_step"] * 1e12 * row["ours_tokens_per_s"]
                                                / row["tokens_per_step"] / (row["peak_tflops"] * 1e12))
    assert result["skipped"] == [] and result["targets"] == []  # the targets are the GPU profile's
    for title in ("## Parity with transformers", "## Inference", "## Training (eager", "## Training (torch.compile"):
        assert title in markdown


def test_refuses_naming_what_is_missing(tmp_path):
    result = _run(tmp_path, "--tiny", absent=ABSENT + ["optimi"])
    assert result.returncode != 0
    assert "cannot start, missing: optimi (from torch-optimi (make gpu-wheels))" in result.stderr
    assert not (tmp_path / "report").exists()


def test_refuses_without_a_gpu_unless_tiny(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _run(tmp_path, "--out", str(tmp_path / "report"))
    assert result.returncode != 0 and "no CUDA device is visible" in result.stderr
    assert not (tmp_path / "report").exists()


def test_carried_wheels_fill_in_what_is_missing(tmp_path, monkeypatch):
    """A wheel in the folder becomes importable; one the machine has already is not shadowed."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "carried_probe-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("carried_probe/__init__.py", "VALUE = 42\n")
        whl.writestr("colorsys/__init__.py", "raise RuntimeError('shadowed the machine own colorsys')\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert gpu_check.use_carried_wheels(wheels) == ["carried_probe-1.0-py3-none-any.whl"]
    import carried_probe
    import colorsys

    assert carried_probe.VALUE == 42 and hasattr(colorsys, "rgb_to_hsv")
    sys.modules.pop("carried_probe")
