"""Small pipelines built in-process for tests: the micro preset's corpus, tokenizer and a
phase mix, written under a temporary folder by the same functions the stages use."""

from __future__ import annotations

from pathlib import Path


from mmbert.config import PipelineConfig, parse_config
from mmbert.preset import preset_values

REPO = Path(__file__).resolve().parents[1]


def micro_config(output_dir: Path, **overrides) -> PipelineConfig:
    raw = preset_values("micro")
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
