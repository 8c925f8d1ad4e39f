"""The codec: classification of bad input, time checks, limits, keys, and encode/decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.codec import (
    DecodeLimits,
    decode,
    decode_dead_letter,
    decode_score,
    decode_score_key,
    decode_stage_change,
    encode,
    event_key,
    score_key,
)
from schemas.errors import DecodeError, ErrorKind, LeadstreamError
from schemas.events import EVENT_TYPES, PageViewed
from schemas.examples import EVENT_EXAMPLES, OUTPUT_EXAMPLES, make_event
from schemas.outputs import ScoreKey
from schemas.topics import EVENT_TOPIC

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def _body(event_type: str = "page_viewed", **changes: object) -> bytes:
    """JSON of the example event with fields changed (`...` deletes a field)."""
    data = EVENT_EXAMPLES[event_type].model_dump(mode="json", exclude_none=True)
    for name, value in changes.items():
        if value is ...:
            data.pop(name, None)
        else:
            data[name] = value
    return json.dumps(data).encode()


def _kind(data: bytes, **kwargs: object) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(data, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    return info.value


def test_decode_error_is_a_leadstream_error_and_stream_shares_the_root() -> None:
    from stream.errors import LeadstreamError as StreamRoot

    assert issubclass(DecodeError, LeadstreamError)
    assert StreamRoot is LeadstreamError


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_example_decodes_to_itself(event_type: str) -> None:
    event = EVENT_EXAMPLES[event_type]
    assert decode(encode(event), now=NOW) == event
    assert decode(encode(event), now=NOW, topic=EVENT_TOPIC[event_type]) == event


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", ErrorKind.NOT_JSON),
        (b"{", ErrorKind.NOT_JSON),
        (b"\xff\xfe{}", ErrorKind.NOT_JSON),
        (b'{"type": "page_viewed"} trailing', ErrorKind.NOT_JSON),
        (b"[]", ErrorKind.NOT_OBJECT),
        (b'"page_viewed"', ErrorKind.NOT_OBJECT),
        (b"42", ErrorKind.NOT_OBJECT),
        (b"null", ErrorKind.NOT_OBJECT),
        (b"NaN", ErrorKind.NOT_OBJECT),  # the parser reads NaN; it is no object either way
        (b"{}", ErrorKind.UNKNOWN_TYPE),
        (b'{"type": "page_scrolled"}', ErrorKind.UNKNOWN_TYPE),
        (b'{"type": 7}', ErrorKind.UNKNOWN_TYPE),
    ],
)
def test_malformed_input_is_classified(data: bytes, kind: ErrorKind) -> None:
    assert _kind(data).kind is kind


def test_unknown_type_names_the_field() -> None:
    error = _kind(b'{"type": "page_scrolled"}')
    assert error.field == "type"
    assert "page_scrolled" in error.detail


def test_an_event_on_the_wrong_topic_says_where_it_belongs() -> None:
    error = _kind(_body("email_opened"), topic="leads.clickstream.v1")
    assert error.kind is ErrorKind.UNKNOWN_TYPE
    assert "belongs on leads.email.v1" in error.detail


def test_decode_refuses_a_topic_that_is_not_inbound() -> None:
    with pytest.raises(ValueError, match="not an inbound topic"):
        decode(_body(), now=NOW, topic="leads.scores.v1")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": 5}, "url"),
        ({"utm": {"source": 5}}, "utm.source"),
        ({"occurred_at": "2025-03-14T09:26:53"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"event_id": ...}, "event_id"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_schema_violations_carry_the_field_path(changes: dict[str, object], field: str) -> None:
    error = _kind(_body("page_viewed", **changes))
    assert error.kind is ErrorKind.SCHEMA_VIOLATION
    assert error.field == field


def test_field_paths_index_into_lists_and_dicts() -> None:
    body = _body("form_submitted", fields={"email": "a@b.c", "age": 5})
    assert _kind(body).field == "fields.age"
    score = OUTPUT_EXAMPLES["score_updated"].model_dump(mode="json")
    score["top_rules"][1]["points"] = "many"
    with pytest.raises(DecodeError) as info:
        decode_score(orjson.dumps(score))
    assert info.value.field == "top_rules[1].points"


def test_more_problems_are_counted_in_the_detail() -> None:
    error = _kind(_body("page_viewed", event_id=..., source=..., url=...))
    assert error.detail.endswith("(and 2 more problems)")


def test_missing_identity_is_a_schema_violation() -> None:
    error = _kind(_body("page_viewed", anonymous_id=...))
    assert error.kind is ErrorKind.SCHEMA_VIOLATION
    assert "lead_id" in error.detail


def test_too_large_is_checked_before_parsing() -> None:
    limits = DecodeLimits(max_bytes=100)
    error = _kind(b"[" * 101, limits=limits)
    assert error.kind is ErrorKind.TOO_LARGE
    assert "101 bytes" in error.detail
    body = _body()
    assert decode(body, now=NOW, limits=DecodeLimits(max_bytes=len(body))) is not None
    assert _kind(body, limits=DecodeLimits(max_bytes=len(body) - 1)).kind is ErrorKind.TOO_LARGE


def test_default_limit_is_64_kib() -> None:
    assert DecodeLimits().max_bytes == 65536


@pytest.mark.parametrize(
    ("skew", "ok"), [(timedelta(days=1), True), (timedelta(days=1, seconds=1), False)]
)
def test_future_timestamps_beyond_the_skew_are_rejected(skew: timedelta, ok: bool) -> None:
    body = _body(occurred_at=(NOW + skew).isoformat())
    if ok:
        assert decode(body, now=NOW).occurred_at == NOW + skew
    else:
        error = _kind(body)
        assert error.kind is ErrorKind.TIMESTAMP_IN_FUTURE
        assert error.field == "occurred_at"


def test_the_skew_is_configurable_and_now_none_skips_time_checks() -> None:
    body = _body(occurred_at=(NOW + timedelta(hours=2)).isoformat())
    assert _kind(body, limits=DecodeLimits(max_future_skew=timedelta(hours=1))).kind is (
        ErrorKind.TIMESTAMP_IN_FUTURE
    )
    far = _body(occurred_at="2999-01-01T00:00:00Z")
    assert decode(far, now=None).occurred_at.year == 2999


def test_old_timestamps_are_rejected_only_when_a_max_age_is_set() -> None:
    body = _body(occurred_at="2001-01-01T00:00:00Z")
    assert decode(body, now=NOW).occurred_at.year == 2001
    error = _kind(body, limits=DecodeLimits(max_age=timedelta(days=365)))
    assert error.kind is ErrorKind.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_timestamps_before_2000_are_rejected_by_default(when: str) -> None:
    assert _kind(_body(occurred_at=when)).kind is ErrorKind.TIMESTAMP_TOO_OLD
    late = DecodeLimits(not_before=None)
    assert decode(_body(occurred_at=when), now=NOW, limits=late).occurred_at.tzinfo is not None


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decode(_body(), now=datetime(2025, 1, 1))  # noqa: DTZ001


def test_encode_is_compact_json_without_nulls() -> None:
    event = make_event("page_viewed", referrer=None, title=None)
    data = encode(event)
    parsed = orjson.loads(data)
    assert b" " not in data.replace(b"Pricing | Acme", b"")
    assert "referrer" not in parsed
    assert "title" not in parsed
    assert parsed["type"] == "page_viewed"
    assert parsed["occurred_at"] == "2025-03-14T09:26:53Z"


def test_encode_writes_type_first() -> None:
    assert encode(make_event("email_opened")).startswith(b'{"type":"email_opened"')


@pytest.mark.parametrize("record_type", ["score_updated", "lead_erased"])
def test_score_records_round_trip(record_type: str) -> None:
    record = OUTPUT_EXAMPLES[record_type]
    assert decode_score(encode(record)) == record


@pytest.mark.parametrize("record_type", ["stage_changed", "lead_erased"])
def test_stage_change_records_round_trip(record_type: str) -> None:
    record = OUTPUT_EXAMPLES[record_type]
    assert decode_stage_change(encode(record)) == record


def test_dead_letters_round_trip_with_binary_originals() -> None:
    record = OUTPUT_EXAMPLES["dead_letter"]
    assert decode_dead_letter(encode(record)) == record


def test_outbound_decoders_classify_errors_too() -> None:
    with pytest.raises(DecodeError) as info:
        decode_stage_change(encode(OUTPUT_EXAMPLES["score_updated"]))
    assert info.value.kind is ErrorKind.UNKNOWN_TYPE
    with pytest.raises(DecodeError) as info:
        decode_dead_letter(b'{"type": "dead_letter"}')
    assert info.value.kind is ErrorKind.SCHEMA_VIOLATION


def test_keys() -> None:
    assert event_key(make_event("page_viewed", lead_id=None, anonymous_id="a-1")) == b"a-1"
    assert event_key(make_event("page_viewed", lead_id="l-1", anonymous_id="a-1")) == b"l-1"
    key = score_key("l-1", "default")
    assert orjson.loads(key) == {"lead_id": "l-1", "model": "default"}
    assert decode_score_key(key) == ScoreKey(lead_id="l-1", model="default")


def test_decode_returns_the_concrete_class() -> None:
    assert type(decode(_body("page_viewed"), now=NOW)) is PageViewed


def test_a_tombstone_is_not_json() -> None:
    error = _kind(None)  # type: ignore[arg-type]
    assert error.kind is ErrorKind.NOT_JSON
    assert "tombstone" in error.detail
