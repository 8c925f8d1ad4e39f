"""The live evaluation's micro-benchmark runs and prints its figures."""

from __future__ import annotations

import pytest
from sklearn.metrics import roc_auc_score

from stream.bench import evaluation
from stream.readmodel.evaluation import POSITIVE, pairs_from


def test_it_prints_the_time_of_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluation.main(["--outcomes", "500", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "500 outcomes of one model" in out
    for step in ("decode", "figures", "total"):
        assert f"  {step} " in out and " ms" in out


def test_its_outcomes_separate_good_from_bad() -> None:
    pairs = pairs_from(evaluation.stored_outcomes(400))
    labels = [int(p.outcome in POSITIVE) for p in pairs]
    assert roc_auc_score(labels, [p.total for p in pairs]) > 0.7
