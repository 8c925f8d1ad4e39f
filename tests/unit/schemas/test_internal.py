"""Messages between workers on leads.internal.v1 round-trip through the codec."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import codec
from schemas.errors import DecodeError, ErrorKind
from schemas.events import EventBase
from schemas.examples import EVENT_EXAMPLES, make_event
from schemas.internal import Events, Link, MergeIn, MergeOut, Tick, Unlink

AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "message",
    [
        Link(event_id="e1", anonymous_id="anon-1", lead_id="lead-1", occurred_at=AT),
        Unlink(event_id="e2", anonymous_id="anon-1", lead_id="lead-1"),
        MergeOut(event_id="e3", lead_id="lead-2", into_lead_id="lead-1", occurred_at=AT),
        MergeIn(
            event_id="e3",
            lead_id="lead-1",
            from_lead_id="lead-2",
            state={"m": {"b2b": [1, 2.5]}},
            occurred_at=AT,
        ),
        MergeIn(event_id="e4", lead_id="l", from_lead_id="k", state=None, occurred_at=AT),
        Tick(key="lead-1", kind="lead", at=AT),
    ],
)
def test_control_messages_round_trip(message: object) -> None:
    assert codec.decode_internal(codec.encode(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize("event_type", sorted(EVENT_EXAMPLES))
def test_inbound_events_travel_on_the_internal_topic(event_type: str) -> None:
    event = EVENT_EXAMPLES[event_type]
    assert codec.decode_internal(codec.encode(event)) == event


def test_unknown_internal_types_are_decode_errors() -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode_internal(b'{"type": "teleport"}')
    assert info.value.kind == ErrorKind.UNKNOWN_TYPE


def _lead_events() -> list[EventBase]:
    return [
        make_event("page_viewed", event_id="v1", lead_id="lead-1", anonymous_id=None),
        make_event("email_opened", event_id="o1", lead_id="lead-2"),
        make_event("page_viewed", event_id="v2", lead_id="lead-1", anonymous_id=None),
    ]


def test_an_events_record_carries_the_values_as_read_in_their_order() -> None:
    events = _lead_events()
    # values as producers write them: spacing and key order of their own
    values = [
        orjson.dumps(orjson.loads(codec.encode(e)), option=orjson.OPT_INDENT_2) for e in events
    ]
    record = codec.encode_events(values)
    assert record == b'{"type":"events","events":[' + b",".join(values) + b"]}"
    assert codec.decode_internal(record) == Events(events=events)  # type: ignore[arg-type]
    assert codec.decode_internal(codec.encode(Events(events=events))) == Events(events=events)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (make_event("identify", event_id="i1", lead_id="lead-1"), "'identify'"),
        (make_event("page_viewed", event_id="v9", lead_id=None), "no lead_id"),
    ],
)
def test_an_events_record_carries_plain_lead_events_only(event: EventBase, why: str) -> None:
    record = codec.encode_events([codec.encode(_lead_events()[0]), codec.encode(event)])
    with pytest.raises(DecodeError) as info:
        codec.decode_internal(record)
    assert info.value.kind == ErrorKind.SCHEMA_VIOLATION
    assert why in info.value.detail
    first, refused = codec.decode_events_apart(record)
    assert first == _lead_events()[0]
    assert isinstance(refused, tuple)
    assert refused[0].kind == ErrorKind.SCHEMA_VIOLATION
    assert orjson.loads(refused[1]) == orjson.loads(codec.encode(event))


def test_the_events_of_a_refused_record_are_read_one_by_one() -> None:
    events = _lead_events()
    broken = b'{"type":"page_viewed","event_id":"x1","lead_id":"lead-3"}'  # no occurred_at
    record = codec.encode_events([codec.encode(events[0]), broken, codec.encode(events[1])])
    with pytest.raises(DecodeError):
        codec.decode_internal(record)
    parts = codec.decode_events_apart(record)
    assert parts[0] == events[0] and parts[2] == events[1]
    error, raw = parts[1]  # type: ignore[misc]
    assert error.kind == ErrorKind.SCHEMA_VIOLATION and error.field == "occurred_at"
    assert orjson.loads(raw) == orjson.loads(broken)


@pytest.mark.parametrize(
    "record",
    [
        b"{not json",
        b"[]",
        b'{"type":"events","events":[]}',
        b'{"type":"events","events":{}}',
        b'{"type":"events","events":[{}],"extra":1}',
        b'{"type":"tick"}',
    ],
)
def test_a_record_that_is_not_an_events_record_is_not_read_apart(record: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode_events_apart(record)
