"""The run report: each figure's data follows the run's files (change a manifest, a log or a
result and the figure's numbers change with it). The stage on a whole pipeline's outputs,
and its page opened in a real browser, are tests/test_e2e.py's."""

from __future__ import annotations

import pytest

from mmbert.report import NAMED, decay_languages, language_shares, throughput, training_curves


def _manifest(shares: dict[str, float], targets: dict[str, float] | None = None) -> dict:
    targets = targets or shares
    return {"per_language": {lang: {"share": s, "target_share": targets[lang], "tokens": 1} for lang, s in shares.items()}}


def test_language_shares_name_the_largest_and_group_the_rest():
    first = {f"l{i:02d}": (12 - i) / 78 for i in range(12)}  # 12 languages, shares 12/78 ... 1/78
    second = dict(first, new_Latn=0.0)
    data = language_shares(["a", "b"], {"a": _manifest(first), "b": _manifest(second)}, {"a": 0.7, "b": 0.3})
    named = data[0]["shares"][:NAMED]
    assert [s["language"] for s in named] == [f"l{i:02d}" for i in range(8)]
    assert data[0]["shares"][-1] == {"language": "4 others", "target": pytest.approx(10 / 78),
                                     "realised": pytest.approx(10 / 78)}
    assert (data[0]["languages"], data[0]["new"], data[1]["languages"], data[1]["new"]) == (12, 12, 13, 1)
    assert data[1]["temperature"] == 0.3
    # the figure follows its input: another realised share in the manifest, another bar
    changed = dict(first, l00=0.5)
    again = language_shares(["a"], {"a": _manifest(changed, first)}, {"a": 0.7})
    assert again[0]["shares"][0] == {"language": "l00", "target": pytest.approx(12 / 78), "realised": 0.5}


def test_decay_languages_throughput_and_curves_follow_their_inputs():
    metrics = {"models": {"midtrain": {"heldout_loss": {"decay_only": 9.0}},
                          "decay-all": {"heldout_loss": {"decay_only": 6.5}}}, "groups": {"decay_only": 40}}
    lowres = {"merged": {"tiquad": {"score": 21.0}, "foqa": {"score": 70.0}}}
    paper = {"tiquad": {"merged": 20.1}}
    data = decay_languages(metrics, "midtrain", lowres, paper)
    assert data == {"base": "midtrain", "decay_only_loss": {"midtrain": 9.0, "decay-all": 6.5}, "languages": 40,
                    "f1": {"merged": {"tiquad": 21.0, "foqa": 70.0}}, "paper_f1": paper}
    bench = {"models": {"m": {"scenarios": {"fixed": {"tokens_per_second": 10.0}, "variable": {"tokens_per_second": 7.5}}}}}
    assert throughput(bench) == [{"model": "m", "scenario": "fixed", "tokens_per_second": 10.0},
                                 {"model": "m", "scenario": "variable", "tokens_per_second": 7.5}]
    log = [{"tokens": "100", "loss": "5", "lr": "0.1", "mask_rate": "0.3", "batch": "4"},
           {"tokens": "200", "loss": "4", "lr": "0.1", "mask_rate": "0.3", "batch": "4"}]
    curves = training_curves(["pre", "mid", "decay"], {"pre": None, "mid": "pre", "decay": "mid"},
                             {"pre": log, "mid": log, "decay": log},
                             {"pre": {"tokens": 250}, "mid": {"tokens": 300, "heldout_loss": 3.5}, "decay": {}})
    assert [c["start"] for c in curves] == [0.0, 250.0, 550.0]  # each phase starts where its base ended
    assert curves[1]["tokens"] == [350.0, 450.0] and curves[1]["heldout_loss"] == 3.5
