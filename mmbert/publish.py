"""Stage `publish` (optional; params `publish`, off by default): one checkpoint the run wrote
(a phase's model or the merge, with its model card) to a hub model repository.

    python -m mmbert.publish --dry-run [--model merged] [--repo-id you/mmbert-repro]

prints exactly what would be uploaded (repository, branch, every file with its size and
SHA-256) and uploads nothing, whatever params say. As a stage (publish.enabled, dvc.yaml
regenerated) it does the same when publish.dry_run is true, and uploads otherwise; either way
it writes `<output_dir>/publish/receipt.json`: the files and, after an upload, the commit the
hub made. DVC re-runs it only when the checkpoint or a publish setting changes.

The token is HF_TOKEN from the environment (huggingface_hub's own variable): it is checked
before anything is read, passed to the hub client only, and never logged or written.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig, PublishConfig
from mmbert.io import atomic_dir, write_json
from mmbert.stages import write_record

log = logging.getLogger("mmbert.publish")
CARD = "README.md"


class PublishError(RuntimeError):
    """A checkpoint that cannot be published as asked; the message names what is wrong."""


@dataclass(frozen=True)
class UploadFile:
    path: str  # relative to the checkpoint folder, as it lands in the repository
    size: int
    sha256: str


def model_folder(cfg: PipelineConfig, model: str) -> Path:
    return output_dir(cfg, "merge", "model") if model == "merged" else output_dir(cfg, "train", model, "model")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload_files(folder: Path) -> list[UploadFile]:
    """Every file of the checkpoint folder (hidden ones aside), after checking that it is a
    complete transformers checkpoint whose model card the hub's parser reads."""
    from huggingface_hub import ModelCard

    if not folder.is_dir():
        raise PublishError(f"{folder}: no such checkpoint folder (has the stage that writes it run?)")
    for needed in ("config.json", CARD):
        if not (folder / needed).is_file():
            raise PublishError(f"{folder}: no {needed}; a published checkpoint needs its config and model card")
    if not list(folder.glob("*.safetensors")):
        raise PublishError(f"{folder}: no *.safetensors weights")
    try:
        ModelCard.load(folder / CARD)
    except Exception as exc:  # the hub parser's own errors are several types
        raise PublishError(f"{folder / CARD}: the hub cannot read this model card: {exc}") from None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    return [UploadFile(str(p.relative_to(folder)), p.stat().st_size, _sha256(p)) for p in files]


def describe(settings: PublishConfig, folder: Path, files: list[UploadFile], *, dry_run: bool) -> str:
    what = "would upload" if dry_run else "uploading"
    total = sum(f.size for f in files)
    lines = [f"publish: {what} {folder} to https://huggingface.co/{settings.repo_id} (branch {settings.revision}, "
             f"created {'private' if settings.private else 'public'} if missing): {len(files)} files, {total:,} bytes"]
    width = max(len(f.path) for f in files)
    lines += [f"  {f.path:<{width}}  {f.size:>14,}  sha256 {f.sha256}" for f in files]
    return "\n".join(lines)


def hub_token() -> str:
    token = os.environ.get("HF_TOKEN", "").strip()
    if not token:
        raise PublishError("publish.dry_run is false but HF_TOKEN is not set in the environment: export a hub "
                           "token with write access (it is never logged or written), or set publish.dry_run: true")
    return token


def upload(settings: PublishConfig, folder: Path, files: list[UploadFile], token: str) -> dict[str, Any]:
    """The folder as one commit on the branch, the repository and branch created if missing."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(settings.repo_id, repo_type="model", private=settings.private, exist_ok=True)
    if settings.revision != "main":
        api.create_branch(settings.repo_id, branch=settings.revision, exist_ok=True)
    commit = api.upload_folder(repo_id=settings.repo_id, folder_path=folder, revision=settings.revision,
                               allow_patterns=[f.path for f in files],
                               commit_message=f"mmbert-repro: {folder.parent.name} checkpoint with its model card")
    return {"repo_url": str(repo), "commit": commit.oid, "commit_url": commit.commit_url}


def publish(settings: PublishConfig, folder: Path, *, dry_run: bool) -> dict[str, Any]:
    """Check, then print and (unless dry_run) upload; the receipt of what happened."""
    token = None if dry_run else hub_token()
    files = upload_files(folder)
    print(describe(settings, folder, files, dry_run=dry_run), flush=True)
    receipt: dict[str, Any] = {"repo_id": settings.repo_id, "revision": settings.revision, "dry_run": dry_run,
                               "model_folder": str(folder), "files": [vars(f) for f in files]}
    if token is not None:
        receipt["uploaded"] = upload(settings, folder, files, token)
        log.info("publish: committed %s", receipt["uploaded"]["commit_url"])
    return receipt


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    overrides = {key: value for key, value in (("model", args.model), ("repo_id", args.repo_id)) if value}
    settings = PublishConfig.model_validate({**cfg.publish.model_dump(), **overrides})
    if settings.model != "merged" and settings.model not in cfg.phases:
        raise SystemExit(f"error: --model {settings.model!r} is neither 'merged' nor a phase {sorted(cfg.phases)}")
    if settings.repo_id is None:
        raise SystemExit("error: publish.repo_id is null: name the hub repository (owner/name), or pass --repo-id")
    try:
        if args.dry_run:  # standalone: prints, writes nothing (the stage's receipt stays as DVC has it)
            publish(settings, model_folder(cfg, settings.model), dry_run=True)
            return
        receipt = publish(settings, model_folder(cfg, settings.model), dry_run=settings.dry_run)
    except PublishError as exc:
        raise SystemExit(f"error: {exc}") from None
    with atomic_dir(output_dir(cfg, "publish")) as tmp:
        write_json(tmp / "receipt.json", receipt)
        write_record(tmp, cfg, "publish")


if __name__ == "__main__":
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print what would be uploaded; upload and write nothing")
    parser.add_argument("--model", default=None, help="over publish.model: a phase, or merged")
    parser.add_argument("--repo-id", default=None, help="over publish.repo_id: owner/name")
    run_stage(main, parser)
