"""`leadstream rules validate|explain FILE`."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, main
from stream.model_files import DEFAULT_MODELS

DEFAULT_FILE = Path(__file__).resolve().parents[3] / "stream" / "scoring" / DEFAULT_MODELS

BROKEN = """\
format: 1
models:
  - id: b2b
    version: "1"
    decay: {web: 30d}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
      - {id: email_open, event: email_opened, points: 1, group: web, cap: {max_count: 0, per: 1d}}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
"""


def test_validate_accepts_the_default_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(DEFAULT_FILE)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"{DEFAULT_FILE}: valid, 2 models" in out
    assert "b2b 2025-06-01: 7 fit rules, 20 engagement rules" in out


def test_validate_names_the_file_line_model_rule_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(BROKEN)
    assert main(["rules", "validate", str(path)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert (
        f"leadstream rules: {path}: line 8, model 'b2b', engagement rule 'email_open', "
        "field 'cap.max_count': Input should be greater than or equal to 1"
    ) in err


def test_a_missing_file_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "explain", str(tmp_path / "nope.yaml")]) == EXIT_CONFIG
    assert "nope.yaml: cannot read the file" in capsys.readouterr().err


def test_explain_prints_the_models_as_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "model b2b (version 2025-06-01)" in out and "model consumer" in out
    for heading in ("Fit rules", "Decay groups", "Stages and thresholds", "Grade matrix"):
        assert heading in out
    assert "consent.email_marketing = true" in out


def test_explain_one_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", str(DEFAULT_FILE), "--model", "consumer"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "model consumer" in out and "model b2b" not in out
    assert main(["rules", "explain", "--model", "retail"]) == EXIT_USAGE
    assert "has no model 'retail' (models: b2b, consumer)" in capsys.readouterr().err


def test_rules_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rules", "--help"])
    assert exit_info.value.code == 0
    assert "validate" in capsys.readouterr().out
