"""Stage `eval`: held-out MLM loss per language group for every checkpoint (the paper's
Figure 2 in miniature), language identification, bitext retrieval through mteb, and the
unigram-entropy baseline. Writes metrics.json and report.md."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mmbert.checkpoints import checkpoint_dir
from mmbert.cli import output_dir, run_stage, stage_parser
from mmbert.config import PipelineConfig
from mmbert.evaluate.report import decay_only_changes, render_report
from mmbert.io import atomic_dir, read_json, write_json
from mmbert.stages import write_record

log = logging.getLogger("mmbert.eval")


def language_groups(cfg: PipelineConfig) -> dict[str, set[str]]:
    """Languages seen since pre-training, added at mid-training, seen only in a decay, and
    never trained on (held-out text exists, but no phase sampled the language). A run that
    starts from an external checkpoint knows only its own phases' languages."""
    # A phase trained on a released mix has no per-language table: its languages are unknown.
    seen = {name: {lang for lang, row in read_json(output_dir(cfg, "mix", name, "manifest.json"))
                   .get("per_language", {}).items() if row["tokens"]} for name in cfg.phases}
    first = seen[cfg.phase_order()[0]]
    base = seen.get(cfg.merge.base, set())  # an external base's languages are not known here
    everything = set().union(*seen.values())
    held_out = set(read_json(output_dir(cfg, "corpus", "stats.json"))["per_language"])
    return {"pretrain": first, "midtrain": base - first, "decay_only": everything - base,
            "unseen": held_out - everything}


def evaluate_model(cfg: PipelineConfig, name: str, rows, groups, langid_data, pairs) -> dict[str, object]:
    from mmbert.evaluate.bitext import bitext_scores
    from mmbert.evaluate.langid import finetune_and_score
    from mmbert.evaluate.mlm_loss import checkpoint_heldout_loss, pooled

    path = checkpoint_dir(cfg, name, "eval.models")
    per_language = checkpoint_heldout_loss(path, rows, cfg.eval.heldout)
    heldout = {"all": pooled(per_language)} | {group: pooled(per_language, langs) for group, langs in groups.items()}
    result = {"heldout_loss": heldout, "per_language": per_language}
    if name in cfg.eval.downstream_models:
        result["langid"] = finetune_and_score(path, langid_data, cfg.eval.langid.languages, cfg.eval.langid, cfg.eval.seed)
        result["bitext"] = bitext_scores(path, pairs, cfg.eval.bitext)
    log.info("eval %s: held-out loss %.3f (decay-only %.3f)%s", name, heldout["all"], heldout["decay_only"],
             f", langid acc {result['langid']['accuracy']:.3f}, bitext acc {result['bitext']['accuracy']:.3f}"
             if "langid" in result else "")
    return result


def main(cfg: PipelineConfig, args: argparse.Namespace) -> None:
    from mmbert.evaluate.bitext import parallel_pairs
    from mmbert.evaluate.entropy import heldout_entropy
    from mmbert.evaluate.langid import langid_data
    from mmbert.evaluate.mlm_loss import heldout_rows, pooled, random_init_heldout_loss
    from mmbert.tokenizer import load_tokenizer, special_ids

    paths = {name: checkpoint_dir(cfg, name, "eval.models") for name in cfg.eval.models}
    corpus = output_dir(cfg, "corpus")
    tokenizer = load_tokenizer(output_dir(cfg, "tokenizer"))
    rows = heldout_rows(corpus, tokenizer, cfg.eval.heldout.seq_len)
    groups = language_groups(cfg)
    ranked = list(read_json(corpus / "stats.json")["per_language"])
    data = langid_data(corpus, ranked[: cfg.eval.langid.languages], cfg.eval.seed)
    pairs = parallel_pairs(corpus, cfg.eval.bitext, ranked)
    baseline = heldout_entropy(rows, special_ids(tokenizer).all(), groups)
    results = {name: evaluate_model(cfg, name, rows, groups, data, pairs) for name in paths}
    untrained = pooled(random_init_heldout_loss(next(iter(paths.values())), rows, cfg.eval.heldout, cfg.eval.seed))

    metrics = {
        "unigram_entropy": baseline["pooled"],
        "unigram_entropy_by_group": baseline["by_group"],
        "random_init_loss": untrained,
        "heldout_tokens": baseline["tokens"],
        "groups": {group: len(langs) for group, langs in groups.items()},
        "models": {name: {"heldout_loss": r["heldout_loss"]}
                   | ({"langid_accuracy": r["langid"]["accuracy"], "bitext_accuracy": r["bitext"]["accuracy"]}
                      if "langid" in r else {}) for name, r in results.items()},
        "decay_only_change": decay_only_changes(results, cfg.merge.base),
    }
    if "merged" in results:
        metrics["merged_vs_entropy"] = 1.0 - results["merged"]["heldout_loss"]["all"] / baseline["pooled"]
    target = output_dir(cfg, "eval")
    with atomic_dir(target) as tmp:
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "details.json", {"unigram_entropy_per_language": baseline["per_language"],
                                          "models": results, "groups": {g: sorted(v) for g, v in groups.items()}})
        (tmp / "report.md").write_text(render_report(metrics), encoding="utf-8")
        write_record(tmp, cfg, "eval")
    log.info("eval: %d models -> %s", len(results), target)


if __name__ == "__main__":
    if "--model" in sys.argv[1:]:
        # A paper suite on any checkpoint. Imported by name so that the suites' code is not part
        # of this stage's code (DVC would re-run the embedded evaluation when a suite changes).
        importlib.import_module("mmbert.suites.cli").main()
    else:
        run_stage(main, stage_parser(__doc__))
