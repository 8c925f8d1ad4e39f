"""Inbound event models: identity rules, time rules, strictness and the discriminated unions."""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from schemas import events
from schemas.events import EVENT_TYPES, InboundEvent
from schemas.examples import EVENT_EXAMPLES, make_event

INBOUND = TypeAdapter(InboundEvent)


def _union_members(alias: object) -> set[type]:
    union = typing.get_args(alias)[0]
    return set(typing.get_args(union))


def test_every_event_type_has_an_example_and_one_class() -> None:
    assert set(EVENT_EXAMPLES) == set(EVENT_TYPES)
    assert _union_members(InboundEvent) == set(EVENT_TYPES.values())
    assert len(EVENT_TYPES) == 37


@pytest.mark.parametrize(
    ("alias", "types"),
    [
        (events.ClickstreamEvent, events.CLICKSTREAM_TYPES),
        (events.EmailEvent, events.EMAIL_TYPES),
        (events.SocialEvent, events.SOCIAL_TYPES),
        (events.ProfileEvent, events.PROFILE_TYPES),
        (events.CrmFeedbackEvent, events.CRM_FEEDBACK_TYPES),
    ],
)
def test_topic_unions_partition_the_event_types(alias: object, types: dict[str, type]) -> None:
    assert _union_members(alias) == set(types.values())


def test_type_names_are_short_snake_case() -> None:
    for name in EVENT_TYPES:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name), name
        assert len(name) <= 24


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_example_round_trips_through_the_union(event_type: str) -> None:
    event = EVENT_EXAMPLES[event_type]
    parsed = INBOUND.validate_json(event.model_dump_json())
    assert type(parsed) is EVENT_TYPES[event_type]
    assert parsed == event


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_event("page_viewed", occurred_at=datetime(2025, 1, 1, 12, 0))  # noqa: DTZ001


def test_occurred_at_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = make_event("page_viewed", occurred_at=datetime(2025, 1, 1, 12, 0, tzinfo=plus_two))
    assert event.occurred_at == datetime(2025, 1, 1, 10, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_an_event_needs_lead_id_or_anonymous_id() -> None:
    with pytest.raises(ValidationError, match="at least one of lead_id and anonymous_id"):
        make_event("page_viewed", lead_id=None, anonymous_id=None)
    assert make_event("page_viewed", lead_id="l-1", anonymous_id=None).lead_id == "l-1"
    assert make_event("page_viewed", anonymous_id="a-1").anonymous_id == "a-1"


@pytest.mark.parametrize(
    "event_type",
    ["identify", "leads_merged", "lead_erased", "sales_accepted", "stage_set", "closed_won"],
)
def test_events_about_known_leads_require_lead_id(event_type: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_event(event_type, lead_id=None, anonymous_id="a-1")
    assert info.value.errors()[0]["loc"] == ("lead_id",)


@pytest.mark.parametrize("bad", ["", " ", "has space", "x" * 129, "tab\there"])
def test_event_id_must_be_non_empty_without_whitespace_and_bounded(bad: str) -> None:
    with pytest.raises(ValidationError):
        make_event("page_viewed", event_id=bad)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        make_event("page_viewed", colour="blue")
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        make_event("page_viewed", utm={"source": "x", "campaign_name": "y"})


def test_events_are_frozen() -> None:
    event = make_event("page_viewed")
    with pytest.raises(ValidationError, match="frozen"):
        event.event_id = "other"  # type: ignore[misc]


def test_types_are_not_coerced() -> None:
    """JSON must carry the JSON Schema's types: no "120" for 120, no "yes" for true."""
    payload = EVENT_EXAMPLES["profile_updated"].model_dump(mode="json")
    payload["traits"]["company_size"] = "120"
    with pytest.raises(ValidationError, match="company_size"):
        INBOUND.validate_json(orjson.dumps(payload))
    with pytest.raises(ValidationError):
        make_event("email_opened", machine_open="yes")


def test_non_finite_numbers_are_rejected() -> None:
    body = EVENT_EXAMPLES["video_viewed"].model_dump_json().replace('"percent_watched":80.0', "%s")
    for literal in ('"percent_watched":NaN', '"percent_watched":Infinity'):
        with pytest.raises(ValidationError):
            INBOUND.validate_json(body % literal)
    assert INBOUND.validate_json(body % '"percent_watched":12.5').percent_watched == 12.5


def test_type_decides_the_class_and_unknown_types_fail() -> None:
    payload = EVENT_EXAMPLES["email_clicked"].model_dump(mode="json")
    assert isinstance(INBOUND.validate_json(orjson.dumps(payload)), events.EmailClicked)
    payload["type"] = "email_forwarded"
    with pytest.raises(ValidationError) as info:
        INBOUND.validate_json(orjson.dumps(payload))
    assert info.value.errors()[0]["type"] == "union_tag_invalid"


def test_email_opened_defaults_to_a_human_open() -> None:
    payload = EVENT_EXAMPLES["email_opened"].model_dump(mode="json", exclude={"machine_open"})
    assert INBOUND.validate_json(orjson.dumps(payload)).machine_open is False  # type: ignore[union-attr]
    assert make_event("email_opened", machine_open=True).machine_open is True  # type: ignore[attr-defined]


def test_bounce_kind_is_soft_or_hard() -> None:
    assert make_event("email_bounced", bounce="soft").bounce == "soft"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        make_event("email_bounced", bounce="blocked")


def test_merge_needs_two_different_leads() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        make_event("leads_merged", lead_id="l-1", merged_lead_id="l-1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("country", "GBR"),
        ("country", "gb"),
        ("email", "not-an-email"),
        ("age", 151),
        ("birth_year", 1850),
        ("company_size", -1),
        ("annual_revenue", -5.0),
        ("seniority", "intern"),
    ],
)
def test_traits_are_checked(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make_event("profile_updated", traits={field: value})


def test_traits_keep_custom_scalars_with_their_types() -> None:
    event = make_event(
        "profile_updated", traits={"custom": {"plan": "pro", "logins": 5, "beta": True, "x": 0.5}}
    )
    parsed = INBOUND.validate_json(event.model_dump_json())
    assert parsed.traits.custom == {"plan": "pro", "logins": 5, "beta": True, "x": 0.5}  # type: ignore[union-attr]
    assert type(parsed.traits.custom["beta"]) is bool  # type: ignore[union-attr]
    assert type(parsed.traits.custom["logins"]) is int  # type: ignore[union-attr]


def test_json_schema_says_an_identity_is_required() -> None:
    schema = events.PageViewed.model_json_schema()
    assert {"required": ["lead_id"], "properties": {"lead_id": {"type": "string"}}} in schema[
        "anyOf"
    ]
    assert schema["additionalProperties"] is False


def test_make_event_rejects_unknown_types() -> None:
    with pytest.raises(KeyError):
        make_event("page_scrolled")
