"""Outbound records: scores, stage changes with CRM values, erasures and dead letters."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from schemas.errors import ErrorKind
from schemas.examples import OUTPUT_EXAMPLES, make_output
from schemas.outputs import (
    DEAD_LETTER_MAX_ORIGINAL_BYTES,
    DeadLetter,
    LeadErasedRecord,
    ScoreSnapshot,
    StageChanged,
    stage_change_event_id,
)
from schemas.stages import HUBSPOT_LIFECYCLESTAGE, SALESFORCE_LEAD_STATUS, Stage

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SNAP = ScoreSnapshot(fit=1.0, engagement=2.0, total=3.0, grade="C3")


def _change(**overrides: object) -> StageChanged:
    fields: dict[str, object] = {
        "lead_id": "l-1",
        "model": "default",
        "model_version": "v1",
        "from_stage": Stage.LEAD,
        "to_stage": Stage.MQL,
        "reason": "threshold",
        "triggering_event_id": "e-1",
        "score": SNAP,
        "occurred_at": T0,
    }
    fields.update(overrides)
    return StageChanged.build(**fields)  # type: ignore[arg-type]


def test_every_stage_has_crm_values() -> None:
    assert set(HUBSPOT_LIFECYCLESTAGE) == set(Stage)
    assert set(SALESFORCE_LEAD_STATUS) == set(Stage)
    assert HUBSPOT_LIFECYCLESTAGE[Stage.MQL] == "marketingqualifiedlead"
    assert HUBSPOT_LIFECYCLESTAGE[Stage.SQL] == "salesqualifiedlead"
    assert SALESFORCE_LEAD_STATUS[Stage.DISQUALIFIED] == "Closed - Not Converted"


@pytest.mark.parametrize("stage", list(Stage))
def test_stage_changed_carries_the_crm_values_of_its_stage(stage: Stage) -> None:
    change = _change(to_stage=stage)
    assert change.hubspot_lifecyclestage == HUBSPOT_LIFECYCLESTAGE[stage]
    assert change.salesforce_lead_status == SALESFORCE_LEAD_STATUS[stage]


def test_stage_changed_rejects_crm_values_of_another_stage() -> None:
    data = _change(to_stage=Stage.SQL).model_dump()
    data["hubspot_lifecyclestage"] = "marketingqualifiedlead"
    with pytest.raises(ValidationError, match="mapped from to_stage 'sql'"):
        StageChanged.model_validate(data)


def test_stage_change_event_id_is_deterministic_and_input_sensitive() -> None:
    assert _change().event_id == _change().event_id
    variants = [
        {"lead_id": "l-2"},
        {"model": "other"},
        {"model_version": "v2"},
        {"triggering_event_id": "e-2"},
        {"triggering_event_id": None},
        {"from_stage": None},
        {"to_stage": Stage.SQL},
        {"occurred_at": T0 + timedelta(seconds=1)},
    ]
    ids = {_change(**variant).event_id for variant in variants} | {_change().event_id}
    assert len(ids) == len(variants) + 1
    assert _change().event_id.version == 5
    assert _change().event_id == stage_change_event_id(
        lead_id="l-1",
        model="default",
        model_version="v1",
        triggering_event_id="e-1",
        from_stage=Stage.LEAD,
        to_stage=Stage.MQL,
        occurred_at=T0,
    )


def test_reason_and_snapshot_do_not_change_the_event_id() -> None:
    other = _change(
        reason="other words", score=ScoreSnapshot(fit=0, engagement=0, total=0, grade="D4")
    )
    assert other.event_id == _change().event_id


def test_lead_erased_record_id_is_deterministic() -> None:
    one = LeadErasedRecord.build(lead_id="l", model="m", triggering_event_id="e", occurred_at=T0)
    two = LeadErasedRecord.build(lead_id="l", model="m2", triggering_event_id="e", occurred_at=T0)
    assert (
        one.event_id
        == LeadErasedRecord.build(
            lead_id="l", model="m", triggering_event_id="e", occurred_at=T0
        ).event_id
    )
    assert one.event_id != two.event_id


@pytest.mark.parametrize("grade", ["A1", "D4", "B2"])
def test_grades_on_the_fit_engagement_grid_are_valid(grade: str) -> None:
    assert make_output("score_updated", grade=grade).grade == grade  # type: ignore[attr-defined]


@pytest.mark.parametrize("grade", ["E1", "A5", "a1", "A", "A10"])
def test_grades_off_the_grid_are_rejected(grade: str) -> None:
    with pytest.raises(ValidationError, match="grade"):
        make_output("score_updated", grade=grade)


def test_score_updated_limits_top_rules() -> None:
    rules = [{"rule_id": f"r{i}", "points": 1.0} for i in range(21)]
    with pytest.raises(ValidationError, match="top_rules"):
        make_output("score_updated", top_rules=rules)


def test_dead_letter_keeps_original_bytes_as_base64() -> None:
    letter = make_output("dead_letter", original=b"\xff\xfe{not json", original_size=11)
    body = letter.model_dump(mode="json")
    assert base64.urlsafe_b64decode(body["original"]) == b"\xff\xfe{not json"
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_dead_letter_build_cuts_a_huge_original_and_records_its_size() -> None:
    huge = b"x" * (DEAD_LETTER_MAX_ORIGINAL_BYTES + 10)
    letter = DeadLetter.build(
        source_topic="leads.email.v1",
        partition=0,
        offset=0,
        error_kind=ErrorKind.TOO_LARGE,
        message="m" * 10_000,
        original=huge,
        received_at=T0,
    )
    assert len(letter.original) == DEAD_LETTER_MAX_ORIGINAL_BYTES
    assert letter.original_size == len(huge)
    assert len(letter.message) == 4096


def test_dead_letter_sizes_must_agree() -> None:
    with pytest.raises(ValidationError, match="original_size"):
        make_output("dead_letter", original=b"abcd", original_size=2)


def test_outbound_examples_are_complete() -> None:
    assert set(OUTPUT_EXAMPLES) == {
        "score_updated",
        "stage_changed",
        "lead_erased",
        "dead_letter",
        "account_score_updated",
        "account_stage_changed",
    }
    for name, record in OUTPUT_EXAMPLES.items():
        assert record.model_dump()["type"] == name


def test_dead_letter_of_a_tombstone_keeps_an_empty_original() -> None:
    letter = DeadLetter.build(
        source_topic="leads.email.v1",
        partition=0,
        offset=3,
        error_kind=ErrorKind.NOT_JSON,
        message="no value (a tombstone)",
        original=None,
        original_key=b"lead-1",
        received_at=T0,
    )
    assert (letter.original, letter.original_size) == (b"", 0)
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
