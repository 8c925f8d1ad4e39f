"""The live evaluation's figures, from pairs of outcomes and scores."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import roc_auc_score

from stream.model_files import load_default_models
from stream.readmodel.evaluation import Pair, auc, summarize


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_sklearn_with_ties(seed: int) -> None:
    rng = random.Random(seed)
    scores = [float(rng.randint(0, 12)) for _ in range(80)]  # many ties
    labels = [int(rng.random() < 0.2 + s / 20) for s in scores]
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_needs_both_labels() -> None:
    assert auc([1.0, 2.0], [1, 1]) is None
    assert auc([], []) is None


def pair(lead: str, outcome: str, total: float, at: float, fit: float = 10.0) -> Pair:
    return Pair(lead=lead, outcome=outcome, total=total, fit=fit, engagement=total - fit, at=at)


def test_precision_and_conversion_at_the_mql_threshold() -> None:
    b2b = load_default_models().get("b2b")  # MQL at total >= 50 with fit >= 0
    pairs = [
        pair("a", "sales_accepted", 70, 1),  # MQL at its first outcome, then won
        pair("a", "closed_won", 80, 2),
        pair("b", "sales_accepted", 55, 1),  # MQL, accepted, then lost
        pair("b", "closed_lost", 52, 3),
        pair("c", "sales_rejected", 60, 1),  # MQL, rejected
        pair("d", "sales_rejected", 20, 1),  # below the threshold
        pair("e", "closed_won", 45, 1),  # below at its first outcome
        pair("f", "disqualified", 90, 1, fit=-5),  # above the total but not the fit
    ]
    result = summarize("b2b", pairs, b2b)
    assert (result.outcomes, result.positives, result.negatives) == (8, 4, 4)
    # at or above 50 with fit >= 0: a70 a80 b55 b52 c60 -> good a70 a80 b55
    assert result.at_mql == 5
    assert result.precision_at_mql == pytest.approx(3 / 5)
    # MQL leads at their first outcome: a, b, c; accepted: a, b; won: a
    assert result.mql_leads == 3
    assert result.mql_to_sql == pytest.approx(2 / 3)
    assert result.mql_to_won == pytest.approx(1 / 3)
    assert result.mql_threshold == 50 and result.shadow is False
    labels = [1, 1, 1, 0, 0, 0, 1, 0]
    assert result.auc == pytest.approx(roc_auc_score(labels, [p.total for p in pairs]))
    assert result.by_outcome == {
        "closed_lost": 1,
        "closed_won": 2,
        "disqualified": 1,
        "sales_accepted": 2,
        "sales_rejected": 2,
    }


def test_a_model_without_outcomes_or_definition() -> None:
    result = summarize("gone", [], None)
    assert result.outcomes == 0 and result.auc is None and result.precision_at_mql is None
    assert result.shadow is None and result.mql_threshold is None
