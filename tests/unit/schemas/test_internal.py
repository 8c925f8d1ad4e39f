"""Messages between workers on leads.internal.v1 round-trip through the codec."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import codec
from schemas.errors import DecodeError, ErrorKind
from schemas.examples import EVENT_EXAMPLES
from schemas.internal import Link, MergeIn, MergeOut, Tick, Unlink

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
