"""What every stage entry point shares: arguments, logging, config loading, clean errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mmbert.config import ConfigError, PipelineConfig, load_config

def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser


def phase_stage_parser(description: str) -> argparse.ArgumentParser:
    parser = stage_parser(description)
    parser.add_argument("--phase", required=True, help="a phase name from params.yaml")
    return parser


def require_phase(cfg: PipelineConfig, phase: str) -> str:
    if phase not in cfg.phases:
        raise SystemExit(f"error: --phase {phase!r} is not in phases {list(cfg.phases)}")
    return phase


def setup_logging() -> None:
    """Our progress at INFO; the libraries' (Ray, transformers) only when they warn."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
        force=True,
    )
    logging.getLogger("mmbert").setLevel(logging.INFO)


def run_stage(main: Callable[[PipelineConfig, argparse.Namespace], None], parser: argparse.ArgumentParser,
              *, check: Callable[[PipelineConfig, str], None] | None = None) -> None:
    """Parse, validate the whole config first (and run `check`, e.g. against the corpus),
    then run; a bad config exits 2 with its message."""
    setup_logging()
    args = parser.parse_args()
    try:
        cfg = load_config(args.params)
        if check is not None:
            check(cfg, args.params)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    main(cfg, args)


def output_dir(cfg: PipelineConfig, *parts: str) -> Path:
    return Path(cfg.output_dir).joinpath(*parts)
