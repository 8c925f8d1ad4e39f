"""The processor's sequence guard against records of the real broker.

What it is for (records slipping past the agent in a rebalance, see ``stream.sequence``) is
shown end to end by the two-worker test in ``test_pipeline.py``, where the broker decides when a
record slips; here the guard's own decisions are driven record by record. The Faust consumer's
bookkeeping it reads and writes (assignment, committed offsets, gap tree, high watermarks) is a
plain stand-in; the records it reads for a gap come from the real broker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from intervaltree import IntervalTree

from stream.sequence import Fetched, SequenceGuard

pytestmark = pytest.mark.integration


@dataclass
class ConsumerBooks:
    """The parts of Faust's consumer the guard uses."""

    tps: set[TopicPartition]
    highwaters: dict[TopicPartition, int]
    _committed_offset: dict[TopicPartition, int | None] = field(default_factory=dict)
    _gap: defaultdict[TopicPartition, IntervalTree] = field(
        default_factory=lambda: defaultdict(IntervalTree)
    )

    def assignment(self) -> set[TopicPartition]:
        return self.tps

    def highwater(self, tp: TopicPartition) -> int:
        return self.highwaters[tp]


@dataclass
class App:
    consumer: ConsumerBooks
    conf: Any


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


async def _topic_with(kafka_bootstrap: str, name: str, count: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(name, key=b"k", value=f"record-{i}".encode())
    finally:
        await producer.stop()


async def test_gaps_are_read_and_handled_in_order_and_redeliveries_skipped(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 10)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: 10})
    books._committed_offset[tp] = 0
    guard = SequenceGuard(App(books, type("Conf", (), {"id": "seq-test"})()), kafka_bootstrap)
    handled: list[tuple[int, bytes | None]] = []

    async def handle(record: Any) -> None:
        assert isinstance(record, Fetched)
        handled.append((record.offset, record.value))

    guard.assign({tp})
    try:
        # the first record of the assignment is at the committed offset: nothing missing
        assert await guard.admit(Message(topic, 0, 0), handle)
        guard.handled(Message(topic, 0, 0))
        # delivered again after a seek: skipped
        assert not await guard.admit(Message(topic, 0, 0), handle)
        # 1..3 never reached the agent: read from the broker and handled first, in order
        assert await guard.admit(Message(topic, 0, 4), handle)
        assert handled == [(1, b"record-1"), (2, b"record-2"), (3, b"record-3")]
        assert books._gap[tp].overlaps(1, 4) and not books._gap[tp].overlaps(4, 5)
        guard.handled(Message(topic, 0, 4))
        # nothing more reaches the agent although the broker holds 5..9: the first check
        # notes the position, the second (no progress since) reports the partition
        assert guard.stalled() == set()
        assert guard.stalled() == {0}
        await guard.catch_up(0, handle)
        assert [offset for offset, _ in handled] == [1, 2, 3, 5, 6, 7, 8, 9]
        assert not await guard.admit(Message(topic, 0, 7), handle)  # arrives late: skipped
        assert guard.stalled() == set()
        # revoked: the partition is not checked any more
        guard.forget({tp})
        assert await guard.admit(Message(topic, 0, 2), handle)
    finally:
        await guard.close()
