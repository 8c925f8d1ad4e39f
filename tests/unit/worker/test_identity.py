"""Anonymous activity is held, bounded, and released to the lead on identify."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.worker.identity import AnonRecord, IdentityLimits, expire, hold, link

LIMITS = IdentityLimits(max_events=3, max_age=timedelta(hours=1))


def test_held_events_are_released_in_order_on_link() -> None:
    record = None
    for n in range(3):
        held = hold(record, f"e{n}".encode(), now=100.0 + n, limits=LIMITS)
        assert held.dropped == []
        record = held.record
    assert record is not None
    assert record.first_held_at == 100.0
    linked = link(record, "lead-1")
    assert linked.released == [b"e0", b"e1", b"e2"]
    assert linked.record == AnonRecord(lead_id="lead-1")
    assert linked.relinked_from is None


def test_the_oldest_give_way_beyond_the_count_limit() -> None:
    record = None
    dropped: list[bytes] = []
    for n in range(5):
        held = hold(record, f"e{n}".encode(), now=0.0, limits=LIMITS)
        record, dropped = held.record, dropped + held.dropped
    assert record is not None
    assert record.held == [b"e2", b"e3", b"e4"]
    assert dropped == [b"e0", b"e1"]


def test_unidentified_records_expire_after_max_age() -> None:
    record = hold(None, b"e0", now=1000.0, limits=LIMITS).record
    assert expire(record, now=1000.0 + 3599, limits=LIMITS) == (record, [])
    assert expire(record, now=1000.0 + 3600, limits=LIMITS) == (None, [b"e0"])


def test_linked_records_never_expire_and_refuse_to_hold() -> None:
    record = link(None, "lead-1").record
    assert expire(record, now=1e12, limits=LIMITS) == (record, [])
    with pytest.raises(ValueError, match="linked"):
        hold(record, b"e", now=0.0, limits=LIMITS)


def test_relinking_to_another_lead_is_reported() -> None:
    linked = link(AnonRecord(lead_id="lead-1"), "lead-2")
    assert linked.relinked_from == "lead-1"
    assert linked.record.lead_id == "lead-2"
    assert link(AnonRecord(lead_id="lead-2"), "lead-2").relinked_from is None


@given(st.lists(st.binary(min_size=1, max_size=20).map(lambda b: b.hex().encode()), max_size=10))
def test_nothing_is_lost_between_held_dropped_and_released(events: list[bytes]) -> None:
    record = None
    dropped: list[bytes] = []
    for n, event in enumerate(events):
        held = hold(record, event, now=float(n), limits=LIMITS)
        record, dropped = held.record, dropped + held.dropped
    released = link(record, "lead").released if record is not None else []
    assert dropped + released == events


@given(
    st.builds(
        AnonRecord,
        lead_id=st.none() | st.text(min_size=1, max_size=8),
        held=st.lists(st.text(max_size=10).map(str.encode), max_size=3),
        first_held_at=st.none() | st.floats(0, 1e10),
    )
)
def test_json_round_trip(record: AnonRecord) -> None:
    if not record.held:
        record.first_held_at = None
    assert AnonRecord.from_json(record.to_json()) == record


def test_a_record_remembers_the_last_internal_offset_it_held() -> None:
    first = hold(None, b"e1", now=0.0, limits=LIMITS, offset=7).record
    assert first.already_applied(7) and first.already_applied(3)
    assert not first.already_applied(8)
    assert not first.already_applied(None)
    again = hold(first, b"e2", now=1.0, limits=LIMITS, offset=9).record
    assert again.already_applied(9) and not again.already_applied(10)
    assert not AnonRecord().already_applied(0)
    assert AnonRecord.from_json(again.to_json()).already_applied(9)
