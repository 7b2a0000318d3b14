"""Model cards (README.md in the hub's format, built with huggingface_hub's ModelCard) for
every checkpoint the pipeline writes: each phase's model and the merge. Everything in a card
comes from the run: the languages (ISO codes) and mixture of every phase the model has been
through (their mix manifests), the training settings from params, the compute the stages
measured, and the checkpoint's held-out MLM loss as `model-index` results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmbert.cli import output_dir
from mmbert.config import PipelineConfig
from mmbert.io import read_json, write_json

LICENSE = "apache-2.0"  # this project's (pyproject.toml); released checkpoints keep their own cards
HUB_DATASETS = {"fineweb2": "HuggingFaceFW/fineweb-2", "dclm": "mlfoundations/dclm-baseline-1.0",
                "megawika": "jhu-clsp/megawika-2", "prolong-code": "princeton-nlp/prolong-data-64K",
                "prolong-textbooks": "princeton-nlp/prolong-data-64K"}


def iso_code(lang: str) -> str | None:
    """'fra_Latn' → 'fr' (ISO 639-1 where it has one, else the 639-3 code); code → None."""
    from mmbert.corpus.langcodes import iso639_1

    if lang == "code":
        return None
    base = lang.split("_")[0]
    return iso639_1(base) or base


LINEAGE = "lineage.json"  # beside the weights: what the model has been through, phase by phase


def phase_record(cfg: PipelineConfig, phase: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One phase as a card reports it: its mixture (from its manifest), settings and compute."""
    manifest = read_json(output_dir(cfg, "mix", phase, "manifest.json"))
    languages = {lang: row for lang, row in (manifest.get("per_language") or {}).items() if row["tokens"]}
    top = sorted(languages.items(), key=lambda kv: -kv[1]["share"])[:5]
    p = cfg.phases[phase]
    source = ("hub: " + ", ".join(p.data.sources) if p.data.sources else "released mixes" if p.data.released
              else "the embedded corpus")
    return {"phase": phase, "tokens": manifest["tokens"], "languages": sorted(languages), "source": source,
            "hub_sources": sorted(p.data.sources), "temperature": p.data.temperature,
            "max_repeats": p.data.max_repeats, "mask_rate": p.mask_rate, "peak_lr": p.lr.peak,
            "rope_theta": p.rope_theta_global, "steps": metrics.get("steps"),
            "tokens_per_second": metrics.get("tokens_per_second"), "wall_seconds": metrics.get("wall_seconds"),
            "top_shares": [[lang, row["share"]] for lang, row in top]}


def read_lineage(model_folder: Path) -> list[dict[str, Any]]:
    path = model_folder / LINEAGE
    return read_json(path) if path.is_file() else []


def write_phase_card(cfg: PipelineConfig, phase: str, metrics: dict[str, Any], base_folder: Path | None,
                     model_folder: Path) -> None:
    """README.md and lineage.json of a phase's final checkpoint: its base's lineage (read from
    the base checkpoint, a dep of the stage) and this phase."""
    records = (read_lineage(base_folder) if base_folder else []) + [phase_record(cfg, phase, metrics)]
    base = cfg.phases[phase].init_from
    write_json(model_folder / LINEAGE, records)
    chain = " → ".join(r["phase"] for r in records)
    _card(cfg, f"mmbert-repro {phase}", records, metrics.get("heldout_loss"), base_model=_hub_id(cfg, base),
          summary=f"the end of phase `{phase}` ({chain})").save(model_folder / "README.md")


def write_merge_card(cfg: PipelineConfig, model_folders: list[Path], heldout_loss: float | None,
                     model_folder: Path) -> None:
    records = list({r["phase"]: r for folder in model_folders for r in read_lineage(folder)}.values())
    write_json(model_folder / LINEAGE, records)
    _card(cfg, "mmbert-repro merged", records, heldout_loss, base_model=_hub_id(cfg, cfg.merge.base),
          summary=f"a TIES merge (density {cfg.merge.density}) of {', '.join(cfg.merge.models)} on "
                  f"{cfg.merge.base}").save(model_folder / "README.md")


def _hub_id(cfg: PipelineConfig, name: str | None) -> str | None:
    spec = cfg.checkpoints.get(name) if name else None
    return spec.hub if spec is not None else None


def _card(cfg: PipelineConfig, name: str, records: list[dict], heldout: float | None, *, base_model: str | None,
          summary: str) -> Any:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    languages = sorted({code for r in records for lang in r["languages"] if (code := iso_code(lang))})
    sources = {s for r in records for s in r["hub_sources"]}
    results = [] if heldout is None else [EvalResult(
        task_type="fill-mask", task_name="Masked language modeling", dataset_type="mmbert-repro/heldout",
        dataset_name="held-out text of the run's corpus (each document on its own)", metric_type="loss",
        metric_name="held-out MLM loss (nats)", metric_value=round(float(heldout), 4))]
    data = ModelCardData(language=languages, license=LICENSE, library_name="transformers", pipeline_tag="fill-mask",
                         base_model=base_model, datasets=sorted(HUB_DATASETS[s] for s in sources if s in HUB_DATASETS)
                         or None, tags=["modernbert", "mmbert", "multilingual", "encoder"], model_name=name,
                         eval_results=results or None)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(cfg, name, records, summary, heldout)}")


def _body(cfg: PipelineConfig, name: str, records: list[dict], summary: str, heldout: float | None) -> str:
    m = cfg.model
    lines = [f"# {name}", "", f"A ModernBERT encoder trained by mmbert-repro (a reproduction of mmBERT, "
             f"arXiv 2509.06888): {summary}. Load it with `AutoModelForMaskedLM.from_pretrained`.", "",
             "## Architecture", "", f"{m.num_hidden_layers} layers, hidden {m.hidden_size}, {m.num_attention_heads} "
             f"heads, GeGLU {m.intermediate_size}, local attention {m.local_attention} (global every "
             f"{m.global_attn_every_n_layers} layers), up to {m.max_position_embeddings} positions, vocabulary "
             f"{cfg.tokenizer.vocab_size}.", "", "## Data and training, per phase", "",
             "| phase | tokens | languages | source | temperature | max repeats | mask rate | peak LR | RoPE θ | "
             "steps | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['phase']} | {r['tokens']:,} | {len(r['languages'])} | {r['source']} | "
                     f"{r['temperature']} | {r['max_repeats']} | {r['mask_rate']} | {r['peak_lr']:g} | "
                     f"{r['rope_theta']:g} | {r['steps'] or ''} | {_rate(r)} |")
    lines += ["", "Largest shares per phase: " + "; ".join(
        f"{r['phase']}: " + ", ".join(f"{lang} {share:.1%}" for lang, share in r["top_shares"]) for r in records),
        "", "## Evaluation", "",
        f"Held-out MLM loss (nats, each held-out document on its own): {heldout:.4f}." if heldout is not None
        else "Held-out MLM loss: not measured for this checkpoint.",
        "", f"Optimizer {cfg.train.optimizer.name}, {cfg.train.num_workers} workers, precision {cfg.train.precision}, "
        f"seed {cfg.seed}."]
    return "\n".join(lines) + "\n"


def _rate(run: dict[str, Any]) -> str:
    rate = run.get("tokens_per_second")
    return f"{rate:,.0f}" if isinstance(rate, (int, float)) else ""


