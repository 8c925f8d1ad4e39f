"""`leadstream calibrate --events --outcomes`: new points for a model's rules from histories."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stream.cli import main
from stream.model_files import load_model_file
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
