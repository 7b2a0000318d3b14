"""The suites' metrics against values computed by hand on a few examples."""

from __future__ import annotations

import math

import pytest

from mmbert.suites import metrics


def test_accuracy_and_f1():
    labels, predictions = [1, 0, 1, 1, 0], [1, 1, 0, 1, 0]
    assert metrics.accuracy(labels, predictions) == pytest.approx(60.0)
    # positive class: tp 2, fp 1, fn 1 -> precision 2/3, recall 2/3
    assert metrics.f1(labels, predictions) == pytest.approx(100 * 2 / 3)


def test_matthews_correlation():
    labels, predictions = [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1]
    tp, tn, fp, fn = 2, 2, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.matthews(labels, predictions) == pytest.approx(100 * expected)  # 33.33


def test_spearman_uses_ranks():
    # ranks of x: 1 2 3 4 5; of y: 2 1 4 3 5 -> d^2 sum 4 -> 1 - 6*4/(5*24) = 0.8
    assert metrics.spearman([0.1, 0.5, 2.0, 3.0, 4.9], [1.2, 0.3, 9.0, 5.0, 10.0]) == pytest.approx(80.0)


def test_squad_normalises_case_articles_and_punctuation():
    scores = metrics.squad([["The Cat!"], ["a big dog", "dog"], ["Paris"]], ["cat", "big dog", "London"])
    # exact: 'cat' == 'cat'; 'big dog' == 'big dog' (article dropped); London misses
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * 2 / 3)


def test_squad_token_f1_takes_the_best_gold_answer():
    # 'the red house' vs gold 'red brick house': common {red, house}: P 2/2, R 2/3 -> F1 0.8
    assert metrics.squad([["red brick house", "blue door"]], ["the red house"])["f1"] == pytest.approx(80.0)


def test_squad_strips_geez_punctuation():
    # '።' (Ethiopic full stop) is not ASCII punctuation; stripped, the answers match exactly
    assert metrics.squad([["ኣስመራ"]], ["ኣስመራ።"])["exact_match"] == pytest.approx(100.0)


def test_span_f1_counts_whole_entities():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    guess = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    # gold entities 3, predicted 3, correct 2 (PER, ORG) -> P = R = 2/3
    assert metrics.span_f1(gold, guess) == pytest.approx(100 * 2 / 3)


def test_ndcg_at_10_from_mteb_scorer():
    """mteb's own retrieval scorer, on a ranking computed by hand."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    qrels = {"q1": {"d1": 1, "d3": 1}}
    run = {"q1": {"d2": 0.9, "d1": 0.8, "d4": 0.7, "d3": 0.6}}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # relevant at ranks 2 and 4
    ideal = 1 / math.log2(2) + 1 / math.log2(3)
    scores = calculate_retrieval_scores(run, qrels, [10])
    assert scores.ndcg["NDCG@10"] == pytest.approx(dcg / ideal, abs=1e-5)
