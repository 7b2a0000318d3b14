"""Small copies of the benchmark datasets, in each hub dataset's exact schema (features,
configurations, split names), written as the hub's parquet layout under a data_dir:
`<data_dir>/<hub id>/<config>/<split>-00000-of-00001.parquet`.

The text is synthetic and learnable: a label is carried by a word of its input (e.g. SST-2
'good'/'bad'), so a tiny model can fit the training sets and score well on the dev sets.
"""

from __future__ import annotations

import random
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Sequence, Value

from mmbert.suites.hub import DatasetRef

S = Value("string")
I32 = Value("int32")
WIKIANN_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]
GLUE_LABELS = {"cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"],
               "mrpc": ["not_equivalent", "equivalent"], "qqp": ["not_duplicate", "duplicate"],
               "mnli": ["entailment", "neutral", "contradiction"], "qnli": ["entailment", "not_entailment"],
               "rte": ["entailment", "not_entailment"]}
NOUNS = ["river", "garden", "teacher", "window", "mountain", "letter", "market", "engine", "forest", "candle"]
CUES = ["alpha", "beta", "gamma"]  # the word that carries a class
SQUAD_ANSWERS = Sequence({"text": S, "answer_start": I32})


def _sentence(rng: random.Random, cue: str | None = None) -> str:
    words = rng.sample(NOUNS, 4)
    if cue:
        words.insert(rng.randrange(5), cue)
    return "the " + " ".join(words)


def _classes(rng: random.Random, n: int, k: int) -> list[int]:
    return [i % k for i in rng.sample(range(n * k), n)]


def glue(config: str, n: int, rng: random.Random) -> Dataset:
    idx = list(range(n))
    if config == "stsb":
        labels = [round(rng.uniform(0, 5), 2) for _ in idx]
        return Dataset.from_dict({"sentence1": [_sentence(rng, "alpha" * (round(y) % 2)) for y in labels],
                                  "sentence2": [_sentence(rng) for _ in idx], "label": labels, "idx": idx},
                                 features=Features({"sentence1": S, "sentence2": S, "label": Value("float32"),
                                                    "idx": I32}))
    names = GLUE_LABELS[config]
    labels = _classes(rng, n, len(names))
    from mmbert.suites.glue import GLUE_INPUTS

    columns = GLUE_INPUTS[config]
    data = {columns[0]: [_sentence(rng, CUES[y]) for y in labels]}
    if len(columns) == 2:
        data[columns[1]] = [_sentence(rng) for _ in idx]
    features = {c: S for c in columns} | {"label": ClassLabel(names=names), "idx": I32}
    return Dataset.from_dict(data | {"label": labels, "idx": idx}, features=Features(features))


def xnli(n: int, rng: random.Random) -> Dataset:
    labels = _classes(rng, n, 3)
    return Dataset.from_dict({"premise": [_sentence(rng, CUES[y]) for y in labels],
                              "hypothesis": [_sentence(rng) for _ in labels], "label": labels},
                             features=Features({"premise": S, "hypothesis": S,
                                                "label": ClassLabel(names=GLUE_LABELS["mnli"])}))


def pawsx(n: int, rng: random.Random) -> Dataset:
    labels = _classes(rng, n, 2)
    return Dataset.from_dict({"id": list(range(1, n + 1)), "sentence1": [_sentence(rng, CUES[y]) for y in labels],
                              "sentence2": [_sentence(rng) for _ in labels], "label": labels},
                             features=Features({"id": I32, "sentence1": S, "sentence2": S,
                                                "label": ClassLabel(names=["0", "1"])}))


def _choices(rng: random.Random, label: int, k: int) -> list[str]:
    return [f"{'alpha' if i == label else 'beta'} {rng.choice(NOUNS)}" for i in range(k)]


def copa(n: int, rng: random.Random, xcopa: bool) -> Dataset:
    labels = _classes(rng, n, 2)
    options = [_choices(rng, y, 2) for y in labels]
    data = {"premise": [_sentence(rng) for _ in labels], "choice1": [o[0] for o in options],
            "choice2": [o[1] for o in options], "question": [rng.choice(["cause", "effect"]) for _ in labels],
            "idx": list(range(n)), "label": labels}
    if xcopa:
        data["changed"] = [False] * n
        return Dataset.from_dict(data, features=Features({"premise": S, "choice1": S, "choice2": S, "question": S,
                                                          "label": I32, "idx": I32, "changed": Value("bool")}))
    return Dataset.from_dict(data, features=Features({"premise": S, "choice1": S, "choice2": S, "question": S,
                                                      "idx": I32, "label": ClassLabel(names=["choice1", "choice2"])}))


def social_iqa(n: int, rng: random.Random) -> Dataset:
    labels = _classes(rng, n, 3)
    options = [_choices(rng, y, 3) for y in labels]
    return Dataset.from_dict({"context": [_sentence(rng) for _ in labels],
                              "question": ["What will happen next?"] * n,
                              "answerA": [o[0] for o in options], "answerB": [o[1] for o in options],
                              "answerC": [o[2] for o in options], "label": [str(y + 1) for y in labels]},
                             features=Features({c: S for c in ("context", "question", "answerA", "answerB",
                                                                "answerC", "label")}))


def squad_like(n: int, rng: random.Random, layout: str = "squad") -> Dataset:
    """The answer is the word after 'alpha' in a context long enough to need two windows at
    small lengths. Layouts: squad (and TyDiQA, TiQuAD), xquad (no title), mlqa (its own column
    and answer-field order), foqa (int64 offsets, a 'validation' note column)."""
    rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for i in range(n):
        answer = rng.choice(NOUNS)
        before = " ".join(_sentence(rng) for _ in range(rng.randrange(1, 4)))
        context = f"{before} alpha {answer} {_sentence(rng)}."
        rows["id"].append(f"q{i}")
        rows["title"].append(f"Title {i % 3}")
        rows["context"].append(context)
        rows["question"].append("what follows alpha?")
        rows["answers"].append({"text": [answer], "answer_start": [context.index(f"alpha {answer}") + 6]})
    if layout == "squad":
        features = {"id": S, "title": S, "context": S, "question": S, "answers": SQUAD_ANSWERS}
    elif layout == "xquad":
        features = {"id": S, "context": S, "question": S, "answers": SQUAD_ANSWERS}
    elif layout == "mlqa":
        features = {"context": S, "question": S, "answers": Sequence({"answer_start": I32, "text": S}), "id": S}
    else:  # foqa
        rows["validation"] = ["correct"] * n
        features = {"id": S, "title": S, "question": S,
                    "answers": Sequence({"answer_start": Value("int64"), "text": S}), "validation": S, "context": S}
    return Dataset.from_dict({k: rows[k] for k in features}, features=Features(features))


def tagged(n: int, rng: random.Random, column: str, names: list[str]) -> Dataset:
    sentences, tags = [], []
    for _ in range(n):
        words = [rng.choice(NOUNS) for _ in range(rng.randrange(3, 8))]
        labels = [0] * len(words)
        where = rng.randrange(len(words))
        words.insert(where, "alpha")
        labels.insert(where, 1)
        sentences.append(words)
        tags.append(labels)
    data = {"tokens": sentences, column: tags}
    features = {"tokens": Sequence(S), column: Sequence(ClassLabel(names=names))}
    if column == "ner_tags":
        data |= {"langs": [["en"] * len(w) for w in sentences], "spans": [[] for _ in sentences]}
        features |= {"langs": Sequence(S), "spans": Sequence(S)}
    return Dataset.from_dict(data, features=Features(features))


def fixture(ref: DatasetRef, n: int, seed: int) -> Dataset:
    rng = random.Random(f"{ref.hub_id}/{ref.config}/{ref.split}/{seed}")
    hub = ref.hub_id
    if hub == "nyu-mll/glue":
        return glue(ref.config, n, rng)
    if hub == "facebook/xnli":
        return xnli(n, rng)
    if hub == "google-research-datasets/paws-x":
        return pawsx(n, rng)
    if hub in ("cambridgeltl/xcopa", "aps/super_glue"):
        return copa(n, rng, xcopa=hub == "cambridgeltl/xcopa")
    if hub == "allenai/social_i_qa":
        return social_iqa(n, rng)
    if hub in ("rajpurkar/squad", "juletxara/tydiqa_xtreme", "fgaim/tiquad"):
        return squad_like(n, rng, "squad")
    if hub in ("google/xquad", "facebook/mlqa", "alexandrainst/foqa"):
        return squad_like(n, rng, {"google/xquad": "xquad", "facebook/mlqa": "mlqa"}.get(hub, "foqa"))
    if hub == "unimelb-nlp/wikiann":
        return tagged(n, rng, "ner_tags", WIKIANN_TAGS)
    if hub == "google/xtreme":
        return tagged(n, rng, "pos_tags", UPOS)
    raise KeyError(f"no fixture for {hub}")


def write_fixtures(data_dir: Path, refs: list[DatasetRef], train_rows: int = 24, eval_rows: int = 8) -> None:
    for ref in refs:
        n = train_rows if ref.split == "train" else eval_rows
        name = f"{ref.split}/0000.parquet" if ref.layout == "export" else f"{ref.split}-00000-of-00001.parquet"
        target = data_dir / ref.hub_id / ref.config / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fixture(ref, n, seed=0).to_parquet(str(target))


# ---------------------------------------------------------------- MTEB and its training set
# Three task types of MTEB(eng, v2), a CoIR code-retrieval task and a bitext task of MTEB(Multilingual, v2).
MTEB_FIXTURE_TASKS = ("STSBenchmark", "ArguAna", "Banking77Classification", "CosQA", "BornholmBitextMining")


def write_triplets(data_dir: Path, ref: DatasetRef, n: int = 48) -> None:
    """MS MARCO triplets: the positive repeats the query's topic word, the negative does not."""
    rng = random.Random(0)
    rows = {"query": [], "positive": [], "negative": []}
    for i in range(n):
        topic, other = rng.sample(NOUNS, 2)
        rows["query"].append(f"where is the {topic} number {i}")
        rows["positive"].append(f"the {topic} number {i} is near the {rng.choice(NOUNS)}")
        rows["negative"].append(f"a {other} stands by the {rng.choice(NOUNS)}")
    target = data_dir / ref.hub_id / ref.config / f"{ref.split}-00000-of-00001.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=Features({k: S for k in rows})).to_parquet(str(target))


def _hub_repo(root: Path, configs: dict[str, dict[str, Dataset]]) -> None:
    """A snapshot of a hub dataset repository: parquet per config and split, and the README
    `configs:` block that tells `datasets` (and so mteb) where each config's files are."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}"] + (["  default: true"] if config == "default" else []) + ["  data_files:"]
        for split, data in splits.items():
            (root / config).mkdir(parents=True, exist_ok=True)
            data.to_parquet(str(root / config / f"{split}.parquet"))
            lines += [f"  - split: {split}", f"    path: {config}/{split}.parquet"]
    (root / "README.md").write_text("\n".join(lines + ["---"]) + "\n", encoding="utf-8")


def mteb_fixture(name: str, rng: random.Random) -> dict[str, dict[str, Dataset]]:
    if name == "STSBenchmark":
        first = [_sentence(rng) for _ in range(24)]
        second = [a if i % 3 == 0 else _sentence(rng) for i, a in enumerate(first)]
        scores = [5.0 if a == b else round(rng.uniform(0, 4), 2) for a, b in zip(first, second)]
        return {"default": {"test": Dataset.from_dict({"sentence1": first, "sentence2": second, "score": scores})}}
    if name in ("ArguAna", "CosQA"):
        docs = [{"_id": f"d{i}", "title": rng.choice(NOUNS), "text": _sentence(rng)} for i in range(20)]
        queries = [{"_id": f"q{i}", "text": docs[i]["text"]} for i in range(6)]
        qrels = [{"query-id": f"q{i}", "corpus-id": f"d{i}", "score": 1} for i in range(6)]
        return {"corpus": {"corpus": Dataset.from_list(docs)}, "queries": {"queries": Dataset.from_list(queries)},
                "default": {"test": Dataset.from_list(qrels)}}
    if name == "Banking77Classification":
        def split(n: int) -> Dataset:
            labels = [i % 4 for i in range(n)]
            return Dataset.from_dict({"text": [_sentence(rng, CUES[y % 3]) for y in labels], "label": labels})
        return {"default": {"train": split(32), "test": split(16)}}
    if name == "BornholmBitextMining":
        first = [_sentence(rng) for _ in range(12)]
        return {"default": {"test": Dataset.from_dict({"sentence1": first, "sentence2": list(first)})}}
    raise KeyError(name)


def write_mteb_fixtures(data_dir: Path, names: tuple[str, ...] = MTEB_FIXTURE_TASKS) -> None:
    import mteb

    for name in names:
        task = mteb.get_task(name)
        _hub_repo(data_dir / task.metadata.dataset["path"], mteb_fixture(name, random.Random(name)))


# ---------------------------------------------------------------- checkpoints
def xlmr_checkpoint(folder: Path, texts: list[str]) -> Path:
    """A small XLM-R (random weights) with a SentencePiece-style Unigram tokenizer trained on
    `texts`, saved as transformers saves FacebookAI/xlm-roberta-base."""
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(texts, vocab_size=400, special_tokens=specials, unk_token="<unk>")
    unigram.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram._tokenizer, bos_token="<s>", eos_token="</s>",
                                        sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                        mask_token="<mask>", model_max_length=512)
    config = XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2)
    XLMRobertaForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


def suite_refs(module) -> list[DatasetRef]:
    """Every split a fine-tuning suite module reads: its trainings' and its tasks'."""
    refs = [s.data for t in module.TRAININGS for s in t.steps] + [e.data for t in module.TASKS for e in t.evals]
    return list(dict.fromkeys(refs))
