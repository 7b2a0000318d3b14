"""`python -m mmbert.evaluate --model PATH_OR_ID --suite SUITE`: one of the paper's suites on
any checkpoint (a pipeline phase, the merge, the released jhu-clsp/mmBERT-small/-base,
FacebookAI/xlm-roberta-base, a local folder), outside the pipeline. The suite's settings come
from params.yaml (suites.*); --tasks and --data-dir override theirs."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from mmbert.cli import setup_logging
from mmbert.config import ConfigError, load_config

SUITE_MODULES = {"glue": "mmbert.suites.glue", "xtreme": "mmbert.suites.xtreme", "lowres_qa": "mmbert.suites.lowres_qa",
                 "mteb": "mmbert.suites.embeddings"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="a local checkpoint folder or a hub model id")
    p.add_argument("--suite", required=True, choices=sorted(SUITE_MODULES))
    p.add_argument("--params", default="params.yaml", help="where the suite's settings come from")
    p.add_argument("--tasks", default=None, help="comma-separated subset of the suite's tasks")
    p.add_argument("--data-dir", default=None, help="local copies of the datasets (overrides suites.data_dir)")
    p.add_argument("--name", default=None, help="the model's name in the results (default: the folder's name)")
    p.add_argument("--out", default=None, help="results folder (default: suite-results/<name>/<suite>)")
    return p


def looks_local(model: str) -> bool:
    return model.startswith((".", "/", "~")) or model.count("/") != 1 or Path(model).exists()


def main(argv: list[str] | None = None) -> None:
    from mmbert.suites.stage import run_and_write

    setup_logging()
    args = parser().parse_args(argv)
    if looks_local(args.model) and not Path(args.model).expanduser().is_dir():
        raise SystemExit(f"error: --model {args.model}: no such folder (and not a hub id 'owner/name')")
    try:
        cfg = load_config(args.params)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    section = getattr(cfg.suites, args.suite).model_copy(
        update={"tasks": args.tasks.split(",") if args.tasks else getattr(cfg.suites, args.suite).tasks})
    suites = cfg.suites.model_copy(update={args.suite: section, "data_dir": args.data_dir or cfg.suites.data_dir})
    cfg = cfg.model_copy(update={"suites": suites})
    name = args.name or Path(args.model.rstrip("/")).name
    out = Path(args.out) if args.out else Path("suite-results") / name / args.suite
    model = str(Path(args.model).expanduser().resolve()) if looks_local(args.model) else args.model
    module = importlib.import_module(SUITE_MODULES[args.suite])
    try:
        run_and_write(args.suite, module.run_suite, {name: model}, cfg, out, None)
    except KeyError as exc:  # an unknown task name
        raise SystemExit(f"error: {exc.args[0]}") from None
    print(f"{args.suite} results for {name}: {out}/report.md", file=sys.stderr)
