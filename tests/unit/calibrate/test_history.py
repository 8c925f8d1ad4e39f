"""`leadstream calibrate --events --outcomes`: new points for a model's rules from histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.stages import Stage
from stream.calibrate.table import CalibrationError
from stream.cli import main
from stream.model_files import load_model_file
from stream.scoring import parse_models
from stream.simulate import traffic as simulate
from stream.simulate.sinks import write_jsonl, write_truth

DEFAULT_MODELS = Path(__file__).resolve().parents[3] / "stream" / "scoring" / "default_models.yaml"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("history")
    sim = simulate.generate(simulate.SimConfig(seed=3, leads=400, days=30))
    events, truth = folder / "events.jsonl", folder / "truth.csv"
    write_jsonl(sim.deliveries, events)
    write_truth(sim.truth, truth)
    return events, truth


def test_the_rules_get_new_points_and_the_stream_ranks_like_the_regression(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, truth = history
    out, report = tmp_path / "b2b.yaml", tmp_path / "report.md"
    args = ["calibrate", "--events", str(events), "--outcomes", str(truth),
            "--target", "converted", "--out", str(out), "--report", str(report)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("stream AUC"))
    assert float(line.rsplit("difference ", 1)[1]) < 0.005
    assert "current model" in printed
    # a rule that never fired has no close rate: `-`, as in a table's report, never `nan%`
    assert "nan" not in printed
    never_fired = [x.split() for x in printed.splitlines() if x.endswith("never fired: kept")]
    assert never_fired
    assert all(row[4:6] == ["0", "-"] for row in never_fired)
    model = load_model_file(out).get("b2b")
    assert model.version.endswith(".calibrated")
    shipped = yaml.safe_load(DEFAULT_MODELS.read_text(encoding="utf-8"))
    base = {r["id"]: r for r in shipped["models"][0]["engagement"]}
    assert {r.id for r in model.engagement} == set(base)  # same rules, new points
    assert [r.points for r in model.engagement] != [base[r.id]["points"] for r in model.engagement]
    assert "```" in report.read_text()


def test_a_table_and_an_event_log_are_exclusive(history: tuple[Path, Path]) -> None:
    events, truth = history
    assert main(["calibrate", "x.csv", "--events", str(events), "--target", "converted"]) == 2
    assert main(["calibrate", "--events", str(events), "--target", "converted"]) == 2
    assert main(["calibrate", "--events", str(events), "--outcomes", str(truth),
                 "--target", "nope"]) == 3  # fmt: skip


def test_the_options_of_the_other_kind_of_calibration_are_refused(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--base-model` with a table, `--scale` with an event log: refused by name, not ignored."""
    events, truth = history
    out = tmp_path / "model.yaml"
    table = ["calibrate", str(truth), "--target", "converted", "--out", str(out)]
    assert main([*table, "--time-column", "at", "--base-model", "b2b"]) == 2
    assert "--time-column, --base-model: for an event log" in capsys.readouterr().err
    log = ["calibrate", "--events", str(events), "--outcomes", str(truth),
           "--target", "converted", "--out", str(out)]  # fmt: skip
    assert main([*log, "--scale", "100", "--no-monotone", "--exclude", "persona"]) == 2
    assert "--exclude, --scale, --no-monotone: for a TABLE" in capsys.readouterr().err
    assert not out.exists()


def test_crm_outcomes_label_every_lead_at_the_moment_it_was_decided() -> None:
    from schemas.examples import make_event
    from stream.calibrate.outcomes import crm_outcomes

    t = datetime(2026, 3, 1, tzinfo=UTC)

    def ev(kind: str, lead: str, hours: float, **extra: object) -> Any:
        at = t + timedelta(hours=hours)
        return make_event(
            kind, lead_id=lead, event_id=f"{kind}-{lead}-{hours}", occurred_at=at, **extra
        )

    events = [
        ev("page_viewed", "a", 0), ev("sales_accepted", "a", 1), ev("closed_won", "a", 5),
        ev("page_viewed", "b", 0), ev("sales_rejected", "b", 2, reason="no budget"),
        ev("page_viewed", "c", 0),  # sales never took it
        ev("sales_accepted", "d", 3),  # accepted, not closed yet
        ev("stage_set", "e", 1, stage=Stage.SQL, model=None),  # a hand-set stage decides nothing
    ]  # fmt: skip
    sql = crm_outcomes(events, "sql").set_index("lead_id")
    assert sql["sql"].to_dict() == {"a": 1, "b": 0, "c": 0, "d": 1, "e": 0}
    assert sql.loc["a", "time"] == (t + timedelta(hours=1)).isoformat()
    assert sql.loc["c", "time"] == ""  # scored at the end of the history
    won = crm_outcomes(events, "won").set_index("lead_id")
    assert won["won"].to_dict() == {"a": 1, "b": 0, "c": 0, "e": 0}  # d is still open
    assert won.loc["a", "time"] == (t + timedelta(hours=5)).isoformat()
    with pytest.raises(CalibrationError, match="sql, won"):
        crm_outcomes(events, "converted")
    with pytest.raises(CalibrationError, match="no CRM outcome"):
        crm_outcomes(events[:1], "sql")


def test_the_crm_outcomes_of_a_log_propose_a_shadow_model_and_promote_makes_it_live(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, _ = history
    out = tmp_path / "models.yaml"
    args = ["calibrate", "--events", str(events), "--outcomes", "crm", "--target", "sql",
            "--shadow", "b2b-next", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out AUC" in printed and "shadow model 'b2b-next'" in printed
    models = load_model_file(out)
    assert models.ids == ("b2b", "consumer", "b2b-next")
    assert models.get("b2b-next").shadow and not models.get("b2b").shadow
    assert models.get("b2b-next").version == "2025-06-01.calibrated"
    assert [r.id for r in models.get("b2b-next").engagement] == [
        r.id for r in models.get("b2b").engagement
    ]

    promoted = tmp_path / "promoted.yaml"
    args = ["models", "promote", str(out), "b2b-next", "--version", "2026-12-07",
            "--retire", "b2b", "--out", str(promoted)]  # fmt: skip
    assert main(args) == 0
    live = load_model_file(promoted)
    assert not live.get("b2b-next").shadow and live.get("b2b-next").version == "2026-12-07"
    assert live.get("b2b").shadow and not live.get("consumer").shadow
    assert live.accounts is not None and live.accounts.model == "b2b-next"  # the live one
    # the same version again, or a model the file does not have, is refused
    assert main(["models", "promote", str(promoted), "b2b-next", "--version", "2026-12-07"]) == 3
    assert main(["models", "promote", str(promoted), "nope", "--version", "x"]) == 3
    assert "no model 'nope'" in capsys.readouterr().err


def test_a_challenger_never_takes_a_live_models_id() -> None:
    from stream.offline.challenger import add_shadow
    from stream.scoring import ModelFileError

    shipped = DEFAULT_MODELS.read_text(encoding="utf-8")
    with pytest.raises(ModelFileError, match="a live model has this id"):
        add_shadow(shipped, shipped, model_id="b2b")
    once = add_shadow(shipped, shipped, model_id="b2b-next")
    twice = add_shadow(once, shipped, model_id="b2b-next", proposal_model="consumer")
    models = parse_models(twice, source="twice")
    assert models.ids == ("b2b", "consumer", "b2b-next")  # the shadow model was replaced
    assert models.get("b2b-next").description == models.get("consumer").description
