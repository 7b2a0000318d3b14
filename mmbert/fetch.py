"""Stage `fetch@<name>`: an external checkpoint (params `checkpoints.<name>`) as a
transformers ModernBertForMaskedLM folder with its tokenizer, in
`<output_dir>/checkpoints/<name>/model`, so that a phase can start from it and the merge can
take it.

From the hub it downloads exactly the pinned revision through huggingface_hub (into its
cache: an interrupted download resumes, and a second run reads the cache); a gated repository
reads HF_TOKEN from the environment (huggingface_hub's own variable; never logged). A
Composer checkpoint is converted key by key (mmbert.external.composer) and takes the run's
tokenizer (the file holds none we need); a transformers folder keeps its own. `source.json`
records where it came from and the weights' SHA-256. DVC caches the output: a re-run never
downloads again, and a new revision re-runs exactly the stages that start from it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
from pathlib import Path

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import ExternalCheckpoint, PipelineConfig
from mmbert.external.compat import check_tokenizer
from mmbert.external.errors import CheckpointError
from mmbert.io import atomic_dir, write_json
from mmbert.stages import write_record

log = logging.getLogger("mmbert.fetch")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")


def describe(spec: ExternalCheckpoint) -> str:
    where = f"{spec.hub}@{spec.revision[:12]}" if spec.hub else spec.path
    return f"{where}{'/' + spec.file if spec.file else ''} ({spec.format})"


def hub_file(spec: ExternalCheckpoint) -> Path:
    """The pinned revision's file, from huggingface_hub's cache or downloaded into it."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(spec.hub, spec.file, revision=spec.revision))


def hub_folder(spec: ExternalCheckpoint) -> Path:
    """The pinned revision's transformers folder: config, tokenizer and safetensors weights, or
    pytorch_model.bin where the repository has no safetensors (jhu-clsp/mmBERT-base)."""
    from huggingface_hub import snapshot_download

    prefix = f"{spec.file.strip('/')}/" if spec.file else ""
    common = [f"{prefix}{glob}" for glob in ("*.json", "*.model", "*.txt")]
    root = Path(snapshot_download(spec.hub, revision=spec.revision, allow_patterns=[*common, f"{prefix}*.safetensors"]))
    folder = root / prefix if prefix else root
    if not list(folder.glob("*.safetensors")):
        root = Path(snapshot_download(spec.hub, revision=spec.revision, allow_patterns=[*common, f"{prefix}*.bin"]))
        folder = root / prefix if prefix else root
    return folder


def source_path(spec: ExternalCheckpoint) -> Path:
    """Where the checkpoint is on this machine, downloaded first if it is on the hub."""
    if spec.path is not None:
        path = Path(spec.path).expanduser()
        if not path.exists():
            raise CheckpointError(f"path {spec.path}: no such file or folder")
        return path
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return hub_file(spec) if spec.format == "composer" else hub_folder(spec)
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        gated = " (gated: set HF_TOKEN in the environment)" if "401" in str(exc) or "403" in str(exc) else ""
        raise CheckpointError(f"{describe(spec)} could not be read from the hub{gated}: {exc}") from None


def write_transformers(source: Path, target: Path) -> None:
    """A transformers ModernBERT folder, loaded (transformers reads .bin weights with
    weights_only=True) and written back as safetensors with its tokenizer."""
    import json

    from transformers import ModernBertForMaskedLM

    config_file = source / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{source}: no config.json (not a transformers checkpoint folder)")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "modernbert":
        raise CheckpointError(f"{source}: model_type is {model_type!r}, expected 'modernbert'")
    model, info = ModernBertForMaskedLM.from_pretrained(source, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if k != "decoder.weight"]
    if missing or info["unexpected_keys"] or info["mismatched_keys"]:
        raise CheckpointError(f"{source}: weights do not fit ModernBertForMaskedLM: {info}")
    model.save_pretrained(target)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    if not (target / "tokenizer.json").is_file() and not (target / "tokenizer.model").is_file():
        raise CheckpointError(f"{source}: no tokenizer (tokenizer.json or tokenizer.model) beside the weights")


def write_composer(source: Path, target: Path, tokenizer_dir: Path, cfg: PipelineConfig) -> None:
    from mmbert.external.composer import convert_composer
    from mmbert.tokenizer import load_tokenizer, special_ids

    ids = special_ids(load_tokenizer(tokenizer_dir))
    special = {"pad_token_id": ids.pad, "eos_token_id": ids.sep, "sep_token_id": ids.sep, "bos_token_id": ids.cls,
               "cls_token_id": ids.cls}
    model = convert_composer(source, special, cfg.model.max_position_embeddings)
    model.save_pretrained(target)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, target / name)


def weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    if args.name not in cfg.checkpoints:
        raise SystemExit(f"error: --name {args.name!r} is not in checkpoints {sorted(cfg.checkpoints)}")
    spec = cfg.checkpoints[args.name]
    log.info("fetch@%s: %s", args.name, describe(spec))
    try:
        source = source_path(spec)
        with atomic_dir(output_dir(cfg, "checkpoints", args.name)) as tmp:
            if spec.format == "composer":
                write_composer(source, tmp / "model", output_dir(cfg, "tokenizer"), cfg)
            else:
                write_transformers(source, tmp / "model")
            check_tokenizer(args.name, tmp / "model", output_dir(cfg, "tokenizer"))
            write_json(tmp / "source.json", {"name": args.name, **spec.model_dump(), "from": str(source),
                                             "weights_sha256": weights_digest(tmp / "model")})
            write_record(tmp, cfg, f"fetch@{args.name}")
    except CheckpointError as exc:
        raise SystemExit(f"error: checkpoints.{args.name}: {exc}") from None
    log.info("fetch@%s: -> %s", args.name, output_dir(cfg, "checkpoints", args.name, "model"))


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--name", required=True, help="a name from params.yaml's checkpoints")
    run_stage(main, parser)
