"""`leadstream calibrate` on a synthetic history: messy columns, the model file, the stream."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream.calibrate.report import render
from stream.calibrate.rows import REPLAY_AT, lead_events, model_inputs
from stream.calibrate.run import Calibration, calibrate
from stream.calibrate.score import score_table
from stream.calibrate.scorecard import Options
from stream.calibrate.table import CalibrationError, Role, prepare, read_table
from stream.cli import main
from stream.model_files import load_model_file
from stream.scoring import apply_all, score_at


def make_history(n: int = 1500, seed: int = 7) -> pd.DataFrame:
    """Leads whose conversion depends on industry, company size, visits and downloads."""
    rng = np.random.default_rng(seed)
    industry = rng.choice(["software", "retail", "finance", "Select", "mining", "farming"],
                          size=n, p=[0.3, 0.3, 0.25, 0.1, 0.04, 0.01])  # fmt: skip
    size = rng.lognormal(4, 1.2, n).round()
    visits = rng.poisson(3, n)
    downloads = rng.poisson(0.6, n)
    logit = (
        -2.5
        + 1.2 * (industry == "software")
        - 0.6 * (industry == "retail")
        + 0.5 * np.log1p(size) / 3
        + 0.35 * np.minimum(visits, 6)
        + 0.8 * (downloads > 0)
    )
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    size_text = size.astype(object)
    size_text[rng.random(n) < 0.05] = "n/a"  # a placeholder in a numeric column
    return pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(n)],
            "Industry": industry,
            "company size": size_text,
            "website_visits": visits,
            "downloads": downloads,
            "source_system": "crm",  # one value
            "landing_page_id": rng.choice(["p1", "p2", "p3"], size=n),  # an attribute, not an id
            "first_contact": [f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
            "sector": industry,  # a copy of Industry
            "won_amount": np.where(converted, rng.uniform(1e3, 5e4, n), 0.0),  # after the fact
            "converted": np.where(converted, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return make_history()


@pytest.fixture(scope="module")
def result(history: pd.DataFrame) -> Calibration:
    table = prepare(history, target="converted")
    return calibrate(table, options=Options(folds=3))


def test_roles_are_inferred_and_messy_columns_handled(result: Calibration) -> None:
    roles = {c.name: c for c in result.table.columns}
    assert roles["lead_id"].role == Role.ID
    assert roles["converted"].role == Role.TARGET
    assert roles["Industry"].role == Role.CATEGORICAL
    assert roles["company size"].role == Role.NUMERIC
    assert roles["company size"].key == "company_size"
    assert roles["landing_page_id"].role == Role.CATEGORICAL
    assert roles["first_contact"].role == Role.IGNORE
    assert "date" in roles["first_contact"].reason
    assert roles["website_visits"].role == Role.COUNT
    assert roles["downloads"].role == Role.COUNT
    assert roles["source_system"].role == Role.IGNORE
    assert "single value" in roles["source_system"].reason
    assert roles["sector"].role == Role.IGNORE
    assert "copy of Industry" in roles["sector"].reason
    assert roles["won_amount"].role == Role.IGNORE
    assert "leakage" in roles["won_amount"].reason
    assert result.table.positive == "yes"
    industry = result.table.frame["Industry"]
    assert "Select" not in set(industry.dropna())  # a placeholder is missing
    assert result.table.frame["company size"].isna().sum() > 0


def test_rare_categories_are_pooled(result: Calibration) -> None:
    feature = next(f for f in result.card.features if f.column.name == "Industry")
    other = [b for b in feature.bins if b.label.startswith("other")]
    assert other
    assert set(other[0].values) == {"farming"}
    assert other[0].label == "other: farming"  # named by its values


def test_the_model_file_is_valid_and_ranks_like_the_regression(
    result: Calibration, tmp_path: Path
) -> None:
    path = tmp_path / "calibrated.yaml"
    path.write_text(result.yaml_text, encoding="utf-8")
    model = load_model_file(path).get("calibrated")
    fields = {"custom.Industry", "custom.company_size", "custom.landing_page_id"}
    assert {rule.field for rule in model.fit} <= fields
    assert {rule.event_types[0] for rule in model.engagement} == {"clicked"}
    assert model.stages.mql is not None
    assert model.stages.sql is not None
    assert model.stages.sql.promote_at >= model.stages.mql.promote_at
    assert all(float(r.points).is_integer() for r in [*model.fit, *model.engagement])
    assert result.auc_points > 0.7
    assert abs(result.auc_points - result.auc_probability) < 0.01


def test_attributes_score_from_zero_and_missing_values_have_a_bin(result: Calibration) -> None:
    for feature in result.card.features:
        if not feature.is_count:
            assert min(b.points for b in feature.bins) == 0, feature.column.name
    size = next(f for f in result.card.features if f.column.name == "company size")
    assert size.has_missing
    assert size.bins[-1].label == "(missing)"
    model = result.models.get("calibrated")
    missing = [r for r in model.fit if r.field == "custom.company_size" and r.equals]
    assert all(r.equals == "(missing)" for r in missing)
    assert model.stages.mql is not None
    assert model.stages.mql.promote_at > 0  # a lead nobody knows anything about is not an MQL


def test_held_out_leads_score_the_same_through_the_pure_core(result: Calibration) -> None:
    rows = result.table.raw.iloc[result.test].reset_index(drop=True)
    streamed = score_table(rows, result.models, "calibrated", target="converted").totals
    assert np.array_equal(streamed, result.test_scores)
    assert result.stream_auc is not None
    assert abs(result.stream_auc - result.auc_points) < 0.005


def test_a_count_step_adds_its_points_from_the_nth_time_on(result: Calibration) -> None:
    feature = next(f for f in result.card.features if f.column.name == "website_visits")
    models = result.models
    inputs = model_inputs(models.get("calibrated"), pd.DataFrame({"website_visits": [0]})).inputs
    assert [(i.column, i.kind) for i in inputs] == [("website_visits", "count")]
    for visits in range(12):
        state = None
        for event in lead_events("lead-x", {"website_visits": visits}, inputs):
            state = apply_all(state, event, models=models, lead_id="lead-x").state
        assert state is not None
        expected = feature.bins[int(feature.index(np.array([visits]))[0])].points
        assert score_at(state.models["calibrated"], REPLAY_AT).total == expected, visits


def test_parquet_and_infinite_values(history: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "history.parquet"
    messy = history.assign(ratio=np.where(history.index % 50 == 0, np.inf, history.index / 7))
    messy.drop(columns=["company size"]).to_parquet(path)
    table = prepare(read_table(path), target="converted")
    assert table.frame["ratio"].isna().sum() == len(history) // 50
    result = calibrate(table, options=Options(folds=0), stream_check=100)
    assert result.stream_auc == result.stream_offline_auc


def test_forced_columns_are_kept(history: pd.DataFrame) -> None:
    table = prepare(history, target="converted", force=frozenset({"won_amount"}))
    assert "won_amount" in table.frame.columns


def test_unusable_history_is_an_error(history: pd.DataFrame) -> None:
    with pytest.raises(CalibrationError, match="no target column"):
        prepare(history, target="missing")
    with pytest.raises(CalibrationError, match="same outcome"):
        prepare(history.assign(converted="no"), target="converted")
    with pytest.raises(CalibrationError, match="--positive"):
        prepare(history.assign(converted=np.where(history.converted == "yes", "a", "b")),
                target="converted")  # fmt: skip


def test_worker_loads_the_generated_model(result: Calibration, tmp_path: Path) -> None:
    from factories import make_settings

    from stream.app import create_app

    path = tmp_path / "calibrated.yaml"
    path.write_text(result.yaml_text, encoding="utf-8")
    app = create_app(make_settings(models_path=path))
    assert app is not None


def test_cli_needs_only_the_target(
    history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "never-seen.csv"
    history.to_csv(csv, sep=";", index=False)
    out, report = tmp_path / "model.yaml", tmp_path / "report.md"
    code = main(["calibrate", str(csv), "--target", "converted", "--out", str(out),
                 "--report", str(report), "--stream-check", "200"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out AUC" in printed
    assert "stream AUC" in printed
    assert "Per-action close rate" in printed
    assert "## Conversion by score decile" in report.read_text()
    assert "![deciles](report.deciles.svg)" in report.read_text()
    assert (tmp_path / "report.calibration.svg").read_text().startswith("<svg")
    assert main(["rules", "validate", str(out)]) == 0
    html = tmp_path / "report.html"
    again = ["calibrate", str(csv), "--target", "converted", "--out", str(out),
             "--report", str(html), "--stream-check", "0", "--compare", str(out),
             "--interactions", "1"]  # fmt: skip
    assert main(again) == 0
    assert "<table>" in html.read_text()
    assert html.read_text().count("<svg") == 2
    captured = capsys.readouterr()
    assert "current model's held-out AUC" in captured.out
    # the fit after cross-validation reports its pairs too, not only the folds before it
    assert captured.err.index("cross-validation (folds) 5/5 (100%)") < captured.err.index(
        "final fit (pairs chosen) 1/1 (100%)"
    )


def test_a_tables_model_joins_the_live_models_as_a_shadow_and_is_promoted(
    history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """calibrate a table → score → deploy as a shadow model → promote, as the README shows."""
    csv, plain, out = tmp_path / "h.csv", tmp_path / "plain.yaml", tmp_path / "models.yaml"
    history.to_csv(csv, index=False)
    base = ["calibrate", str(csv), "--target", "converted", "--interactions", "0",
            "--stream-check", "0"]  # fmt: skip
    assert main([*base, "--shadow", "b2b"]) == 2  # refused before the fit
    assert "--shadow 'b2b': a live model has this id" in capsys.readouterr().err
    assert main([*base, "--base", str(out), "--out", str(out)]) == 2  # --base needs --shadow
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--shadow", "table-next", "--out", str(out)]) == 0
    assert "the proposal is shadow model 'table-next'" in capsys.readouterr().out
    models = load_model_file(out)
    assert models.ids == ("b2b", "consumer", "table-next")
    challenger, calibrated = models.get("table-next"), load_model_file(plain).get("calibrated")
    assert challenger.shadow and not models.get("b2b").shadow
    assert challenger.fit == calibrated.fit and challenger.engagement == calibrated.engagement
    score = ["score", str(csv), "--models", str(out), "--model", "table-next",
             "--target", "converted", "--out", str(tmp_path / "scores.csv")]  # fmt: skip
    assert main(score) == 0
    assert main(["models", "promote", str(out), "table-next", "--version", "2"]) == 0
    assert not load_model_file(out).get("table-next").shadow


def test_cli_exit_codes(history: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    history.to_csv(csv, index=False)
    assert main(["calibrate", str(csv), "--target", "nope"]) == 3
    assert main(["calibrate", str(csv), "--target", "converted", "--interactions", "-1"]) == 2
    assert main(["calibrate", str(tmp_path / "absent.csv"), "--target", "converted"]) == 3
    assert main(["calibrate", str(csv), "--target", "converted", "--role", "Industry"]) == 2


def test_missing_scikit_learn_prints_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(sys.modules):
        if name.startswith("stream.calibrate.") and name != "stream.cli.calibrate":
            monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n == "sklearn" or n.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert main(["calibrate", str(tmp_path / "x.csv"), "--target", "y"]) == 1
    assert "pip install 'leadstream[calibrate]'" in capsys.readouterr().err


def _amounts(n: int, present: float, hundreds: float = 0.97) -> pd.DataFrame:
    """Present amounts that are 100 for a share of the leads (`hundreds`), else any number
    below; conversion depends on whether an amount is given."""
    rng = np.random.default_rng(0)
    amount = np.where(rng.random(n) < hundreds, 100.0, rng.uniform(0, 99, n))
    amount = amount.round(1).astype(object)
    missing = rng.random(n) >= present
    amount[missing] = None
    converted = rng.random(n) < np.where(missing, 0.05, 0.4)
    return pd.DataFrame(
        {"amount": amount, "noise": rng.normal(size=n), "y": np.where(converted, "yes", "no")}
    )


def test_a_number_present_or_missing_is_a_valid_rule() -> None:
    """Present values that all fall in one bin: the rule for that bin is "any number"."""
    frame = _amounts(3000, present=0.01, hundreds=0)  # too few values for a tree to split
    options = Options(folds=0, binning="supervised")
    result = calibrate(prepare(frame, target="y"), options=options, stream_check=None)
    feature = next(f for f in result.card.features if f.column.name == "amount")
    assert [b.label for b in feature.bins] == ["any", "(missing)"]
    assert feature.bins[0].points > 0
    rule = next(r for r in result.models.get("calibrated").fit if r.field == "custom.amount")
    assert rule.range is not None and rule.range.contains(-1e9) and rule.range.contains(1e9)
    assert result.stream_auc == pytest.approx(result.auc_points, abs=1e-9)


def test_collapsed_quantile_bins_give_the_heavy_value_a_bin_and_say_so() -> None:
    frame = _amounts(2000, present=0.7)
    result = calibrate(prepare(frame, target="y"), options=Options(folds=0), stream_check=0)
    feature = next(f for f in result.card.features if f.column.name == "amount")
    below = max(v for v in result.table.frame["amount"].iloc[result.train] if v < 100)
    assert [b.label for b in feature.bins] == [f"<= {below:g}", f"> {below:g}", "(missing)"]
    (note,) = [n for n in result.card.notes if n.startswith("amount:")]
    assert "collapsed" in note and "100 is the value of 97" in note
    assert note in render(result)
