"""Pairs of attributes crossed into fit rules with `and`, chosen by cross-validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream.calibrate.rows import lead_events, model_inputs
from stream.calibrate.run import Calibration, calibrate
from stream.calibrate.score import score_table
from stream.calibrate.scorecard import Options, _candidates, _gain, _with_pairs, fit_scorecard
from stream.calibrate.table import prepare
from stream.cli import main


def make_shop(n: int = 4000, seed: int = 4) -> pd.DataFrame:
    """Sessions that buy when the basket is large in the sale months: an interaction no
    additive scorecard can express (a large basket alone, or the month alone, means little)."""
    rng = np.random.default_rng(seed)
    month = rng.choice(["jan", "feb", "mar", "nov", "dec"], size=n)
    basket = rng.exponential(40.0, n).round(2)
    pages = rng.poisson(5, n)
    region = rng.choice(["north", "south", "east"], size=n)
    sale = np.isin(month, ["nov", "dec"])
    logit = -2.5 + 3.0 * (sale & (basket > 40)) - 1.0 * (~sale & (basket > 40)) + 0.1 * pages
    bought = rng.random(n) < 1 / (1 + np.exp(-logit))
    basket[rng.random(n) < 0.03] = np.nan  # some sessions without a basket value
    return pd.DataFrame(
        {"month": month, "basket_value": basket, "pages": pages, "region": region,
         "bought": np.where(bought, "yes", "no")}
    )  # fmt: skip


@pytest.fixture(scope="module")
def crossed() -> Calibration:
    table = prepare(make_shop(), target="bought")
    return calibrate(table, options=Options(folds=3))


def test_cross_validation_finds_the_pair_and_it_ranks_better(crossed: Calibration) -> None:
    card = crossed.card
    assert card.interactions, card.cv_by_interactions
    assert {card.interactions[0].a.column.name, card.interactions[0].b.column.name} == {
        "month",
        "basket_value",
    }
    assert set(card.cv_by_interactions) == {0, 1, 2, 4, 8}
    assert card.cv_by_interactions[len(card.interactions)] > card.cv_by_interactions[0] + 0.02
    additive = calibrate(crossed.table, options=Options(folds=0), stream_check=0)
    assert not additive.card.interactions
    assert crossed.auc_points > additive.auc_points + 0.02


def test_cells_are_fit_rules_with_and_that_score_from_zero(crossed: Calibration) -> None:
    model = crossed.models.get("calibrated")
    paired = [rule for rule in model.fit if rule.and_]
    assert paired
    assert all(len(rule.fields) == 2 for rule in paired)
    for pair in crossed.card.interactions:
        points = [cell.points for cell in pair.cells.values()]
        assert min(points) == 0
        assert len(pair.cells) == len(pair.a.bins) * len(pair.b.bins)


def test_held_out_leads_score_the_same_through_the_pure_core(crossed: Calibration) -> None:
    rows = crossed.table.raw.iloc[crossed.test].reset_index(drop=True)
    streamed = score_table(rows, crossed.models, target="bought").totals
    assert np.array_equal(streamed, crossed.test_scores)
    assert crossed.stream_auc is not None
    assert abs(crossed.stream_auc - crossed.auc_points) < 0.005


def test_the_crossed_attributes_travel_in_the_first_profile_event(crossed: Calibration) -> None:
    names = {p.a.column.name for p in crossed.card.interactions}
    names |= {p.b.column.name for p in crossed.card.interactions}
    inputs = model_inputs(crossed.models.get("calibrated"), crossed.table.raw).inputs
    assert {i.column for i in inputs[: len(names)]} == names
    assert all(i.paired for i in inputs[: len(names)])
    row = crossed.table.raw.iloc[0].to_dict()
    first = next(iter(lead_events("lead-1", row, inputs)))
    custom = first.traits.custom  # type: ignore[attr-defined]
    assert {i.key for i in inputs[: len(names)]} <= set(custom)


def test_a_fixed_number_of_pairs_skips_the_choice(crossed: Calibration) -> None:
    two = calibrate(crossed.table, options=Options(folds=0, interactions=2), stream_check=300)
    assert len(two.card.interactions) == 2
    assert two.card.cv_by_interactions == {}
    assert two.stream_auc is not None
    assert abs(two.stream_auc - two.stream_offline_auc) < 0.005


def test_a_worker_loads_the_model_with_pairs(crossed: Calibration, tmp_path: Path) -> None:
    from factories import make_settings

    from stream.app import create_app

    path = tmp_path / "calibrated.yaml"
    path.write_text(crossed.yaml_text, encoding="utf-8")
    assert main(["rules", "validate", str(path)]) == 0
    app = create_app(make_settings(models_path=path))
    assert app is not None


def make_two_pairs(n: int = 6000, seed: int = 5) -> pd.DataFrame:
    """Two interactions (basket value by month, age by region) and a second copy of the basket
    value (`basket_total`, the same figure rounded): crossed with the month it says what the
    basket value says, so after that pair the next worth having is age by region."""
    rng = np.random.default_rng(seed)
    month = rng.choice(["jan", "feb", "mar", "nov", "dec"], size=n)
    basket = rng.exponential(40.0, n).round(2)
    region = rng.choice(["north", "south", "east"], size=n)
    age = rng.integers(20, 70, n)
    sale, north = np.isin(month, ["nov", "dec"]), region == "north"
    logit = (
        -2.0
        + 3.0 * (sale & (basket > 40))
        - 1.5 * (~sale & (basket > 40))
        + 1.5 * (north & (age > 50))
        - 1.0 * (north & (age <= 50))
    )
    bought = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"month": month, "basket_value": basket, "basket_total": basket.round(0),
         "region": region, "age": age, "bought": np.where(bought, "yes", "no")}
    )  # fmt: skip


def test_each_pair_is_chosen_on_what_the_pairs_before_it_left_unexplained() -> None:
    table = prepare(make_two_pairs(), target="bought")
    frame, y = table.frame, table.target
    options = Options(folds=0, interactions=2)
    additive = _with_pairs(table.features, frame, y, options, (0,))[0]
    probability = additive.probability(frame)
    residual, hessian = y - probability, probability * (1 - probability)
    candidates = _candidates(table.features, frame, y, options)
    gains = {
        frozenset((p.a.column.name, p.b.column.name)): _gain(p, p.index(frame), residual, hessian)
        for p in candidates
    }
    first, second = sorted(gains, key=lambda names: -gains[names])[:2]
    # ranked once on the additive model, the two basket pairs come first: the same pair twice
    assert {first, second} == {
        frozenset(("month", "basket_value")),
        frozenset(("month", "basket_total")),
    }
    card = fit_scorecard(table.features, frame, y, options)
    chosen = [frozenset((p.a.column.name, p.b.column.name)) for p in card.interactions]
    assert chosen[0] == first
    assert chosen[1] == frozenset(("region", "age"))
