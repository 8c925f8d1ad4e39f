"""The internal-topic records the hop-cost bench loads (stream.bench.hop_cost)."""

from __future__ import annotations

from schemas import codec
from stream.bench.data import build_traffic
from stream.bench.hop_cost import as_internal
from stream.kafka.topics import INTERNAL
from stream.simulate.traffic import Delivery


def test_events_are_keyed_by_their_owner_on_the_internal_topic_and_bad_records_left_out() -> None:
    records = list(build_traffic(400).copies(400))
    broken = Delivery(records[0].topic, records[0].key, b"{not json")
    passed = as_internal([*records, broken])
    assert 0 < len(passed) <= len(records)
    for delivery in passed:
        assert delivery.topic == INTERNAL.name
        event = codec.decode_internal(delivery.value)
        assert delivery.key == (event.lead_id or event.anonymous_id).encode()
    anonymous = [d for d in passed if codec.decode_internal(d.value).lead_id is None]
    assert anonymous, "the traffic holds visitors not yet known as leads"
