"""Small pipelines built in-process for tests: the micro profile's corpus, tokenizer and a
phase mix, written under a temporary folder by the same functions the stages use."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from mmbert.config import PipelineConfig, parse_config

REPO = Path(__file__).resolve().parents[1]


def micro_config(output_dir: Path, **overrides) -> PipelineConfig:
    raw = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    raw["profile"] = "micro"
    raw["output_dir"] = str(output_dir)
    raw.update(overrides)
    return parse_config(raw)


def build_inputs(cfg: PipelineConfig, phases: list[str]) -> None:
    """corpus → tokenizer → mix@phase, as the stages write them."""
    import argparse

    from mmbert import mix, tokenizer
    from mmbert.corpus import __main__ as corpus

    corpus.main(cfg, argparse.Namespace())
    tokenizer.main(cfg, argparse.Namespace())
    for phase in phases:
        mix.main(cfg, argparse.Namespace(phase=phase))
