"""`leadstream rules diff OLD NEW`, and the offline scoring of a history it uses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import codec
from schemas.examples import make_event
from stream.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, main
from stream.model_files import DEFAULT_MODELS, load_default_models
from stream.offline.history import group_by_lead, score_history
from stream.simulate.sinks import write_jsonl
from stream.simulate.traffic import SimConfig, generate

DEFAULT_FILE = Path(__file__).resolve().parents[3] / "stream" / "scoring" / DEFAULT_MODELS
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def changed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default models with an MQL threshold of 40 (was 50) and pricing pages worth 20."""
    text = DEFAULT_FILE.read_text()
    assert text.count('version: "2025-06-01"') == 2
    assert "mql: {promote_at: 50," in text
    text = text.replace('version: "2025-06-01"', 'version: "2025-07-01"')
    text = text.replace("mql: {promote_at: 50,", "mql: {promote_at: 40,")
    text = text.replace(
        'where: {path: "/pricing*"}\n        points: 10',
        'where: {path: "/pricing*"}\n        points: 20',
        1,
    )
    path = tmp_path_factory.mktemp("models") / "new.yaml"
    path.write_text(text)
    return path


def test_diff_reports_stage_moves_score_shift_and_rules(
    changed_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rules", "diff", str(DEFAULT_FILE), str(changed_file), "--leads", "60", "--days", "10"]
    assert main(args) == EXIT_OK
    captured = capsys.readouterr()
    out = captured.out
    assert "model b2b: 2025-06-01 -> 2025-07-01, 60 leads" in out
    assert re.search(r"\n(lead|mql) -> (mql|sql) +[1-9]", out), out
    assert "mean total score" in out and "(shift +" in out
    b2b = out.split("model consumer")[0]
    assert "pricing_page" in b2b.split("change most:")[1]
    assert "scoring with new 60/60 (100%)" in captured.err


def test_diff_of_a_file_with_itself_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rules", "diff", str(DEFAULT_FILE), str(DEFAULT_FILE), "--leads", "20", "--days", "5"]
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "0 change stage (0.0%)" in out and "(shift +0.00)" in out and "from -> to" not in out


def test_diff_reads_events_from_jsonl(
    changed_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = tmp_path / "traffic.jsonl"
    write_jsonl(generate(SimConfig(seed=3, leads=20, days=5)).deliveries, traffic)
    assert (
        main(["rules", "diff", str(DEFAULT_FILE), str(changed_file), "--events", str(traffic)]) == 0
    )
    out = capsys.readouterr().out
    assert f"from {traffic} (" in out and "lines skipped)" in out  # the malformed records
    assert "model b2b: 2025-06-01 -> 2025-07-01, 20 leads" in out


def test_diff_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: 1\nmodels: []\n")
    assert main(["rules", "diff", str(DEFAULT_FILE), str(broken)]) == EXIT_CONFIG
    assert str(broken) in capsys.readouterr().err
    assert main(["rules", "diff", str(DEFAULT_FILE)]) == EXIT_USAGE
    assert main(["rules", "validate", str(DEFAULT_FILE), str(DEFAULT_FILE)]) == EXIT_USAGE
    missing = tmp_path / "nothing.jsonl"
    assert (
        main(["rules", "diff", str(DEFAULT_FILE), str(DEFAULT_FILE), "--events", str(missing)])
        == EXIT_CONFIG
    )


def test_anonymous_events_count_toward_the_identified_lead_and_erasure_forgets() -> None:
    anon = {"anonymous_id": "anon-1", "lead_id": None}
    events = [
        make_event("page_viewed", event_id="e1", occurred_at=T0, path="/pricing", **anon),
        make_event("page_viewed", event_id="e0", occurred_at=T0 - timedelta(hours=1), **anon),
        make_event(
            "identify",
            event_id="e2",
            occurred_at=T0 + timedelta(hours=1),
            lead_id="lead-1",
            anonymous_id="anon-1",
        ),
        make_event(
            "page_viewed", event_id="e3", occurred_at=T0, anonymous_id="anon-never", lead_id=None
        ),
    ]
    by_lead = group_by_lead(events)
    assert list(by_lead) == ["lead-1"]
    assert [e.event_id for e in by_lead["lead-1"]] == ["e0", "e1", "e2"]
    models = load_default_models()
    scored = score_history("lead-1", by_lead["lead-1"], models)
    assert scored.state is not None and scored.outputs
    assert {o.lead_id for o in scored.outputs} == {"lead-1"}
    erased = make_event(
        "lead_erased", event_id="e4", occurred_at=T0 + timedelta(hours=2), lead_id="lead-1"
    )
    forgotten = score_history("lead-1", [*by_lead["lead-1"], erased], models)
    assert forgotten.state is None and forgotten.outputs == ()
    assert codec.encode(erased)  # a valid contract message
