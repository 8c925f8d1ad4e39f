"""Points a marketer can defend, on the public tables (docs/DATASETS.md).

Each test is one defect seen on them: a count of activity whose points fall as the count rises
(8 or more administrative pages of the online shoppers scored less than none), scores running
from 33 to 489 with no way to ask for 0-100, grades cut as `1 (>= 1) 2 (>= 0) 3 (>= -6)`, and
misspelt column names answered with the list of every column.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream.calibrate.report import render
from stream.calibrate.run import calibrate, grade_cuts
from stream.calibrate.score import score_table
from stream.calibrate.scorecard import Feature, Options, fit_scorecard
from stream.calibrate.table import CalibrationError, Role, Table, prepare, read_table
from stream.cli import main

SHOPPERS = Path("uci-online-shoppers-intention") / "online_shoppers_intention.csv"
BANK = Path("uci-bank-marketing") / "bank-additional-full.csv"
PAGES = ("Administrative", "Informational", "ProductRelated")
QUICK = Options(folds=0, interactions=0)
"""No cross-validation, no pairs: the defects are in the additive points."""


@pytest.fixture(scope="module")
def shoppers(datasets: Path) -> pd.DataFrame:
    return read_table(datasets / SHOPPERS)


def _counts_table(shoppers: pd.DataFrame) -> Table:
    return prepare(shoppers, target="Revenue", roles=dict.fromkeys(PAGES, Role.COUNT))


def _falls(feature: Feature) -> list[tuple[str, int, str, int]]:
    """Neighbouring bins of a count whose points fall as the count rises."""
    bins = feature.ranges
    return [
        (a.label, a.points, b.label, b.points)
        for a, b in itertools.pairwise(bins)
        if b.points < a.points
    ]


def test_counts_never_score_less_for_more_activity(shoppers: pd.DataFrame) -> None:
    table = _counts_table(shoppers)
    frame, y = table.frame, table.target
    free = Options(folds=0, interactions=0, monotone_counts=False)
    free_card = fit_scorecard(table.features, frame, y, free)
    # the defect: without the constraint, a count's points fall somewhere
    assert any(_falls(f) for f in free_card.features if f.is_count)
    card = fit_scorecard(table.features, frame, y, QUICK)
    counts = [f for f in card.features if f.is_count]
    assert counts
    for feature in counts:
        assert not _falls(feature), feature.column.name
        assert feature.bins[0].points == 0
        rates = [b.rate for b in feature.ranges]
        assert rates == sorted(rates), feature.column.name  # the close rate rises too


def test_a_calibrated_model_file_scores_more_activity_never_lower(shoppers: pd.DataFrame) -> None:
    """Through the stream's core: the same session with 0 to 30 product pages."""
    result = calibrate(_counts_table(shoppers), options=QUICK, stream_check=0)
    session = shoppers.iloc[[0]]
    rows = pd.concat([session] * 31, ignore_index=True)
    for column in PAGES:
        varied = rows.assign(**{column: np.arange(31)})
        scored = score_table(varied, result.models, result.model_id)
        totals = scored.totals.tolist()
        assert totals == sorted(totals), (column, totals)
        assert totals[-1] > totals[0], column  # and the activity counts for something


def test_scale_100_puts_every_lead_between_0_and_100(shoppers: pd.DataFrame) -> None:
    options = Options(folds=0, interactions=2, scale=100)
    result = calibrate(_counts_table(shoppers), options=options, stream_check=300)
    card = result.card
    best = sum(max(b.points for b in f.bins) for f in card.features)
    best += sum(max(c.points for c in p.cells.values()) for p in card.interactions)
    assert 95 <= best <= 100  # the best possible lead, rounding aside
    totals = card.total(result.table.frame)
    assert totals.min() >= 0 and totals.max() <= 100
    assert result.stream_rows == 300 and result.stream_differ == 0  # the stream agrees
    model = result.models.models[0]
    assert model.stages.mql is not None and model.stages.sql is not None
    assert 0 < model.stages.mql.promote_at <= model.stages.sql.promote_at <= 100
    assert "the best possible lead scores 100" in render(result)
    default = calibrate(_counts_table(shoppers), options=QUICK, stream_check=0)
    assert default.card.total(default.table.frame).max() > 100  # 20 points per doubling


def _shares(points: np.ndarray, cuts: list[float]) -> list[float]:
    bounds = [np.inf, *cuts, -np.inf]
    return [float(((points >= lo) & (points < hi)).mean()) for hi, lo in itertools.pairwise(bounds)]


def test_grades_set_leads_apart_on_both_tables(datasets: Path, shoppers: pd.DataFrame) -> None:
    bank = prepare(read_table(datasets / BANK), target="y", roles={"duration": Role.IGNORE})
    for result in (
        calibrate(bank, options=QUICK, stream_check=0),
        calibrate(_counts_table(shoppers), options=QUICK, stream_check=0),
    ):
        train = result.table.frame.iloc[result.train]
        fit, engagement = result.card.points(train)
        grades = result.models.models[0].grades
        for cuts, points in ((grades.fit, fit), (grades.engagement, engagement)):
            assert cuts[0] > cuts[1] > cuts[2] > points.min(), cuts  # distinct, D not empty
        assert min(_shares(fit, list(grades.fit))) >= 0.1  # quartiles of many distinct totals
        text = render(result)
        assert "fit grades (share of held-out leads, converted): A >= " in text
        # bank has no count of an activity: no engagement grades to show, and the report says so
        counts = any(feature.is_count for feature in result.card.features)
        assert ("engagement grades (share of held-out leads, converted): 1 >= " in text) == counts
        assert ("engagement grades: none to tell apart" in text) == (not counts)
    # the shoppers' engagement: four groups of the page counts' points
    assert list(grades.engagement) == grade_cuts(engagement)
    assert min(_shares(engagement, list(grades.engagement))) >= 0.1


@pytest.mark.parametrize(
    ("scores", "cuts"),
    [
        (np.arange(100), [75.0, 50.0, 25.0]),  # quartiles
        (np.r_[np.zeros(70), np.arange(60)], [40.0, 21.0, 1.0]),  # most did nothing: thirds
        (np.r_[np.zeros(30), np.full(20, 2), np.full(50, 4)], [5.0, 4.0, 2.0]),  # 2 scores above
        (np.r_[np.zeros(80), np.ones(10), np.full(5, 2), np.full(5, 3)], [3.0, 2.0, 1.0]),
        (np.zeros(50), [3.0, 2.0, 1.0]),  # nobody did anything: everybody in the lowest grade
    ],
)
def test_grade_cuts_are_distinct_and_leave_the_lowest_score_in_the_lowest_grade(
    scores: np.ndarray, cuts: list[float]
) -> None:
    assert grade_cuts(scores) == cuts


def test_a_misspelt_column_is_named_with_the_one_it_may_mean(
    datasets: Path, shoppers: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(CalibrationError, match=r"no column 'Administrtive' \(did you mean "
                       r"'Administrative'\?\)"):  # fmt: skip
        prepare(shoppers, target="Revenue", roles={"Administrtive": Role.COUNT})
    with pytest.raises(CalibrationError, match=r"no target column 'revenue' \(did you mean "
                       r"'Revenue'\?\)"):  # fmt: skip
        prepare(shoppers, target="revenue")
    path = str(datasets / SHOPPERS)
    assert main(["calibrate", path, "--target", "Revenue", "--count", "ProductRelatd"]) == 3
    assert "no column 'ProductRelatd' (did you mean 'ProductRelated'?)" in capsys.readouterr().err


def test_a_renamed_column_is_pointed_at_when_scoring(
    shoppers: pd.DataFrame, tmp_path: Path
) -> None:
    result = calibrate(_counts_table(shoppers), options=QUICK, stream_check=0)
    renamed = shoppers.head(50).rename(columns={"PageValues": "Page_Value"})
    scored = score_table(renamed, result.models, result.model_id)
    (note,) = [n for n in scored.notes if n.startswith("custom.PageValues")]
    assert "did you mean the column 'Page_Value'?" in note


def test_a_count_whose_close_rate_falls_is_dropped_with_the_reason(datasets: Path) -> None:
    """Bank marketing's `campaign` (calls in this campaign): the more calls, the fewer
    subscribe. As a count it cannot score less for more, so it gets no points, and says why."""
    roles = {"duration": Role.IGNORE, "campaign": Role.COUNT}
    table = prepare(read_table(datasets / BANK), target="y", roles=roles)
    card = fit_scorecard(table.features, table.frame, table.target, QUICK)
    assert "campaign" not in {f.column.name for f in card.features}
    (note,) = [n for n in card.notes if n.startswith("campaign:")]
    assert "its close rate does not rise with the count" in note
    free = Options(folds=0, interactions=0, monotone_counts=False)
    loose = fit_scorecard(table.features, table.frame, table.target, free)
    campaign = next(f for f in loose.features if f.column.name == "campaign")
    assert _falls(campaign)  # without the constraint: fewer points for more calls


def test_a_count_whose_fitted_points_keep_falling_is_dropped_with_a_note(
    shoppers: pd.DataFrame,
) -> None:
    """With four pairs, the administrative pages move with the page durations and exit rates
    that carry their effect: their points would fall however the bins are merged."""
    result = calibrate(
        _counts_table(shoppers), options=Options(folds=0, interactions=4), stream_check=0
    )
    assert "Administrative" not in {f.column.name for f in result.card.features}
    (note,) = [n for n in result.card.notes if n.startswith("Administrative:")]
    assert "its fitted points fell as the count rose" in note
    assert note in render(result)
