"""The worker's own events records, read back without decoding (stream.worker.processor)."""

from __future__ import annotations

from schemas import codec
from schemas.examples import make_event
from schemas.internal import Events
from stream.worker.processor import SentEvents


def _record(n: int) -> tuple[bytes, list[object]]:
    events = [make_event("page_viewed", event_id=f"v{n}", lead_id=f"lead-{n}", anonymous_id=None)]
    return codec.encode_events([codec.encode(e) for e in events]), events  # type: ignore[arg-type]


def test_a_record_sent_is_read_back_as_its_events_once() -> None:
    sent = SentEvents()
    record, events = _record(1)
    sent.keep(record, events)
    taken = sent.take(bytes(bytearray(record)))  # the bytes read back: another object
    assert taken == Events(events=events)  # type: ignore[arg-type]
    assert taken == codec.decode_internal(record)
    assert sent.take(record) is None  # read again (a redelivery): decoded as any record
    assert sent.size == 0


def test_records_not_sent_here_are_not_known() -> None:
    sent = SentEvents()
    sent.keep(*_record(1))
    assert sent.take(_record(2)[0]) is None
    assert sent.take(None) is None
    assert len(sent) == 1


def test_the_oldest_records_are_forgotten_past_the_limit() -> None:
    records = [_record(n) for n in range(10)]
    sent = SentEvents(limit=3 * len(records[0][0]) + 2)
    for record, events in records:
        sent.keep(record, events)
    assert len(sent) == 3
    assert sent.size <= sent.limit
    assert sent.take(records[6][0]) is None
    assert sent.take(records[9][0]) is not None
