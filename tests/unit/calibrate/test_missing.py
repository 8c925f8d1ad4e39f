"""A missing attribute is `(missing)` in training and in the stream, whatever pandas made of it.

pandas 3 reads a blank text cell as NaN where pandas 2 gave None (or NaN), a nullable column holds
pd.NA, and tables carry placeholders ("N/A", "unknown", ""). The frames are built by hand, cell by
cell, so the tests do not depend on the installed pandas: every spelling of "not given" must give
the same model, with a `(missing)` bin and no `nan` category, and an integration that sends the
text `(missing)` (as the README says) must get that bin's points.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from schemas.events import ProfileUpdated, Traits
from stream.calibrate.rows import REPLAY_AT, model_inputs
from stream.calibrate.run import Calibration, calibrate
from stream.calibrate.score import score_table
from stream.calibrate.scorecard import Options
from stream.calibrate.table import prepare
from stream.calibrate.values import MISSING, category, is_missing, number
from stream.scoring import apply_all, score_at

N = 3000
RATES = {"basic": 0.08, "pro": 0.25, "team": 0.4, None: 0.5}
"""Conversion by plan: leads who gave none convert most (so the `(missing)` bin has points)."""


def _draw() -> tuple[list[str | None], list[int], list[str]]:
    rng = np.random.default_rng(11)
    plans: list[str | None] = list(rng.choice(["basic", "pro", "team", ""], size=N))
    plans = [p or None for p in plans]
    visits = rng.poisson(2, N).tolist()
    converted = [rng.random() < RATES[p] for p in plans]
    return plans, visits, ["yes" if c else "no" for c in converted]


def _frame(missing: Any) -> pd.DataFrame:
    """The same leads; a missing plan written as `missing(i)` (the i-th missing cell)."""
    plans, visits, converted = _draw()
    cells: list[object] = []
    n = 0
    for plan in plans:
        if plan is None:
            cells.append(missing(n))
            n += 1
        else:
            cells.append(plan)
    return pd.DataFrame(
        {
            "plan": pd.Series(cells, dtype="object"),
            "visits": visits,
            "converted": pd.Series(converted, dtype="object"),
        }
    )


SPELLINGS = {
    "NaN (pandas 3 reads a blank text cell so)": lambda i: np.nan,
    "None (pandas 2)": lambda i: None,
    "pd.NA (nullable columns)": lambda i: pd.NA,
    "placeholders": lambda i: ["", "  ", "N/A", "unknown", "null", "(missing)"][i % 6],
}


@pytest.fixture(scope="module")
def fitted() -> dict[str, Calibration]:
    options = Options(folds=0, interactions=0)
    return {
        name: calibrate(prepare(_frame(missing), target="converted"), options=options)
        for name, missing in SPELLINGS.items()
    }


def test_every_value_helper_treats_every_spelling_as_missing() -> None:
    for cell in (None, np.nan, pd.NA, pd.NaT, float("nan"), "", "  ", "N/A", "unknown", MISSING):
        assert is_missing(cell), cell
        assert category(cell) is None, cell
        assert np.isnan(number(cell)), cell
    assert category(3.0) == "3"
    assert category(True) == "true"
    assert category(" pro ") == "pro"
    assert number(" 12.5 ") == 12.5
    assert np.isnan(number("1_000"))


@pytest.mark.parametrize("name", SPELLINGS)
def test_a_missing_plan_is_the_missing_bin_never_a_nan_category(
    fitted: dict[str, Calibration], name: str
) -> None:
    result = fitted[name]
    plan = next(f for f in result.card.features if f.column.name == "plan")
    labels = [b.label for b in plan.bins]
    assert sorted(labels) == sorted(["basic", "pro", "team", MISSING]), labels
    missing = plan.bins[labels.index(MISSING)]
    assert missing.rows == int(pd.isna(_frame(lambda i: None)["plan"]).iloc[result.train].sum())
    assert missing.points > 0
    rules = result.models.get("calibrated").fit
    assert [r.points for r in rules if r.equals == MISSING] == [missing.points]


def test_the_model_does_not_depend_on_how_missing_is_spelled(
    fitted: dict[str, Calibration],
) -> None:
    texts = {result.yaml_text for result in fitted.values()}
    assert len(texts) == 1


@pytest.mark.parametrize("name", SPELLINGS)
def test_the_stream_check_agrees_lead_by_lead(fitted: dict[str, Calibration], name: str) -> None:
    result = fitted[name]
    assert result.stream_rows == len(result.test)
    assert result.stream_differ == 0
    assert result.stream_auc == result.stream_offline_auc


def test_an_integration_sending_missing_as_the_readme_says_gets_the_bins_points(
    fitted: dict[str, Calibration],
) -> None:
    result = fitted["NaN (pandas 3 reads a blank text cell so)"]
    models = result.models
    plan = next(f for f in result.card.features if f.column.name == "plan")
    points = {b.label: b.points for b in plan.bins}
    for value, expected in [(MISSING, points[MISSING]), ("Pro", points["pro"])]:
        event = ProfileUpdated(
            event_id=f"e-{value}",
            occurred_at=REPLAY_AT,
            lead_id="lead-1",
            source="crm",
            traits=Traits(custom={"plan": value}),
        )
        state = apply_all(None, event, models=models, lead_id="lead-1").state
        assert state is not None
        assert score_at(state.models["calibrated"], REPLAY_AT).fit == expected, value


def test_a_table_scored_later_sends_missing_for_every_spelling(
    fitted: dict[str, Calibration],
) -> None:
    result = fitted["None (pandas 2)"]
    inputs = model_inputs(result.models.get("calibrated"), _frame(lambda i: None)).inputs
    plan = next(i for i in inputs if i.column == "plan")
    assert plan.kind == "text" and plan.missing
    mixed = pd.DataFrame(
        {
            "plan": pd.Series([None, np.nan, pd.NA, "", "N/A", "unknown", "pro"], dtype="object"),
            "visits": [0] * 7,
        }
    )
    totals = score_table(mixed, result.models).totals
    assert len(set(totals[:-1].tolist())) == 1  # every spelling of missing scores the same
    points = {b.label: b.points for b in result.card.features[0].bins}
    assert totals[0] == points[MISSING]
    assert totals[-1] == points["pro"]


def test_pandas_string_columns_read_the_same() -> None:
    """A column of pandas' string dtype (pd.NA for missing), and where pandas has it the
    NaN-backed string dtype pandas 3 gives a text column, make the same model as objects."""
    options = Options(folds=0, interactions=0)
    plain = _frame(lambda i: None)
    expected = calibrate(prepare(plain, target="converted"), options=options, stream_check=0)
    dtypes: list[Any] = [pd.StringDtype()]
    with contextlib.suppress(TypeError):  # pandas before 2.3 has no NaN-backed string dtype
        dtypes.append(pd.StringDtype(na_value=np.nan))
    for dtype in dtypes:
        frame = plain.assign(plan=plain["plan"].astype(dtype))
        result = calibrate(prepare(frame, target="converted"), options=options, stream_check=0)
        assert result.yaml_text == expected.yaml_text, dtype
