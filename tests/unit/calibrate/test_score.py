"""`leadstream score`: a file scores exactly as the scoring core scores the same leads' events.

The model is calibrated on UCI online shoppers (docs/DATASETS.md) with two columns renamed to have
a space and a dot, some cells blanked, the three page counts as counts and two pairs of
attributes crossed. The held-out rows are written to a CSV and scored by the command; every lead
must get what the core gives the events the README's mapping makes of the row, built here by
hand (not with the code under test), and what the offline scorecard gives it.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from schemas.events import Clicked, EventBase, ProfileUpdated, Traits
from stream.calibrate.rows import REPLAY_AT
from stream.calibrate.run import Calibration, calibrate
from stream.calibrate.scorecard import Options
from stream.calibrate.table import Role, prepare, read_table
from stream.cli import main
from stream.model_files import load_model_file
from stream.offline.diff import read_events
from stream.offline.history import group_by_lead, score_history
from stream.scoring import ModelSet, apply_all, score_at
from stream.simulate import traffic as simulate
from stream.simulate.sinks import write_jsonl, write_truth

SHOPPERS = Path("uci-online-shoppers-intention") / "online_shoppers_intention.csv"
COUNTS = ("Administrative", "Informational", "ProductRelated")
DEFAULT_MODELS = Path(__file__).resolve().parents[3] / "stream" / "scoring" / "default_models.yaml"


@pytest.fixture(scope="module")
def shoppers(datasets: Path) -> pd.DataFrame:
    frame = read_table(datasets / SHOPPERS).rename(
        columns={"PageValues": "Page Values", "ExitRates": "exit.rates"}
    )
    rng = np.random.default_rng(5)
    frame["VisitorType"] = frame["VisitorType"].astype("object")
    frame.loc[rng.random(len(frame)) < 0.05, "VisitorType"] = ""  # a blank text cell
    frame.loc[rng.random(len(frame)) < 0.05, "Page Values"] = np.nan  # a blank number
    return frame


@pytest.fixture(scope="module")
def fitted(shoppers: pd.DataFrame) -> Calibration:
    table = prepare(shoppers, target="Revenue", roles=dict.fromkeys(COUNTS, Role.COUNT))
    return calibrate(table, options=Options(folds=0, interactions=2), stream_check=0)


@pytest.fixture(scope="module")
def files(fitted: Calibration, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("score")
    model, rows = folder / "model.yaml", folder / "held-out.csv"
    model.write_text(fitted.yaml_text, encoding="utf-8")
    fitted.table.raw.iloc[fitted.test[:400]].to_csv(rows, index=False)
    return model, rows


def _readme_events(lead: str, row: dict[str, Any], result: Calibration) -> list[EventBase]:
    """The README's mapping, written out: a profile_updated event with every attribute in
    traits.custom (spaces and dots become _, (missing) for a blank), a clicked event per time."""
    custom: dict[str, Any] = {}
    events: list[EventBase] = []
    for column in result.table.features:
        key = re.sub(r"[\s.]+", "_", column.name)
        value = row[column.name]
        blank = value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        if column.role == Role.COUNT:
            events += [
                Clicked(event_id=f"{lead}-{key}-{n}", occurred_at=REPLAY_AT, lead_id=lead,
                        source="test", target=key)
                for n in range(0 if blank else int(value))
            ]  # fmt: skip
        elif blank:
            custom[key] = "(missing)"
        elif column.role == Role.NUMERIC:
            custom[key] = int(value) if float(value).is_integer() else float(value)
        elif isinstance(value, bool | np.bool_):
            custom[key] = str(bool(value)).lower()
        else:
            custom[key] = str(int(value)) if isinstance(value, float | int) else str(value)
    profile = ProfileUpdated(event_id=f"{lead}-p", occurred_at=REPLAY_AT, lead_id=lead,
                             source="test", traits=Traits(custom=custom))  # fmt: skip
    return [profile, *events]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_a_table_scores_exactly_as_the_core_scores_its_events(
    fitted: Calibration, files: tuple[Path, Path], tmp_path: Path
) -> None:
    model, rows = files
    out = tmp_path / "scores.csv"
    args = ["score", str(rows), "--models", str(model), "--target", "Revenue", "--out", str(out)]
    assert main(args) == 0
    scored = _read_csv(out)
    raw = pd.read_csv(rows)
    assert len(scored) == len(raw) == 400
    models: ModelSet = fitted.models
    offline = fitted.test_scores[:400]
    for n, (line, row) in enumerate(zip(scored, raw.to_dict("records"), strict=True)):
        assert line["lead_id"] == str(n + 1)  # no id column: the row numbers
        state = None
        for event in _readme_events(f"lead-{n}", row, fitted):
            state = apply_all(state, event, models=models, lead_id=f"lead-{n}").state
        assert state is not None
        score = score_at(state.models["calibrated"], REPLAY_AT)
        assert float(line["total"]) == score.total == offline[n], n
        assert float(line["fit"]) == score.fit
        assert float(line["engagement"]) == score.engagement
        assert (line["grade"], line["stage"]) == (score.grade, score.stage.value)
        assert line["Revenue"] == str(int(fitted.table.target[fitted.test[n]]))


def test_json_output_the_figures_and_a_report(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, rows = files
    report = tmp_path / "figures.md"
    args = ["score", str(rows), "--models", str(model), "--target", "Revenue",
            "--format", "json", "--report", str(report)]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    leads = json.loads(captured.out)
    assert len(leads) == 400
    first = leads[0]
    assert set(first) == {"lead_id", "total", "fit", "engagement", "grade", "stage",
                          "top_rules", "Revenue"}  # fmt: skip
    assert first["total"] == first["fit"] + first["engagement"]
    assert all(set(rule) == {"rule", "points"} for lead in leads for rule in lead["top_rules"])
    assert max(len(lead["top_rules"]) for lead in leads) == 3
    figures = captured.err
    assert re.search(r"AUC 0\.9\d+, KS 0\.\d+", figures)
    assert "Conversion by score decile" in figures and "Conversion by stage" in figures
    assert "columns read: " in figures and "Page Values (number, (missing) when blank)" in figures
    assert "## Conversion by stage" in report.read_text()


def test_an_event_log_scores_as_the_history_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = simulate.generate(simulate.SimConfig(seed=3, leads=150, days=20))
    events, truth = tmp_path / "events.jsonl", tmp_path / "truth.csv"
    write_jsonl(sim.deliveries, events)
    write_truth(sim.truth, truth)
    out = tmp_path / "scores.jsonl"
    args = ["score", str(events), "--models", str(DEFAULT_MODELS), "--target", "converted",
            "--outcomes", str(truth), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"AUC 0\.\d+", printed)
    scored = {row["lead_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    log, _ = read_events(events)
    at = max(event.occurred_at for event in log)
    models = load_model_file(DEFAULT_MODELS)
    for lead, lead_events in group_by_lead(log).items():
        state = score_history(lead, lead_events, models, until=at).state
        assert state is not None
        expected = score_at(state.models["b2b"], at)
        assert scored[lead]["total"] == pytest.approx(expected.total, abs=1e-4)
        assert scored[lead]["stage"] == expected.stage.value


def test_what_cannot_be_scored_says_why(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, rows = files
    other = tmp_path / "other.csv"
    pd.DataFrame({"colour": ["red", "blue"], "size": [1, 2]}).to_csv(other, index=False)
    assert main(["score", str(other), "--models", str(model)]) == 3
    assert "reads no column of the table" in capsys.readouterr().err
    assert main(["score", str(rows), "--models", str(model), "--model", "nope"]) == 2
    assert main(["score", str(rows), "--models", str(model), "--outcomes", str(rows)]) == 2
    events = tmp_path / "e.jsonl"
    events.write_text("")
    assert main(["score", str(events), "--models", str(model), "--target", "y"]) == 2
    assert main(["score", str(tmp_path / "absent.csv"), "--models", str(model)]) == 3
    partial = tmp_path / "partial.csv"
    pd.read_csv(rows).drop(columns=["Month"]).to_csv(partial, index=False)
    capsys.readouterr()
    assert (
        main(["score", str(partial), "--models", str(model), "--out", str(tmp_path / "p.csv")]) == 0
    )
    assert "custom.Month: no column of the table gives it" in capsys.readouterr().out
    sheet = tmp_path / "scores.xlsx"
    assert main(["score", str(rows), "--models", str(model), "--out", str(sheet)]) == 2
    assert "leads are written as csv, json or jsonl" in capsys.readouterr().err
    assert not sheet.exists()
    assert (
        main(["score", str(rows), "--models", str(model), "--out", str(sheet), "--format", "csv"])
        == 0
    )
    assert sheet.read_text().startswith("lead_id,")


def test_a_file_with_one_outcome_scores(
    fitted: Calibration,
    files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A file of lost leads only (or the few rows of a short stream check) is no error."""
    model, rows = files
    lost = tmp_path / "lost.csv"
    frame = pd.read_csv(rows)
    frame[~frame["Revenue"]].to_csv(lost, index=False)
    args = ["score", str(lost), "--models", str(model), "--target", "Revenue"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "AUC - (every lead has the same outcome)" in captured.err
    assert "Conversion by stage" in captured.err
    assert {line.rsplit(",", 1)[1] for line in captured.out.splitlines()[1:]} == {"0"}
    first = fitted.table.target[fitted.test[0]]
    same = next(n for n, i in enumerate(fitted.test) if fitted.table.target[i] != first)
    again = calibrate(fitted.table, options=Options(folds=0, interactions=2), stream_check=same)
    assert again.stream_rows == same and again.stream_auc is None and again.stream_differ == 0
