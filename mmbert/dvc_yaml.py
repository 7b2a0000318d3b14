"""dvc.yaml, generated from params.yaml and mmbert.stages: which stages exist (the phases, the
external checkpoints to fetch), what each reads (its params keys, the code it imports, the
folders of the models it starts from or evaluates) and writes.

    python -m mmbert.dvc_yaml          # write dvc.yaml for params.yaml (mmbert.preset runs it)
    python -m mmbert.dvc_yaml --check  # exit 1 if dvc.yaml is not what params.yaml implies

The flow refuses to start when the two differ, so the chain DVC runs is always the one
params.yaml describes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmbert.config import PipelineConfig, load_config
from mmbert.stages import SUITES, stage_inputs_code, stage_params

REPO = Path(__file__).resolve().parents[1]
OUT = "${output_dir}"
HEADER = """\
# The pipeline, generated from params.yaml by `python -m mmbert.dvc_yaml` (mmbert.preset runs it;
# the flow refuses a dvc.yaml that differs). Each stage is one `python -m mmbert.<stage>` call
# that reads only its deps and params keys and writes only its outs (atomically), with the
# values it ran with in effective_params.json: params are exactly the keys a stage reads, code
# deps exactly the modules it imports (mmbert/stages.py). `runtime.*` is in no stage: it changes
# how a run executes, not its result. The train stages' chain follows phases.*.init_from; an
# external checkpoint (checkpoints.*) is fetched and converted once by its fetch@ stage.
"""
SUITE_MODULES = {"glue": "mmbert.suites.glue", "xtreme": "mmbert.suites.xtreme",
                 "lowres_qa": "mmbert.suites.lowres_qa", "mteb": "mmbert.suites.embeddings"}


def model_folder(cfg: PipelineConfig, name: str) -> str:
    """The folder a model named in params lives in: a phase's, a fetched checkpoint's or the merge's."""
    if name == "merged":
        return f"{OUT}/merge/model"
    if name in cfg.checkpoints:
        return f"{OUT}/checkpoints/{name}/model"
    return f"{OUT}/train/{name}/model"


def init_folder(cfg: PipelineConfig, phase: str) -> str:
    base = cfg.phases[phase].init_from
    return "tokenizer" if base is None else model_folder(cfg, base).removeprefix(f"{OUT}/")


def _list(items: list[str], indent: int) -> list[str]:
    return [" " * indent + f"- {item}" for item in items]


def _stage(name: str, cmd: str, deps: list[str], params: list[str], outs: list[str], indent: int = 4) -> list[str]:
    pad = " " * indent
    return ([f"{pad}cmd: {cmd}", f"{pad}deps:", *_list(deps, indent + 2), f"{pad}params:", *_list(params, indent + 2),
             f"{pad}outs:", *_list(outs, indent + 2)])


def _models(cfg: PipelineConfig, names: list[str]) -> list[str]:
    return list(dict.fromkeys(model_folder(cfg, n) for n in names))


def _foreach(name: str, items: list[str] | dict[str, str], body: list[str]) -> list[str]:
    head = [f"  {name}:", "    foreach:"]
    if isinstance(items, dict):
        head += [f"      {key}: {{init: {value}}}" for key, value in items.items()]
    else:
        head += _list(items, 6)
    return head + ["    do:", *body]


def render(cfg: PipelineConfig) -> str:
    lines = [HEADER.rstrip("\n"), "stages:"]
    lines += ["  corpus:", *_stage("corpus", "python -m mmbert.corpus", stage_inputs_code("corpus"),
                                   stage_params(cfg, "corpus"), [f"{OUT}/corpus"]), ""]
    lines += ["  tokenizer:", *_stage("tokenizer", "python -m mmbert.tokenizer",
                                      [f"{OUT}/corpus", *stage_inputs_code("tokenizer")],
                                      stage_params(cfg, "tokenizer"), [f"{OUT}/tokenizer"]), ""]
    if cfg.checkpoints:
        body = _stage("fetch", "python -m mmbert.fetch --name ${item}",
                      [f"{OUT}/tokenizer", *stage_inputs_code("fetch")], stage_params(cfg, "fetch@${item}"),
                      [f"{OUT}/checkpoints/${{item}}"], indent=6)
        lines += [*_foreach("fetch", list(cfg.checkpoints), body), ""]
    body = _stage("mix", "python -m mmbert.mix --phase ${item}",
                  [f"{OUT}/corpus", f"{OUT}/tokenizer", *stage_inputs_code("mix")], stage_params(cfg, "mix@${item}"),
                  [f"{OUT}/mix/${{item}}"], indent=6)
    lines += [*_foreach("mix", list(cfg.phases), body), ""]
    body = _stage("train", "python -m mmbert.train --phase ${key}",
                  [f"{OUT}/${{item.init}}", f"{OUT}/mix/${{key}}", f"{OUT}/corpus", *stage_inputs_code("train")],
                  stage_params(cfg, "train@${key}"), [f"{OUT}/train/${{key}}"], indent=6)
    lines += [*_foreach("train", {p: init_folder(cfg, p) for p in cfg.phases}, body), ""]
    merged = _models(cfg, [cfg.merge.base, *cfg.merge.models])
    lines += ["  merge:", *_stage("merge", "python -m mmbert.merge", [*merged, f"{OUT}/corpus", *stage_inputs_code("merge")],
                                  stage_params(cfg, "merge"), [f"{OUT}/merge"]), ""]
    evaluated = [m for m in _models(cfg, [n for n in cfg.eval.models if n != "merged"])]
    lines += ["  eval:", *_stage("eval", "python -m mmbert.evaluate",
                                 [f"{OUT}/corpus", f"{OUT}/tokenizer", f"{OUT}/mix", *evaluated, f"{OUT}/merge",
                                  *stage_inputs_code("eval")], stage_params(cfg, "eval"), [f"{OUT}/eval"]), ""]
    for suite in SUITES:
        stage = f"eval-{suite}"
        models = _models(cfg, getattr(cfg.suites, suite).models)
        lines += [f"  {stage}:", *_stage(stage, f"python -m {SUITE_MODULES[suite]}",
                                         [*models, *stage_inputs_code(stage)], stage_params(cfg, stage),
                                         [f"{OUT}/suites/{suite}"]), ""]
    bench_deps = [f"{OUT}/merge"] if any(m.startswith("merged") for m in cfg.bench.models) else []
    lines += ["  bench:", *_stage("bench", "python -m mmbert.bench", [*bench_deps, *stage_inputs_code("bench")],
                                  stage_params(cfg, "bench"), [f"{OUT}/bench"]), ""]
    report_deps = [f"{OUT}/mix", *(f"{OUT}/train/{p}" for p in cfg.phases), f"{OUT}/eval", f"{OUT}/bench",
                   f"{OUT}/suites/lowres_qa"]
    lines += ["  report:", *_stage("report", "python -m mmbert.report", [*report_deps, *stage_inputs_code("report")],
                                   stage_params(cfg, "report"), [f"{OUT}/report"]), ""]
    if cfg.publish.enabled:
        lines += ["  publish:", *_stage("publish", "python -m mmbert.publish",
                                        [*_models(cfg, [cfg.publish.model]), *stage_inputs_code("publish")],
                                        stage_params(cfg, "publish"), [f"{OUT}/publish"]), ""]
    lines += _metrics_and_plots(cfg)
    return "\n".join(lines) + "\n"


def _metrics_and_plots(cfg: PipelineConfig) -> list[str]:
    """Each phase's DVCLive folder: its summary as metrics (`dvc exp show`), its steps as plots."""
    out = cfg.output_dir
    summaries = [f"  - {out}/train/{phase}/dvclive/metrics.json" for phase in cfg.phases]
    losses = [f"        {out}/train/{phase}/dvclive/plots/metrics/train/loss.tsv: loss" for phase in cfg.phases]
    lrs = [f"        {out}/train/{phase}/dvclive/plots/metrics/train/lr.tsv: lr" for phase in cfg.phases]
    return ["# Each phase's per-step metrics and summary are DVCLive's (mmbert/train/live.py); its full",
            "# metrics.json (held-out loss per language) is left out: the per-language table swamps the view.",
            "metrics:", f"  - {out}/eval/metrics.json", f"  - {out}/bench/results.json", *summaries, "", "plots:",
            "  - training loss:", "      template: linear", "      x: step", "      y:", *losses,
            "  - learning rate:", "      template: linear", "      x: step", "      y:", *lrs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--out", default=None, help="dvc.yaml to write (default: beside the params file)")
    parser.add_argument("--check", action="store_true", help="exit 1 if dvc.yaml differs from what params implies")
    args = parser.parse_args()
    target = Path(args.out) if args.out else Path(args.params).resolve().parent / "dvc.yaml"
    text = render(load_config(args.params))
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            sys.exit(f"{target} is not what {args.params} implies: run python -m mmbert.dvc_yaml")
        print(f"{target}: up to date")
        return
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
