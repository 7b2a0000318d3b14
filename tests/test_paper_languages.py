"""The paper's languages per phase, from its token-count table, as FineWeb2 subsets."""

from __future__ import annotations

import pytest

from mmbert.config import ConfigError, parse_config
from mmbert.corpus.paper_languages import (fineweb2_subsets, paper_counts, paper_languages, subset_for,
                                           unmapped)
from mmbert.preset import preset_values
from mmbert.schedules import active_languages


def test_the_papers_phases_hold_60_110_and_1833_languages_plus_code():
    assert [len(paper_counts(c)) for c in ("pretrain", "ext", "decay-eng", "decay-mid", "decay-all")] == [
        61, 110, 110, 110, 1834]
    assert "code" in paper_counts("pretrain") and "code" in paper_counts("decay-all")
    pretrain, ext, everything = (set(paper_languages(c)) for c in ("pretrain", "ext", "decay-all"))
    assert pretrain < ext < everything  # each phase adds languages, none is dropped


def test_iso_codes_map_to_fineweb2_subsets():
    assert [subset_for(c) for c in ("fao", "tir", "cmn", "arb", "eng", "code", "srp")] == [
        "fao_Latn", "tir_Ethi", "cmn_Hani", "arb_Arab", "eng_Latn", "code", "srp_Cyrl"]
    subsets = fineweb2_subsets()
    assert all(s in subsets or s in ("eng_Latn", "code") for s in paper_languages("decay-all"))
    assert len(unmapped("decay-all")) == 32 and unmapped("ext") == []
    assert sum(paper_counts("decay-all")[c] for c in unmapped("decay-all")) < 1e-4 * sum(
        paper_counts("decay-all").values())


def test_a_phase_selects_the_papers_list_in_the_papers_order():
    sizes = {lang: 1 for lang in paper_languages("decay-all")}
    chosen = active_languages("paper:ext", sizes)
    assert chosen == paper_languages("ext") and chosen[:3] == ["eng_Latn", "rus_Cyrl", "cmn_Hani"]
    with pytest.raises(ValueError, match="not in the corpus"):
        active_languages("paper:ext", {"eng_Latn": 1})


@pytest.mark.parametrize("preset", ["paper-small", "paper-base"])
def test_paper_presets_use_the_papers_lists(preset):
    cfg = parse_config(preset_values(preset))
    assert {n: p.data.languages for n, p in cfg.phases.items()} == {
        "pretrain": "paper:pretrain", "midtrain": "paper:ext", "decay-eng": "paper:decay-eng",
        "decay-cont": "paper:decay-mid", "decay-all": "paper:decay-all"}


def test_the_corpus_check_names_the_missing_paper_languages():
    from mmbert.corpus.catalog import check_corpus_fits

    raw = preset_values("embedded")
    raw["phases"]["midtrain"]["data"]["languages"] = "paper:ext"
    with pytest.raises(ConfigError, match=r"phases.midtrain.data.languages = paper:ext: \d+ of its 110 languages"):
        check_corpus_fits(parse_config(raw))


def test_an_unknown_paper_phase_is_refused():
    raw = preset_values("embedded")
    raw["phases"]["midtrain"]["data"]["languages"] = "paper:midtrain"
    with pytest.raises(ConfigError, match="phases.midtrain.data.languages"):
        parse_config(raw)
