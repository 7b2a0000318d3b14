"""Bitext retrieval English↔other (Tatoeba-style) through mteb, on a local task built from
held-out parallel text: for each English sentence, is its translation the nearest
neighbour among all candidates? Embeddings are mean-pooled encoder states."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mmbert.config import BitextConfig
from mmbert.corpus.langcodes import ENGLISH
from mmbert.io import read_jsonl


def parallel_pairs(corpus_dir: Path, cfg: BitextConfig, ranked_languages: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{lang: [(english, translation)]} from held-out text sharing a key with English."""
    by_key: dict[str, dict[str, str]] = defaultdict(dict)
    for row in read_jsonl(corpus_dir / "eval.jsonl"):
        by_key[row["key"]][row["lang"]] = row["text"]
    pairs: dict[str, list[tuple[str, str]]] = {}
    for lang in ranked_languages:
        if lang == ENGLISH:
            continue
        found = sorted((texts[ENGLISH], texts[lang]) for texts in by_key.values() if ENGLISH in texts and lang in texts)
        unique = list(dict.fromkeys(found))  # distinct English sentences only
        if len(unique) >= 2:
            pairs[lang] = unique[: cfg.max_pairs]
        if len(pairs) == cfg.languages:
            break
    return pairs


def _mteb_lang(code: str) -> str:
    return code.replace("_", "-")


def local_task(pairs: dict[str, list[tuple[str, str]]]):
    """An mteb BitextMining task whose data comes from `pairs`, not from the hub."""
    import datasets
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.abstasks.text.bitext_mining import AbsTaskBitextMining

    subsets = {f"eng-{lang}": lang for lang in pairs}
    metadata = TaskMetadata(
        name="MmbertHeldoutBitext",
        dataset={"path": "local/mmbert-heldout-bitext", "revision": "1"},
        description="English-aligned held-out pairs from the embedded corpus (Django catalogues).",
        reference=None,
        type="BitextMining",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs={subset: [_mteb_lang(ENGLISH), _mteb_lang(lang)] for subset, lang in subsets.items()},
        main_score="accuracy",
        date=None,
        domains=["Written"],
        task_subtypes=[],
        license="bsd-3-clause",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )

    class HeldoutBitext(AbsTaskBitextMining):
        def load_data(self, *args, **kwargs) -> None:
            self.dataset = {
                subset: datasets.DatasetDict({"test": datasets.Dataset.from_dict({
                    "sentence1": [en for en, _ in pairs[lang]],
                    "sentence2": [other for _, other in pairs[lang]],
                })})
                for subset, lang in subsets.items()
            }
            self.data_loaded = True

    HeldoutBitext.metadata = metadata
    return HeldoutBitext()


def encoder(model_dir: Path, max_length: int):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(model_dir), max_seq_length=max_length)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device="cpu")


def bitext_scores(model_dir: Path, pairs: dict[str, list[tuple[str, str]]], cfg: BitextConfig) -> dict[str, object]:
    import mteb

    result = mteb.evaluate(encoder(model_dir, cfg.max_length), tasks=[local_task(pairs)], cache=None,
                           show_progress_bar=False)
    scores = result.task_results[0].scores["test"]
    per_pair = {row["hf_subset"].split("-", 1)[1]: row["accuracy"] for row in scores}
    return {"accuracy": sum(per_pair.values()) / len(per_pair), "per_language": per_pair,
            "pairs": sum(len(p) for p in pairs.values())}
