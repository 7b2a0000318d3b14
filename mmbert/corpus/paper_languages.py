"""The paper's languages per phase, as FineWeb2 subsets.

`data/mmbert_language_counts.csv` holds the paper's token counts per language (ISO 639-3
keys, no script) for each phase: pretrain (61 rows incl. code), ext (mid-training, 110),
decay-eng, decay-mid (= Decay-Cont) and decay-all (1834). FineWeb2 names its subsets
`<code>_<Script>`; `data/fineweb2_subsets.csv` (FineWeb2's own language table,
`fineweb2-language-distribution.csv` of github.com/huggingface/fineweb-2 at commit d0defb24,
2025-10-27: subset, code, script, words, documents, bytes of the train split) maps a code to
its subset, the one with the most words where a language is written in several scripts. English and code come from
other sources (DCLM, StarCoder, ...): `eng_Latn` and `code`. 32 of decay-all's languages are
not FineWeb2 subsets in that table (together under 0.01% of the phase's tokens); they are
reported, not guessed.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
PAPER_COLUMNS = ("pretrain", "ext", "decay-eng", "decay-mid", "decay-all")
NOT_FINEWEB2 = {"eng": "eng_Latn", "code": "code"}
SELECTION_PREFIX = "paper:"


@lru_cache(maxsize=1)
def fineweb2_subsets() -> dict[str, dict[str, str]]:
    with (DATA / "fineweb2_subsets.csv").open(encoding="utf-8") as handle:
        return {row["subset"]: row for row in csv.DictReader(handle)}


def _words(row: dict[str, str]) -> int:
    return int(row["words"]) if row["words"].isdigit() else 0  # '-': not counted in the table


@lru_cache(maxsize=1)
def _subset_by_code() -> dict[str, str]:
    best: dict[str, str] = {}
    for subset, row in fineweb2_subsets().items():
        current = best.get(row["code"])
        if current is None or _words(row) > _words(fineweb2_subsets()[current]):
            best[row["code"]] = subset
    return best


def subset_for(code: str) -> str | None:
    """ISO 639-3 code → its FineWeb2 subset ('fao' → 'fao_Latn'); None if FineWeb2 has none."""
    return NOT_FINEWEB2.get(code) or _subset_by_code().get(code)


@lru_cache(maxsize=8)
def paper_counts(column: str) -> dict[str, int]:
    """The paper's tokens per language (ISO 639-3 key) in one phase, largest first."""
    if column not in PAPER_COLUMNS:
        raise ValueError(f"no phase {column!r} in the paper's table; expected one of {list(PAPER_COLUMNS)}")
    with (DATA / "mmbert_language_counts.csv").open(encoding="utf-8") as handle:
        counts = {row["language"]: int(row[column]) for row in csv.DictReader(handle) if int(row[column]) > 0}
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def paper_languages(column: str) -> list[str]:
    """The phase's languages as our codes (FineWeb2 subsets, eng_Latn, code), largest first."""
    return [subset for code in paper_counts(column) if (subset := subset_for(code)) is not None]


def unmapped(column: str) -> list[str]:
    return [code for code in paper_counts(column) if subset_for(code) is None]


def paper_column(selection: object) -> str | None:
    """'paper:ext' → 'ext'; anything else → None."""
    if isinstance(selection, str) and selection.startswith(SELECTION_PREFIX):
        return selection.removeprefix(SELECTION_PREFIX)
    return None
