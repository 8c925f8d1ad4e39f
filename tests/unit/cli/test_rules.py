"""`leadstream rules validate|explain FILE`."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from stream.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, main
from stream.model_files import DEFAULT_MODELS, load_default_models

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


def test_explain_full_shows_whole_lists_and_descriptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "explain", "--model", "b2b"]) == EXIT_OK
    short = capsys.readouterr().out
    assert main(["rules", "explain", "--model", "b2b", "--full"]) == EXIT_OK
    full = capsys.readouterr().out
    assert "email_domain in [gmail.com, googlemail.com, yahoo.com, hotmail.com, ...]" in short
    assert "Free-mail address in a B2B funnel." not in short
    free_mail = next(line for line in full.splitlines() if line.startswith("free_mail "))
    assert "163.com]" in free_mail and "..." not in free_mail  # the last domain of the list
    assert free_mail.rstrip().endswith("Free-mail address in a B2B funnel.")


def test_explain_as_markdown_is_a_set_of_pipe_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", "--model", "b2b", "--format", "md"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "## model b2b (version 2025-06-01)"
    assert "### Fit rules (profile; never decay)" in lines
    heading = lines.index("### Fit rules (profile; never decay)")
    assert lines[heading + 2 : heading + 4] == ["| rule | test | points |   |", "|---|---|---|---|"]
    decision = next(line for line in lines if line.startswith("| decision_maker |"))
    assert r"(ceo\|cto" in decision  # a | inside a cell is escaped
    assert decision.count(" | ") == 3


def test_explain_as_csv_has_one_row_per_rule_of_every_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "explain", "--format", "csv", "--full"]) == EXIT_OK
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    models = load_default_models()
    assert len(rows) == sum(len(m.fit) + len(m.engagement) for m in models.models)
    demo = next(r for r in rows if r["model"] == "b2b" and r["rule"] == "demo_request")
    assert demo["kind"] == "engagement" and demo["points"] == "+30"
    assert demo["flag"] == "hand-raise" and demo["decay group"] == "web (30d)"


def test_diff_compares_only_the_model_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(DEFAULT_FILE.read_text().replace("points: 30", "points: 40"))
    argv = ["rules", "diff", str(DEFAULT_FILE), str(new), "--leads", "40", "--days", "10"]
    assert main(argv) == EXIT_OK
    both = capsys.readouterr().out
    assert "model b2b:" in both and "model consumer:" in both
    assert main([*argv, "--model", "consumer"]) == EXIT_OK
    one = capsys.readouterr().out
    assert "model consumer:" in one and "model b2b" not in one
    assert main([*argv, "--model", "b2c"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{new} has no model 'b2c' (did you mean 'b2b'?) (models: b2b, consumer)" in err
