"""`leadstream models`: exit codes and the evaluation table (the figures: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import main
from stream.cli.models import table
from stream.model_files import load_default_models
from stream.readmodel.evaluation import Pair, summarize


def test_a_model_file_that_cannot_be_read_is_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: 1\nmodels: []\n")
    assert main(["models", "evaluate", "--models", str(broken)]) == 3
    assert "broken.yaml" in capsys.readouterr().err


def test_an_unreachable_redis_is_exit_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_REDIS_URL", "redis://127.0.0.1:9/0")
    assert main(["models", "evaluate"]) == 4
    assert "Redis is unreachable" in capsys.readouterr().err


def test_the_table_shows_shares_and_the_outcomes_per_type() -> None:
    b2b = load_default_models().get("b2b")
    pairs = [
        Pair("a", "sales_accepted", 70.0, 10.0, 60.0, 1.0),
        Pair("b", "sales_rejected", 20.0, 10.0, 10.0, 2.0),
    ]
    text = table([summarize("b2b", pairs, b2b).to_json()])
    header, row, counts = text.splitlines()
    assert header.split()[:3] == ["model", "shadow", "outcomes"]
    assert row.split() == ["b2b", "no", "2", "1", "1", "1.000", "50", "1", "100.0%", "1", "100.0%",
                           "0.0%"]  # fmt: skip
    assert counts == "b2b: sales_accepted 1, sales_rejected 1"
    assert table([]) == "no models\n"
