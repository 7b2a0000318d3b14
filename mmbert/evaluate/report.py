"""The evaluation's markdown table, and the derived comparisons it shows."""

from __future__ import annotations


def decay_only_changes(results: dict[str, dict], base: str) -> dict[str, float]:
    """Change of the decay-only languages' held-out loss from the base checkpoint."""
    if base not in results:
        return {}
    start = results[base]["heldout_loss"]["decay_only"]
    return {name: r["heldout_loss"]["decay_only"] - start for name, r in results.items() if name != base}


def _score(row: dict, key: str) -> str:
    return f"{row[key]:.3f}" if key in row else "–"


def render_report(metrics: dict) -> str:
    groups = metrics["groups"]
    lines = [
        "# Evaluation (embedded tasks)",
        "",
        f"Held-out MLM loss in nats (mask rate as in params `eval.heldout.mask_rate`), by language group: "
        f"pretrain ({groups['pretrain']} languages seen since pre-training), midtrain ({groups['midtrain']} added at "
        f"mid-training), decay-only ({groups['decay_only']} seen only in a decay phase), unseen ({groups['unseen']} never "
        f"trained on). 'all' pools every language with held-out text, each weighted by its tokens.",
        f"Unigram-entropy baseline of the same held-out tokens: **{metrics['unigram_entropy']:.3f}** nats; "
        f"the same architecture untrained: {metrics['random_init_loss']:.3f} nats.",
        "",
        "| model | loss (all) | pretrain | midtrain | decay-only | unseen | Δ decay-only vs base | lang-ID acc | bitext acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in metrics["models"].items():
        loss = row["heldout_loss"]
        change = metrics["decay_only_change"].get(name)
        lines.append(
            f"| {name} | {loss['all']:.3f} | {loss['pretrain']:.3f} | {loss['midtrain']:.3f} | {loss['decay_only']:.3f} "
            f"| {loss['unseen']:.3f} "
            f"| {'' if change is None else f'{change:+.3f}'} | {_score(row, 'langid_accuracy')} | {_score(row, 'bitext_accuracy')} |"
        )
    if "merged_vs_entropy" in metrics:
        lines += ["", f"The merged model's held-out loss is {100 * metrics['merged_vs_entropy']:.1f}% below the unigram entropy."]
    return "\n".join(lines) + "\n"
