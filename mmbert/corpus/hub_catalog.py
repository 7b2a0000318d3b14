"""The paper's hub sources: where each lives, at which revision, in which layout, and which
of our languages it provides. Facts come from ../shared/reference/datasets.md and the
datasets' own cards. Revisions and layouts can be changed without code: `corpus.hub.revisions`
and `corpus.hub.patterns` override the entries below.

A source either provides one language for every file (English web, code, ...), or is split
into per-language subsets (FineWeb2 `<code>_<Script>`), in which case a phase's budget for it
is spread over the phase's languages by temperature, like the corpus mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ENGLISH, CODE = "eng_Latn", "code"
Format = Literal["parquet", "jsonl", "mds-tokens"]


@dataclass(frozen=True)
class HubSpec:
    """One hub dataset (or one part of one) as a corpus source."""

    name: str
    repo: str
    revision: str | None  # None: no pinned commit is known; corpus.hub.revisions must give one
    pattern: str  # files inside the repo, a glob; '{subset}' for per-language sources
    format: Format
    language: str | None  # the one language of every file; None: per-language subsets
    tokens_per_byte: float  # tokens per stored (compressed) byte, to plan downloads before reading
    text_field: str = "text"
    id_field: str | None = "id"
    gated: bool = False
    # Sources whose files are not in the repository but listed in it by URL (Dolma v1.7): the
    # list's path in the repository and the URL prefix that paths are relative to.
    urls_file: str | None = None
    url_root: str | None = None
    # A per-language source's subsets as its card lists them, where known: budgets are planned
    # on them before the source is listed (the mix stage then uses what the listing holds).
    subsets: frozenset[str] | None = None

    def files_pattern(self, subset: str | None) -> str:
        return self.pattern.format(subset=subset) if self.language is None else self.pattern


# tokens_per_byte: web text in zstd/snappy parquet or zstd/gzip JSON lines stores about 1.3-1.6
# bytes per token (about 4 characters per token, compressed about 3x); the plan adds the
# margin of corpus.hub.plan_margin. MDS tokens are stored as 4-byte ids.
# Revisions are commits pinned in public code that reads these datasets (FineWeb2, DCLM,
# Dolmino, Dolma, ProLong); layouts from the repositories' trees as that code lists them.
# The official data was prepared like Ettin's (JHU-CLSP/ettin-encoder-vs-decoder): Dolma v1.7
# subsets fetched from the URLs its hub repository lists, hub datasets by their text column.
DOLMA_ROOT = "https://olmo-data.org/dolma-v1_7/"
# MegaWika's 50 Wikipedias (the card of hltcoe/megawika, MegaWika 1; MegaWika 2's list is unconfirmed)
MEGAWIKA_LANGUAGES = frozenset("af ar az bn cs de en es et fa fi fr ga gl gu he hi hr id it ja ka kk km ko lt lv mk ml "
                               "mn mr my ne nl pl ps pt ro ru si sl sv ta th tr uk ur vi xh zh".split())
DOLMA = {"repo": "allenai/dolma", "revision": "7f48140530a023e9ea4c5cfb141160922727d4d3", "format": "jsonl",
         "urls_file": "urls/v1_7.txt", "url_root": DOLMA_ROOT}
DOLMINO = ("allenai/dolmino-mix-1124", "a319f19eef1e257417b11ea8c30da266ae175557")
PROLONG = ("princeton-nlp/prolong-data-64K", "1447128c751f0fbc7d2082b2a113a938426a9bba")
CATALOG: dict[str, HubSpec] = {spec.name: spec for spec in (
    HubSpec("fineweb2", "HuggingFaceFW/fineweb-2", "af9c13333eb981300149d5ca60a8e9d659b276b9",
            "data/{subset}/train/*.parquet", "parquet", None, 0.7),
    # {text, url, metadata}: no id column
    HubSpec("dclm", "mlfoundations/dclm-baseline-1.0", "a3b142c183aebe5af344955ae20836eb34dcf69b",
            "global-shard_*/local-shard_*/*.jsonl.zst", "jsonl", ENGLISH, 0.7, id_field=None),
    HubSpec("dolmino-dclm", *DOLMINO, "data/dclm/*/*.json.zst", "jsonl", ENGLISH, 0.7),
    HubSpec("dolmino-flan", *DOLMINO, "data/flan/*.json.gz", "jsonl", ENGLISH, 0.7),
    HubSpec("dolmino-math", *DOLMINO, "data/math/**/*.jsonl*", "jsonl", ENGLISH, 0.7),  # .jsonl, .gz and .zst
    HubSpec("dolmino-pes2o", *DOLMINO, "data/pes2o/*.json.gz", "jsonl", ENGLISH, 0.7),
    HubSpec("dolmino-stackexchange", *DOLMINO, "data/stackexchange/*.json.gz", "jsonl", ENGLISH, 0.7),
    HubSpec("starcoder", pattern="starcoder/*.json.gz", language=CODE, tokens_per_byte=0.7, **DOLMA),
    HubSpec("arxiv", pattern="redpajama-arxiv/*.json.gz", language=ENGLISH, tokens_per_byte=0.7, **DOLMA),
    HubSpec("pes2o", pattern="pes2o/*.json.gz", language=ENGLISH, tokens_per_byte=0.7, **DOLMA),
    HubSpec("stackexchange", pattern="redpajama-stackexchange/*.json.gz", language=ENGLISH, tokens_per_byte=0.7,
            **DOLMA),
    # the folder of the tulu_flan-NNNN.json.gz files is unconfirmed
    HubSpec("tulu-flan", pattern="tulu_flan/*.json.gz", language=ENGLISH, tokens_per_byte=0.7, **DOLMA),
    HubSpec("books", pattern="books/*.json.gz", language=ENGLISH, tokens_per_byte=0.7, **DOLMA),
    # MegaWika 2: 50 languages by two-letter code; its file layout and a revision are
    # unconfirmed, so corpus.hub.revisions (and patterns, if the layout differs) must give them.
    HubSpec("megawika", "jhu-clsp/megawika-2", None, "{subset}/*.jsonl", "jsonl", None, 0.35, id_field=None,
            subsets=MEGAWIKA_LANGUAGES),
    # MDS of Llama 3 ids, 64K-token rows of whole documents ('indices': their boundaries),
    # one index.json per procNN-64 folder
    HubSpec("prolong-code", *PROLONG, "thestackv1_concat_by_repo-65536/*/*.mds", "mds-tokens", CODE, 0.25,
            id_field=None),
    HubSpec("prolong-textbooks", *PROLONG, "textbooks/*/*.mds", "mds-tokens", ENGLISH, 0.25, id_field=None),
)}


def holds(spec: HubSpec, lang: str) -> bool:
    """Whether a per-language source is known to have `lang` (True where its list is unknown)."""
    return spec.subsets is None or subset_name(spec, lang) in spec.subsets


def subset_name(spec: HubSpec, lang: str) -> str:
    """Our language code → the source's subset name (FineWeb2 names subsets as we do)."""
    if spec.name == "megawika":  # 50 languages by two-letter code (its layout is unconfirmed)
        from mmbert.corpus.langcodes import iso639_1

        code = lang.split("_")[0]
        return iso639_1(code) or code
    return lang
