"""The processor's sequence guard against records of the real broker.

What it is for (records slipping past the agent in a rebalance, see
``stream.faust_guards.sequence``) is shown end to end by the two-worker test in
``test_pipeline.py``, where the broker decides when a record slips; here the guard's own decisions
are driven record by record. The Faust consumer's bookkeeping it reads and writes (assignment,
committed offsets, gap tree, high watermarks) is a plain stand-in; the records it reads for a gap
come from the real broker.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from faust.types import TP as FaustTP
from intervaltree import IntervalTree

from stream.faust_guards.sequence import (
    HELD_CHECKS,
    SAVE_EVERY,
    Fetched,
    SequenceGuard,
    position_key,
)

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
    _acked: defaultdict[TopicPartition, list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    _acked_index: defaultdict[TopicPartition, set[int]] = field(
        default_factory=lambda: defaultdict(set)
    )

    def assignment(self) -> set[TopicPartition]:
        return self.tps

    def done(self, tp: TopicPartition) -> set[int]:
        """Offsets Faust's commit logic counts as done: acknowledged or in a done range, each
        once (an offset in both would break Faust's run of consecutive offsets)."""
        ranged = {o for interval in self._gap[tp] for o in range(interval.begin, interval.end)}
        acked = set(self._acked[tp])
        assert len(acked) == len(self._acked[tp]) and not ranged & acked
        return ranged | acked

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


def _guard(books: ConsumerBooks, bootstrap: str, **kwargs: Any) -> SequenceGuard:
    return SequenceGuard(App(books, type("Conf", (), {"id": "seq-test"})()), bootstrap, **kwargs)


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
    redelivered: list[None] = []
    recovered: list[int] = []
    guard = _guard(
        books,
        kafka_bootstrap,
        on_redelivered=lambda: redelivered.append(None),
        on_recovered=recovered.append,
    )
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
        assert books.done(tp) == {1, 2, 3}
        guard.handled(Message(topic, 0, 4))
        # nothing more reaches the agent although the broker holds 5..9: the first check
        # notes the position, the second (no progress since) reports the partition
        assert await guard.stalled() == set()
        assert await guard.stalled() == {0}
        await guard.catch_up(0, handle)
        assert [offset for offset, _ in handled] == [1, 2, 3, 5, 6, 7, 8, 9]
        assert not await guard.admit(Message(topic, 0, 7), handle)  # arrives late: skipped
        assert await guard.stalled() == set()
        # every offset up to the last handled one is done for Faust's commit logic
        guard.advance()
        assert books.done(tp) == set(range(10))
        # what the worker counts in its metrics: two redeliveries skipped, 3 + 5 records read
        assert len(redelivered) == 2
        assert sum(recovered) == 8
        # revoked: the partition is not checked any more
        books.tps.discard(tp)
        guard.forget({tp})
        assert await guard.admit(Message(topic, 0, 2), handle)
    finally:
        await guard.close()


async def test_the_books_it_opens_are_keyed_as_aiokafka_commits_need(
    kafka_bootstrap: str, unique: str
) -> None:
    """Faust's consumer lists its assignment as Faust ``TP`` tuples, and its commits hand the
    keys of its acknowledgement books to aiokafka, which refuses any key but its own
    ``TopicPartition`` (under exactly_once: "Key should be TopicPartition instance" from the
    transaction's commit, and the worker's fetcher stops). The two types are equal and hash
    alike, so a book the guard opens keeps the key it was opened with: it must be aiokafka's."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 6)
    tp = TopicPartition(topic, 0)
    faust_tp = FaustTP(topic, 0)
    assert faust_tp == tp and type(faust_tp) is not TopicPartition
    books = ConsumerBooks({faust_tp}, {tp: 6})  # type: ignore[arg-type]  # as Faust lists it
    books._committed_offset[tp] = 0
    guard = _guard(books, kafka_bootstrap)
    handled: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)

    guard.assign({tp})
    try:
        assert await guard.admit(Message(topic, 0, 0), handle)
        guard.handled(Message(topic, 0, 0))
        assert await guard.admit(Message(topic, 0, 4), handle)  # 1..3 read from the broker
        guard.handled(Message(topic, 0, 4))
        guard.advance()
        assert handled == [1, 2, 3]
        assert books.done(tp) == set(range(5))
        opened = [*books._acked, *books._acked_index]
        assert opened and all(type(key) is TopicPartition for key in opened), opened
    finally:
        await guard.close()


async def test_a_partition_that_delivers_nothing_after_its_assignment_is_read(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 6)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: 6})
    books._committed_offset[tp] = 2
    guard = _guard(books, kafka_bootstrap)
    handled: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)

    guard.assign({tp})
    try:
        assert await guard.stalled() == set()  # notes the committed offset
        assert await guard.stalled() == {0}  # no record since: reported
        await guard.catch_up(0, handle)
        assert handled == [2, 3, 4, 5]
        assert books.done(tp) == {2, 3, 4, 5}
        assert await guard.stalled() == set()
    finally:
        await guard.close()


async def test_a_partition_the_group_never_committed_is_read_from_its_log_start(
    kafka_bootstrap: str, unique: str
) -> None:
    """No committed offset (the group never committed the partition): the worker reads it
    from its earliest record, so that is where the guard expects the first one; records
    before the log start (deleted) are not expected."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 8)
    tp = TopicPartition(topic, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    # the assignment also holds a table's changelog (never committed by the group either):
    # not a topic of the agent, not checked
    changelog = TopicPartition(f"seq-{unique}-changelog", 0)
    await _topic_with(kafka_bootstrap, changelog.topic, 3)
    books = ConsumerBooks({tp, changelog}, {tp: 8, changelog: 3})  # no committed offsets
    guard = _guard(books, kafka_bootstrap, topics=(topic,))
    handled: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)

    guard.assign({tp, changelog})
    try:
        # nothing delivered since the assignment: noticed, read from the log start
        assert await guard.stalled() == set()
        assert await guard.stalled() == {0}
        await guard.catch_up(0, handle)
        assert handled == [2, 3, 4, 5, 6, 7]
        assert books.done(tp) == set(range(2, 8))
        # after a new assignment, the first record delivered is past records never delivered
        books.tps.discard(tp)
        guard.forget({tp})
        books.tps.add(tp)
        guard.assign({tp})
        handled.clear()
        assert await guard.admit(Message(topic, 0, 5), handle)
        assert handled == [2, 3, 4]
    finally:
        await guard.close()


async def test_a_partition_committed_on_the_broker_is_not_read_from_its_log_start(
    kafka_bootstrap: str, unique: str
) -> None:
    """Between a rebalance and Faust's seek, Faust's books hold no committed offset for a
    partition the group did commit: the guard asks the broker, so it neither reads the
    partition again from its log start (its whole history applied twice) nor hands on a copy
    of a record below the committed offset (fetched before the rebalance)."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 10)
    tp = TopicPartition(topic, 0)
    group = f"seq-group-{unique}"
    committer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign([tp])
        await committer.commit({tp: 6})
    finally:
        await committer.stop()
    books = ConsumerBooks({tp}, {tp: 10})  # Faust's books: no committed offset (yet)
    guard = SequenceGuard(App(books, type("Conf", (), {"id": group})()), kafka_bootstrap)
    handled: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)

    guard.assign({tp})
    try:
        assert not await guard.admit(Message(topic, 0, 3), handle)  # below the commit: done
        assert await guard.admit(Message(topic, 0, 8), handle)
        assert handled == [6, 7]  # only what lies between the commit and the record
        guard.forget({tp})
        guard.assign({tp})
        handled.clear()
        assert await guard.stalled() == set()  # notes the committed offset, not the log start
        assert await guard.stalled() == {0}
        await guard.catch_up(0, handle)
        assert handled == [6, 7, 8, 9]
    finally:
        await guard.close()


async def test_a_saved_position_skips_what_was_handled_before_a_restart(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 30)
    tp = TopicPartition(topic, 0)
    table: dict[bytes, bytes] = {}
    conf = type("Conf", (), {"id": "seq-test"})()

    async def handle(record: Any) -> None:
        raise AssertionError(f"nothing is missing here, yet {record} was read")

    before = SequenceGuard(
        App(ConsumerBooks({tp}, {tp: 30}), conf), kafka_bootstrap, positions=(table,)
    )
    before.assign({tp})
    for offset in range(25):
        assert await before.admit(Message(topic, 0, offset), handle)
        before.handled(Message(topic, 0, offset))
    assert table == {position_key(topic, 0): str(SAVE_EVERY - 1).encode()}
    # a restart: the table comes back from its changelog, the committed offset is older
    books = ConsumerBooks({tp}, {tp: 30})
    books._committed_offset[tp] = 5
    after = SequenceGuard(App(books, conf), kafka_bootstrap, positions=(table,))
    after.assign({tp})
    skipped = []
    for offset in range(5, 25):
        if await after.admit(Message(topic, 0, offset), handle):
            after.handled(Message(topic, 0, offset))
        else:
            skipped.append(offset)
    assert skipped == list(range(5, SAVE_EVERY))
    await before.close()
    await after.close()


async def test_a_record_seen_before_the_assignment_signal_is_checked(
    kafka_bootstrap: str, unique: str
) -> None:
    """The agent can get a partition's first records before the guard hears of the assignment:
    they are tracked, so a later stall check does not read them again."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 3)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: 3})
    books._committed_offset[tp] = 0
    guard = _guard(books, kafka_bootstrap)

    async def handle(record: Any) -> None:
        raise AssertionError(f"nothing is missing here, yet {record} was read")

    try:
        for offset in range(3):
            assert await guard.admit(Message(topic, 0, offset), handle)
            guard.handled(Message(topic, 0, offset))
        guard.assign({tp})  # the signal, late
        assert await guard.stalled() == set() and await guard.stalled() == set()
    finally:
        await guard.close()


async def test_the_lowest_position_saved_in_the_tables_is_trusted(
    kafka_bootstrap: str, unique: str
) -> None:
    """Each table's changelog orders only its own writes: a crash can keep the position saved
    in one table and lose the state writes (and position) of the other."""
    tp = TopicPartition(f"seq-{unique}", 0)
    leads = {position_key(tp.topic, 0): b"25"}
    identities = {position_key(tp.topic, 0): b"10"}
    books = ConsumerBooks({tp}, {tp: 30})
    books._committed_offset[tp] = 11
    guard = _guard(books, kafka_bootstrap, positions=(leads, identities))

    async def handle(record: Any) -> None:
        raise AssertionError(f"nothing is missing here, yet {record} was read")

    guard.assign({tp})
    try:
        assert not await guard.admit(Message(tp.topic, 0, 9), handle)  # below both: skipped
        assert await guard.admit(Message(tp.topic, 0, 11), handle)  # above the lower: handled
        del identities[position_key(tp.topic, 0)]
        fresh = _guard(books, kafka_bootstrap, positions=(leads, identities))
        fresh.assign({tp})
        assert await fresh.admit(Message(tp.topic, 0, 11), handle)  # one table has none
    finally:
        await guard.close()


async def test_a_catch_up_requested_while_records_are_read_is_dropped(
    kafka_bootstrap: str, unique: str
) -> None:
    """A partition tick among the records being read (sent while the broker was away) does not
    start a second reading inside the first."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 6)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: 6})
    books._committed_offset[tp] = 0
    guard = _guard(books, kafka_bootstrap)
    handled: list[int] = []

    async def handle(record: Any) -> None:
        handled.append(record.offset)
        await guard.catch_up(0, handle)  # as a partition tick's handling would

    guard.assign({tp})
    try:
        assert await guard.stalled() == set()
        assert await guard.stalled() == {0}
        await guard.catch_up(0, handle)
        assert handled == [0, 1, 2, 3, 4, 5]
    finally:
        await guard.close()


def test_commits_held_below_the_last_handled_record_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tp = TopicPartition("held", 0)
    books = ConsumerBooks({tp}, {tp: 30}, {tp: 10})
    guard = _guard(books, "unused:9092")
    guard.assign([tp])
    guard._last[("held", 0)] = 20
    with caplog.at_level("WARNING", logger="stream.faust_guards.sequence"):
        for _ in range(HELD_CHECKS - 1):
            guard.advance()
        assert not caplog.records  # not yet: commits may still catch up
        guard.advance()
        assert [r.getMessage() for r in caplog.records] == [
            f"held[0]: commits held at 10 for {HELD_CHECKS} checks, last handled 20; acked 11 "
            "offsets (first [10, 11, 12, 13, 14], last [18, 19, 20]), 11 indexed (committed "
            "offset indexed: True, listed: True); gaps []"
        ]
        books._committed_offset[tp] = 21  # the commits caught up
        for _ in range(HELD_CHECKS + 1):
            guard.advance()
        assert len(caplog.records) == 1


@dataclass(eq=False)
class BatchEvent:
    """What ``stream.take_events`` hands out: an event carrying its message."""

    message: Message


class CountingTable(dict[bytes, bytes]):
    """A table that counts its writes (each is one changelog message in Faust)."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


async def test_a_batch_is_admitted_record_by_record_and_its_position_saved_once(
    kafka_bootstrap: str, unique: str
) -> None:
    """Records of a batch are admitted before any is handled: one delivered twice within the
    batch is admitted once, and the position is saved at most once per batch."""
    topic = f"seq-{unique}"
    count = 4 + 2 * SAVE_EVERY
    await _topic_with(kafka_bootstrap, topic, count)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: count})
    books._committed_offset[tp] = 0
    table = CountingTable()
    guard = _guard(books, kafka_bootstrap, positions=(table,))

    async def handle(record: Any) -> None:
        raise AssertionError(f"nothing is missing here, yet {record} was read")

    async def admitted(offsets: list[int]) -> list[BatchEvent]:
        batch = [BatchEvent(Message(topic, 0, offset)) for offset in offsets]
        return [event for event in batch if await guard.admit(event.message, handle)]

    guard.assign({tp})
    try:
        first = await admitted([0, 1, 2, 1, 3])  # 1 delivered again within the batch
        assert [event.message.offset for event in first] == [0, 1, 2, 3]
        guard.handled_batch(first)
        assert table.writes == 0  # fewer than SAVE_EVERY handled
        second = await admitted(list(range(4, count)))
        guard.handled_batch(second)
        # count records handled: saved once, at the batch's last record
        assert table == {position_key(topic, 0): str(count - 1).encode()}
        assert table.writes == 1
        assert not await guard.admit(Message(topic, 0, 10), handle)  # handled: skipped
        guard.advance()
        assert books.done(tp) == set(range(count))
    finally:
        await guard.close()


async def test_an_interrupted_batch_is_read_again(kafka_bootstrap: str, unique: str) -> None:
    """A batch admitted but not handled (the agent crashed mid-batch; Faust restarts it and
    does not deliver those records again): the next record delivered has them read first."""
    topic = f"seq-{unique}"
    await _topic_with(kafka_bootstrap, topic, 8)
    tp = TopicPartition(topic, 0)
    books = ConsumerBooks({tp}, {tp: 8})
    books._committed_offset[tp] = 0
    guard = _guard(books, kafka_bootstrap)
    read: list[int] = []

    async def handle(record: Any) -> None:
        read.append(record.offset)

    async def admitted(offsets: list[int]) -> list[BatchEvent]:
        batch = [BatchEvent(Message(topic, 0, offset)) for offset in offsets]
        return [event for event in batch if await guard.admit(event.message, handle)]

    guard.assign({tp})
    try:
        guard.handled_batch(await admitted([0, 1, 2]))
        cut_short = await admitted([3, 4, 5])
        assert len(cut_short) == 3 and read == []
        guard.interrupted(cut_short)
        assert await guard.admit(Message(topic, 0, 6), handle)
        assert read == [3, 4, 5]
        # a partition whose first batch was interrupted starts again from the committed offset
        guard.forget({tp})
        guard.assign({tp})
        read.clear()
        guard.interrupted(await admitted([0, 1]))
        assert await guard.admit(Message(topic, 0, 2), handle)
        assert read == [0, 1]
    finally:
        await guard.close()
