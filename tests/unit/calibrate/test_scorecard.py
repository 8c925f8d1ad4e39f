"""The scorecard's fit: numeric bins coded cumulatively, read back as points per bin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream.calibrate.scorecard import Options, Scorecard, fit_scorecard
from stream.calibrate.table import Role, prepare


def make_leads(n: int = 5000, seed: int = 6) -> pd.DataFrame:
    """A number whose close rate rises steadily (with blanks), a count of visits, an industry,
    and a pair (industry by size) the additive part cannot say."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(4.0, 1.2, n).round(0)
    visits = rng.poisson(2.0, n)
    industry = rng.choice(["retail", "saas", "bank", "energy"], size=n)
    logit = -3.0 + 0.6 * np.log1p(size) - 1.2 + 0.3 * visits
    logit += 1.0 * ((industry == "saas") & (size > 100))
    bought = rng.random(n) < 1 / (1 + np.exp(-logit))
    size[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {"employees": size, "visits": visits, "industry": industry,
         "bought": np.where(bought, "yes", "no")}
    )  # fmt: skip


def _logits_from_bins(card: Scorecard, frame: pd.DataFrame) -> np.ndarray:
    """The intercept plus every row's bin weights and cell weights, read off the bins."""
    total = np.full(len(frame), float(card.model.intercept_[0]))
    for feature in card.features:
        weights = np.array([b.weight for b in feature.bins] + [0.0])
        total += weights[feature.index(frame[feature.column.name].to_numpy())]
    for pair in card.interactions:
        weights = np.zeros(len(pair.a.bins) * len(pair.b.bins) + 1)
        for (i, j), cell in pair.cells.items():
            weights[i * len(pair.b.bins) + j] = cell.weight
        total += weights[pair.index(frame)]
    return total


@pytest.mark.parametrize("ordinal", [True, False])
def test_each_bins_weight_is_what_the_regression_gives_its_leads(ordinal: bool) -> None:
    table = prepare(make_leads(), target="bought", roles={"visits": Role.COUNT})
    frame, y = table.frame, table.target
    options = Options(folds=0, interactions=1, ordinal=ordinal)
    card = fit_scorecard(table.features, frame, y, options)
    employees = next(f for f in card.features if f.column.name == "employees")
    assert employees.ordinal is ordinal and employees.has_missing
    assert card.interactions
    logits = card.model.decision_function(card.design(frame))
    np.testing.assert_allclose(_logits_from_bins(card, frame), logits, atol=1e-9)
    # and the points are those weights scaled: totals rank the leads as the regression does
    points = np.array([b.points for b in employees.ranges])
    assert points[-1] > points[0]


def test_cumulative_coding_pulls_neighbouring_bins_together() -> None:
    """A fused penalty: with many bins on few leads, the steps between neighbouring bins are
    smaller, for the spread of the weights, than when each bin's weight is pulled towards 0
    on its own (the penalty is on the squared steps)."""
    table = prepare(make_leads(n=1500, seed=7), target="bought")
    frame, y = table.frame, table.target

    def roughness(ordinal: bool) -> float:
        options = Options(folds=0, interactions=0, max_bins=40, ordinal=ordinal)
        card = fit_scorecard(table.features, frame, y, options)
        employees = next(f for f in card.features if f.column.name == "employees")
        weights = np.array([b.weight for b in employees.ranges])
        return float((np.diff(weights) ** 2).sum() / np.var(weights))

    assert roughness(True) < roughness(False)
