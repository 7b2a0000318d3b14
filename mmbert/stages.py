"""What each pipeline stage reads, stated once: its params keys, its code and its data files.

dvc.yaml lists the same params keys and code (tests keep the two equal), so DVC re-runs a
stage exactly when something it reads changed. Each stage also writes the values it ran with
(`effective_params.json`) beside its output, and a training stage fingerprints all of it to
decide whether a checkpoint left by a killed run may be resumed.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from mmbert.config import PipelineConfig

PACKAGE_ROOT = Path(__file__).resolve().parent
STAGE_MODULES = {
    "corpus": "mmbert.corpus.__main__",
    "tokenizer": "mmbert.tokenizer",
    "fetch": "mmbert.fetch",
    "mix": "mmbert.mix",
    "train": "mmbert.train.__main__",
    "merge": "mmbert.merge",
    "eval": "mmbert.evaluate.__main__",
    # The paper's evaluation suites, one stage each, so each can be re-run alone.
    "eval-glue": "mmbert.suites.glue",
    "eval-xtreme": "mmbert.suites.xtreme",
    "eval-lowres_qa": "mmbert.suites.lowres_qa",
    "eval-mteb": "mmbert.suites.embeddings",
    "bench": "mmbert.bench",
    "report": "mmbert.report",
    "publish": "mmbert.publish",  # only where publish.enabled
}
SUITES = ("glue", "xtreme", "lowres_qa", "mteb")
SUITE_SHARED_KEYS = ("suites.data_dir", "suites.device", "suites.precision", "suites.compare_with")
# Files the stages read that are not Python modules: by stage, and by the module that reads
# them (any stage importing the module depends on them).
STAGE_DATA = {"bench": ["mmbert/presets/architectures.yaml"]}
MODULE_DATA = {
    "mmbert/corpus/paper_languages.py": ["mmbert/data/fineweb2_subsets.csv", "mmbert/data/mmbert_language_counts.csv"],
    "mmbert/suites/report.py": ["mmbert/suites/paper_results.yaml"],
}
# The corpus stage builds from the embedded sources; the hub settings change what the mix
# stages read (where the copies lie, corpus.hub.local_dir, changes nothing).
CORPUS_KEYS = ("corpus.sources", "corpus.eval_fraction", "corpus.min_train_chars", "corpus.split_seed")
HUB_KEYS = ("corpus.hub.revisions", "corpus.hub.patterns", "corpus.hub.detokenizer", "corpus.hub.plan_margin",
            "corpus.hub.sizes")
TRAIN_PHASE_KEYS = ("init_from", "data.tokens", "data.seq_len", "mask_rate", "rope_theta_global",
                    "rope_theta_local", "lr", "batch", "weight_decay")
RECORD_FILE = "effective_params.json"


def split_stage(stage: str) -> tuple[str, str | None]:
    """'train@midtrain' -> ('train', 'midtrain'); 'merge' -> ('merge', None)."""
    kind, _, phase = stage.partition("@")
    return kind, phase or None


def stage_params(cfg: PipelineConfig, stage: str) -> list[str]:
    """The params keys a stage reads (besides output_dir, which places every stage)."""
    kind, phase = split_stage(stage)
    if kind == "fetch":
        return [f"checkpoints.{phase}"]
    if kind == "mix":
        return ["seed", f"phases.{phase}.data", "mix", *HUB_KEYS]
    if kind == "train":
        return ["seed", "model", "train"] + [f"phases.{phase}.{key}" for key in TRAIN_PHASE_KEYS]
    if kind == "eval":
        return ["eval", "merge.base"] + [f"phases.{name}.init_from" for name in cfg.phases]
    if kind.startswith("eval-"):
        return list(SUITE_SHARED_KEYS) + [f"suites.{kind.removeprefix('eval-')}"]
    if kind == "report":  # what it draws besides the outputs: the chain, the temperatures, the paper row
        return (["merge.base", "suites.compare_with"] + [f"phases.{name}.init_from" for name in cfg.phases]
                + [f"phases.{name}.data.temperature" for name in cfg.phases])
    if kind == "merge":  # its card reports the merged model's held-out loss, measured as the phases' is
        return ["merge", "train.heldout"]
    if kind == "bench":
        return ["seed", "bench"]
    if kind == "corpus":
        return list(CORPUS_KEYS)
    return [kind]  # corpus, tokenizer, merge: their own section


def all_stages(cfg: PipelineConfig) -> list[str]:
    phases = list(cfg.phases)
    return (["corpus", "tokenizer"] + [f"fetch@{name}" for name in cfg.checkpoints] + [f"mix@{p}" for p in phases] + [f"train@{p}" for p in phases]
            + ["merge", "eval"] + [f"eval-{s}" for s in SUITES] + ["bench", "report"]
            + (["publish"] if cfg.publish.enabled else []))


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def effective_params(cfg: PipelineConfig, stage: str) -> dict[str, Any]:
    """The values the stage runs with: its params keys, and the runtime it was executed with
    (recorded for the reader; runtime never changes a result)."""
    values = cfg.model_dump(mode="json")
    record = {"stage": stage, "output_dir": cfg.output_dir,
              "params": {key: lookup(values, key) for key in stage_params(cfg, stage)}}
    if split_stage(stage)[0] == "train":
        record["runtime"] = values["runtime"]
    return record


def write_record(folder: Path, cfg: PipelineConfig, stage: str) -> None:
    (folder / RECORD_FILE).write_text(json.dumps(effective_params(cfg, stage), indent=2) + "\n", encoding="utf-8")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "mmbert" or name.startswith("mmbert.")}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    base = PACKAGE_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=16)
def code_files(module: str) -> tuple[str, ...]:
    """Every file of the package that `module` imports, directly or not (function-level
    imports included), with the packages' __init__ files; paths relative to the repo."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module and every package above it
            path = _module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                pending.extend(_imports(path))
    root = PACKAGE_ROOT.parent
    return tuple(sorted(str(p.relative_to(root)) for p in seen))


def stage_inputs_code(stage: str) -> list[str]:
    kind, _ = split_stage(stage)
    code = list(code_files(STAGE_MODULES[kind]))
    return code + STAGE_DATA.get(kind, []) + [data for module in code for data in MODULE_DATA.get(module, [])]


def fingerprint(cfg: PipelineConfig, stage: str, input_files: list[Path]) -> str:
    """A hash of everything that decides the stage's result: its params values, its code and
    its input files. Equal fingerprints: a checkpoint of the earlier run may be resumed."""
    digest = hashlib.sha256()
    digest.update(json.dumps(effective_params(cfg, stage)["params"], sort_keys=True).encode())
    root = PACKAGE_ROOT.parent
    for path in [root / p for p in stage_inputs_code(stage)] + sorted(input_files):
        digest.update(str(path.name).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
