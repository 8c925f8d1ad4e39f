"""Class patches of faust-streaming (stream.faust_guards.patches), on Faust's own classes."""

from __future__ import annotations

import asyncio
import base64
import gc
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, Fetcher, FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.assignor.client_assignment import ClientAssignment
from faust.events import Event
from faust.stores.rocksdb import RocksDBOptions, Store
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.topics import Topic
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import Message

from stream import faust_guards
from stream.faust_guards import readers
from stream.faust_guards.delivery import guard_eager_delivery
from stream.faust_guards.local_stores import install_write_tracking
from stream.faust_guards.patches import (
    fetch_mode,
    guard_buffer_flush,
    guard_commit_offsets,
    guard_fetch_batching,
    guard_fetched_partitions,
    guard_idle_fetch,
    guard_producer_idempotence,
    guard_read_offsets,
    guard_recovery_flush,
    guard_rocksdb_compression,
    guard_rocksdb_unlogged_writes,
    guard_skipped_acks,
    guard_standby_backlog,
    leave_unacknowledged,
    set_fetch_batching,
    set_producer_idempotence,
)
from stream.faust_guards.requests import guard_full_requests
from stream.faust_guards.sending import guard_topic_producer

TOPIC = "guarded"
PART = TP(TOPIC, 0)
COMMITTED = 5
"""The offset the broker holds as committed for ``PART`` (where a seek goes back to)."""


class OneBatch(aiokafka.Consumer):  # type: ignore[misc]
    """Faust's Kafka consumer with the broker replaced: one fetch returns offsets 10 and 11 of
    ``PART``, and the committed offset is ``COMMITTED``."""

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records = [
            ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"v", None, 1, 1, [])
            for offset in (10, 11)
        ]
        return {PART: records}, {PART}

    def highwater(self, tp: Any) -> int | None:
        return None

    async def seek_to_committed(self) -> dict[Any, int]:
        return {PART: COMMITTED}


async def consumer() -> Any:
    """A consumer of a Faust app that consumes (and acknowledges) ``TOPIC``."""
    app = faust.App("guards-test", broker="kafka://localhost:1")
    app.topics.add(app.topic(TOPIC))
    await app.topics._update_indices()  # what the conductor does when subscriptions change

    def ignore(*args: Any) -> None:
        return None

    return OneBatch(
        app.transport, callback=ignore, on_partitions_revoked=ignore, on_partitions_assigned=ignore
    )


async def test_an_untracked_record_is_not_acknowledged_and_a_tracked_one_is() -> None:
    guard_skipped_acks()
    books = await consumer()
    fetched = books.getmany(timeout=1.0)
    _, skipped = await anext(fetched)
    _, handled = await anext(fetched)
    # a stream marks a record tracked when it hands it to an agent (faust.streams)
    handled.tracked = True
    books.track_message(handled)

    assert books.ack(skipped) is False  # unguarded: True, and offset 10 would be committed
    assert books.ack(handled) is True
    assert books._acked[PART] == [11]


async def test_the_records_of_an_interrupted_batch_are_not_acknowledged() -> None:
    guard_skipped_acks()
    books = await consumer()
    fetched = books.getmany(timeout=1.0)
    batch = [message async for _, message in fetched]
    for message in batch:  # both handed to the stream, as take_events does
        message.tracked = True
        books.track_message(message)
    leave_unacknowledged([SimpleNamespace(message=batch[1])])
    assert books.ack(batch[0]) is True
    assert books.ack(batch[1]) is False  # unguarded: True, and 11 would be committed unhandled
    assert books._acked[PART] == [10]


async def test_a_seek_during_a_hand_over_restores_the_seeks_read_offset() -> None:
    guard_read_offsets()
    books = await consumer()
    fetched = books.getmany(timeout=1.0)
    _, first = await anext(fetched)
    # the record is being handed over when a rebalance seeks back to the committed offset...
    await books.perform_seek()
    assert books._read_offset[PART] == COMMITTED
    # ...and Faust's fetch loop records the handed-over record as read afterwards
    books._read_offset[PART] = first.offset
    _, second = await anext(fetched)
    assert books._read_offset[PART] == COMMITTED  # unguarded: 10, and 5-9 are dropped
    # without a seek, the read offset the fetch loop records stays
    books._read_offset[PART] = second.offset
    await anext(fetched, None)
    assert books._read_offset[PART] == second.offset


def test_each_guard_patches_once() -> None:
    patched: list[tuple[Callable[[], None], type, tuple[str, ...]]] = [
        (guard_skipped_acks, Consumer, ("ack",)),
        (guard_read_offsets, Consumer, ("perform_seek", "getmany")),
        (guard_buffer_flush, ProducerBuffer, ("_send_pending", "flush")),
        (guard_commit_offsets, Consumer, ("_new_offset",)),
        (install_write_tracking, Collection, ("send_changelog", "_on_changelog_sent")),
        (guard_eager_delivery, Consumer, ("_drain_messages",)),
        (guard_fetch_batching, aiokafka.AIOKafkaConsumerThread, ("_create_worker_consumer",)),
        (guard_idle_fetch, Fetcher, ("_proc_fetch_request",)),
        (guard_recovery_flush, Recovery, ("_set_recovery_ended",)),
        (guard_standby_backlog, Recovery, ("on_recovery_completed",)),
        (guard_fetched_partitions, aiokafka.AIOKafkaConsumerThread, ("_fetch_records",)),
        (guard_producer_idempotence, aiokafka.Producer, ("_settings_extra",)),
        (guard_rocksdb_compression, RocksDBOptions, ("as_options",)),
        (guard_rocksdb_unlogged_writes, RocksDBOptions, ("open",)),
        (guard_full_requests, MessageAccumulator, ("drain_by_nodes",)),
        (guard_topic_producer, Topic, ("_get_producer",)),
    ]
    faust_guards.install()
    guard_fetch_batching()
    guard_idle_fetch()
    guard_producer_idempotence()
    for guard, owner, names in patched:
        installed = {name: vars(owner)[name] for name in names}
        guard()
        faust_guards.install()
        assert {name: vars(owner)[name] for name in names} == installed, guard.__name__
        for name in names:
            assert vars(owner)[name].__module__.startswith("stream.faust_guards"), name


class _SlowChannel:
    """Stands in for a topic: handing a message to the client takes 0.3 s (a busy machine)."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(0.3)
        self.published.append(fut.message.value)


async def test_flush_waits_until_the_buffer_is_empty() -> None:
    guard_buffer_flush()
    channel = _SlowChannel()
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        for value in range(3):
            buffer.put(SimpleNamespace(message=SimpleNamespace(channel=channel, value=value)))  # type: ignore[arg-type]
        await buffer.flush()
        # unguarded, the flush gives up after 0.1 s without a sent message: nothing sent yet
        assert channel.published == [0, 1, 2]
        assert buffer.size == 0
    finally:
        await buffer.stop()


# ----------------------------------------------------------------------------- commit offsets


def _books(acked: list[int], gaps: list[tuple[int, int]], committed: int | None) -> Any:
    """What Faust's commit reckoning reads of a consumer, for one partition ``tp``."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    tree = IntervalTree()
    for begin, end in gaps:
        tree.addi(begin, end)
    return SimpleNamespace(
        _acked=defaultdict(list, {"tp": list(acked)}),
        _acked_index=defaultdict(set, {"tp": set(acked)}),
        _gap=defaultdict(IntervalTree, {"tp": tree}),
        _committed_offset=defaultdict(lambda: None, {"tp": committed}),
    )


def _new_offset(books: Any) -> int | None:
    from faust.transport.consumer import Consumer

    guard_commit_offsets()
    result: int | None = Consumer._new_offset(books, "tp")
    return result


def test_a_gap_over_acknowledged_offsets_does_not_break_the_run() -> None:
    # offsets 12-14 were skipped by the reader and later handled and acknowledged anyway
    books = _books(list(range(10, 20)), [(12, 15)], committed=10)
    assert _new_offset(books) == 20  # unguarded: 13 (12-14 listed twice)
    assert books._acked["tp"] == [] and not books._gap["tp"]


def test_a_gap_past_the_highest_acknowledged_offset_is_taken_whole() -> None:
    books = _books([10, 11, 15], [(12, 20)], committed=10)
    assert _new_offset(books) == 20  # unguarded: 16 (15 twice; 19 left in the gaps)
    assert not books._gap["tp"]


def test_offsets_already_committed_are_dropped() -> None:
    books = _books([50, 51, 100, 101], [], committed=100)
    assert _new_offset(books) == 102  # unguarded: 52, below the committed offset
    assert books._acked_index["tp"] == set()


def test_a_missing_offset_still_holds_the_commit() -> None:
    books = _books([10, 11, 13], [], committed=10)
    assert _new_offset(books) == 12
    assert books._acked["tp"] == [13]


async def test_an_apps_consumer_fetches_with_the_fetch_options_it_was_given() -> None:
    """Faust's driver builds the aiokafka consumer with fetch_min_bytes 1 and fetch_max_wait_ms
    1,500; an app given fetch options gets a consumer with those, and an app without keeps
    Faust's."""
    chosen = faust.App("fetch-options", broker="kafka://localhost:1")
    set_fetch_batching(chosen, 64 * 1024, 10)
    plain = faust.App("fetch-defaults", broker="kafka://localhost:1")
    built = {}
    for name, app in (("chosen", chosen), ("plain", plain)):
        thread = app.consumer._thread
        consumer = thread._create_worker_consumer(app.transport)
        built[name] = (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms)
    assert built == {"chosen": (64 * 1024, 10), "plain": (1, 1500)}


async def test_an_idle_wait_reaches_the_fetcher_the_consumer_builds_when_it_starts() -> None:
    """The fetch modes are set on the consumer's Fetcher, which ``start()`` builds (the fetch
    requests themselves: tests/integration/faust_guards/test_idle_fetch.py)."""
    app = faust.App("fetch-idle", broker="kafka://localhost:1")
    set_fetch_batching(app, 64 * 1024, 10, 200)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer.start.__qualname__.endswith("start_with_modes")
    for wait in (0, 10):  # not above the batching wait: one mode, aiokafka's own start
        other = faust.App(f"fetch-idle-{wait}", broker="kafka://localhost:1")
        set_fetch_batching(other, 64 * 1024, 10, wait)
        plain = other.consumer._thread._create_worker_consumer(other.transport)
        assert plain.start.__qualname__ == "AIOKafkaConsumer.start"


async def test_no_fetch_minimum_means_an_answer_as_soon_as_a_record_is_there() -> None:
    app = faust.App("fetch-zero", broker="kafka://localhost:1")
    set_fetch_batching(app, 0, 10)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_min_bytes == 1  # 0 would make the broker answer empty at once


async def test_an_app_asking_for_idempotence_gets_an_idempotent_kafka_producer() -> None:
    """Faust's driver builds an idempotent aiokafka producer only inside transactions; an app
    given idempotence gets one under at_least_once too, and an app without keeps Faust's."""
    chosen = faust.App("idempotent", broker="kafka://localhost:1", producer_acks=1)
    set_producer_idempotence(chosen, True)
    declined = faust.App("not-idempotent", broker="kafka://localhost:1")
    set_producer_idempotence(declined, False)
    plain = faust.App("producer-defaults", broker="kafka://localhost:1")
    built = {}
    for name, app in (("chosen", chosen), ("declined", declined), ("plain", plain)):
        producer = app.producer._new_producer()  # the aiokafka producer Faust starts
        built[name] = producer._txn_manager is not None  # aiokafka's idempotence books
    assert built == {
        "chosen": True,
        "declined": False,
        "plain": False,
    }
    assert chosen.producer._settings_extra()["acks"] == "all"  # overrides the app's acks=1


def test_changelog_records_taken_by_the_recovery_are_in_the_store_when_it_ends(
    tmp_path: Path,
) -> None:
    """A promoted standby's last changelog records, taken after the rebalance as its active
    partition's, are applied before the streams resume, not left in the recovery's buffer."""
    faust_guards.install()
    app = faust.App(
        "guards-recovery", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("leads", partitions=4, key_type=bytes, value_type=bytes)
    table.key_serializer = table.value_serializer = "raw"
    changelog = table.changelog_topic.get_topic_name()
    recovery = app.tables.recovery
    for offset in range(40, 46):
        message = Message(changelog, 2, offset, 0.0, 0, None, b"lead-1", b"v%d" % offset, None)
        recovery.buffers[table].append(Event(app, b"lead-1", message.value, None, message))
    assert isinstance(table.data, Store)
    assert table.data.persisted_offset(TP(changelog, 2)) is None

    recovery._set_recovery_ended()

    assert not recovery.buffers[table]
    assert table.data.persisted_offset(TP(changelog, 2)) == 45
    assert readers.open_databases(table.data)[2].get(b"lead-1") == b"v45"


async def test_a_partition_promoted_from_a_standby_keeps_its_copy(tmp_path: Path) -> None:
    """With the guards installed, Faust restores a partition this worker held as a standby
    replica, once it is active here, from the standby's recorded offset: the copy the standby
    guards keep complete is kept, and only the records after it are read."""
    faust_guards.install()
    app = faust.App(
        "guards-promotion", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("leads", partitions=3, key_type=bytes, value_type=bytes)
    changelog = table.changelog_topic.get_topic_name()
    kept, promoted, other = TP(changelog, 0), TP(changelog, 1), TP(changelog, 2)
    assert isinstance(table.data, Store)
    for tp in (kept, promoted, other):
        table.data.set_persisted_offset(tp, 40)
    recovery = app.tables.recovery

    async def rebalance(generation: int, actives: list[int], standbys: list[int]) -> None:
        app.assignor._assignment = ClientAssignment(
            actives={changelog: actives}, standbys={changelog: standbys}
        )
        app.consumer_generation_id = generation
        await recovery.on_rebalance(set(), set(), set(), generation_id=generation)

    await rebalance(1, [0], [1])
    assert recovery.standby_offsets[promoted] == 40
    await rebalance(2, [0, 1, 2], [])
    assert recovery.active_offsets[promoted] == 40  # the standby's copy, kept
    assert recovery.active_offsets[kept] == 40  # active before: its own store
    assert recovery.active_offsets[other] == 40  # held nothing of it as a standby


class _Unassigned(aiokafka.Consumer):  # type: ignore[misc]
    """Faust's Kafka consumer without a broker: nothing assigned (no seek to committed
    offsets)."""

    def assignment(self) -> set[Any]:
        return set()


async def _completed_recovery(flow_on: bool) -> list[TP]:
    """Two records of a standby partition and one of another changelog partition wait in the
    recovery's queue when Faust's ``Recovery.on_recovery_completed`` runs; the partitions of
    those still queued after it."""
    faust_guards.install()
    app = faust.App("guards-backlog", broker="kafka://localhost:1")
    table = app.Table("leads", partitions=2)
    changelog = table.changelog_topic.get_topic_name()

    def ignore(*args: Any) -> None:
        return None

    async def started() -> None:
        return None

    app._consumer = _Unassigned(
        app.transport, callback=ignore, on_partitions_revoked=ignore, on_partitions_assigned=ignore
    )
    app._fetcher = SimpleNamespace(maybe_start=started)  # the fetch loop is not run here
    recovery = app.tables.recovery
    standby, other = TP(changelog, 0), TP(changelog, 1)
    recovery.standby_tps.add(standby)
    queue = app.tables.changelog_queue
    for offset, tp in enumerate((standby, other, standby)):
        message = Message(changelog, tp.partition, offset, 0.0, 0, None, b"k", b"v", None)
        queue.put_nowait(Event(app, b"k", b"v", None, message))
    if flow_on:
        app.consumer.resume_flow()
    else:
        app.consumer.stop_flow()
    await recovery.on_recovery_completed(app.consumer_generation_id)
    assert "clear" not in vars(queue)  # Faust's clear again once the recovery completed
    return [event.message.tp for event in queue._queue]


async def test_the_standby_records_queued_when_the_recovery_completes_are_kept() -> None:
    """Faust's end of recovery resumes the flow, which clears the changelog queue: the records
    a standby partition fetched since its seek stay queued, other partitions' are dropped."""
    kept = await _completed_recovery(flow_on=True)
    assert [tp.partition for tp in kept] == [0, 0]


async def test_a_queue_cleared_while_the_flow_is_off_drops_every_record() -> None:
    """With the consumer's flow off (a rebalance or a stop under way) the clear drops the
    standby's records too, as Faust does: the next recovery seeks the standby again."""
    assert await _completed_recovery(flow_on=False) == []


def _fetched(partitions: tuple[TopicPartition, ...]) -> tuple[SimpleNamespace, SubscriptionState]:
    """What aiokafka's ``Fetcher.fetched_records`` reads: three fetched records (offsets 0-2)
    of each of ``partitions``, all assigned and positioned at 0."""
    subscriptions = SubscriptionState()
    subscriptions.assign_from_user(set(partitions))
    assignment = subscriptions.subscription.assignment
    results = {}
    for tp in partitions:
        assignment.state_value(tp).seek(0)
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 16,
        )
        for offset in range(3):
            builder.append(offset, timestamp=0, key=b"k", value=b"v", headers=[])
        records = MemoryRecords(bytes(builder.build()))
        batch = PartitionRecords(tp, records, [], 0, None, None, False, READ_UNCOMMITTED)
        results[tp] = FetchResult(tp, assignment=assignment, partition_records=batch, backoff=0)
    fetcher = SimpleNamespace(
        _subscriptions=subscriptions,
        _records=results,
        _notify=lambda future: None,
        _wait_consume_future=None,
        _closed=False,
    )
    return fetcher, subscriptions


async def test_aiokafka_hands_over_every_partition_for_an_empty_set() -> None:
    """The defect: Faust's active partitions, empty by the time aiokafka looks, read as "every
    partition", and the positions move past records Faust then drops."""
    standby, stream = TopicPartition("changelog", 2), TopicPartition("events", 0)
    fetcher, subscriptions = _fetched((standby, stream))
    fetched = await Fetcher.fetched_records(fetcher, set(), timeout=0)
    assert set(fetched) == {standby, stream}
    assert subscriptions.subscription.assignment.state_value(standby).position == 3


async def test_faust_takes_only_the_records_of_its_active_partitions_even_when_none() -> None:
    """Through Faust's ``_fetch_records`` (guarded), aiokafka looks the partitions up in the
    live set: nothing is handed over (and no position moves) while it is empty, and only the
    partitions in it once some are."""
    faust_guards.install()
    standby, stream = TopicPartition("changelog", 2), TopicPartition("events", 0)
    fetcher, subscriptions = _fetched((standby, stream))
    fetcher.fetched_records = lambda *args, **kwargs: Fetcher.fetched_records(
        fetcher, *args, **kwargs
    )
    thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))
    consumer = SimpleNamespace(_closed=False, _fetcher=fetcher)
    fetch = aiokafka.AIOKafkaConsumerThread._fetch_records
    active: set[Any] = set()

    assert await fetch(thread, consumer, active, timeout=0, max_records=None) == {}
    assignment = subscriptions.subscription.assignment
    assert assignment.state_value(standby).position == 0
    active.add(TP("changelog", 2))
    fetched = await fetch(thread, consumer, active, timeout=0, max_records=None)
    assert {tp: [r.offset for r in records] for tp, records in fetched.items()} == {
        standby: [0, 1, 2]
    }
    assert assignment.state_value(stream).position == 0


def _table(tmp_path: Path, options: dict[str, Any] | None, partitions: int = 2) -> Any:
    app = faust.App(
        "guards-compression", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table(
        "leads", partitions=partitions, key_type=bytes, value_type=bytes, options=options
    )
    assert isinstance(table.data, Store)
    return table


def _stored_options(tmp_path: Path, options: dict[str, Any] | None) -> list[dict[str, str]]:
    """The options RocksDB recorded for each partition store of a table built with ``options``
    (the ``name=value`` lines of each database's OPTIONS file, every section together)."""
    table = _table(tmp_path, options)
    for partition in (0, 1):
        table.data._db_for_partition(partition).put(b"lead-1", b'{"v":1}')
    found = []
    for path in sorted(tmp_path.rglob("OPTIONS-*")):
        lines = (line.strip() for line in path.read_text().splitlines())
        found.append(dict(line.split("=", 1) for line in lines if "=" in line))
    assert len(found) == 2
    return found


def _compression_opts(recorded: dict[str, str], name: str = "compression_opts") -> dict[str, str]:
    """``{max_dict_bytes=16384;level=32767;...}`` as a dict."""
    inner = recorded[name].strip("{}")
    return dict(item.split("=", 1) for item in inner.split(";") if item)


def test_a_tables_compression_option_reaches_its_rocksdb_stores(tmp_path: Path) -> None:
    faust_guards.install()
    zstd = _stored_options(tmp_path / "zstd", {"compression": "zstd"})
    assert {found["compression"] for found in zstd} == {"kZSTD"}
    assert {_compression_opts(found)["max_dict_bytes"] for found in zstd} == {"0"}
    assert {found["block_size"] for found in zstd} == {"4096"}
    default = _stored_options(tmp_path / "default", None)
    assert {found["compression"] for found in default} == {"kSnappyCompression"}
    with pytest.raises(ValueError, match="unknown RocksDB compression 'zip'"):
        _stored_options(tmp_path / "bad", {"compression": "zip"})


def _table_store(tmp_path: Path) -> Store:
    app = faust.App(
        "guards-unlogged", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("leads", partitions=1, key_type=bytes, value_type=bytes)
    assert isinstance(table.data, Store)
    return table.data


def _log_bytes(tmp_path: Path) -> int:
    return sum(path.stat().st_size for path in tmp_path.rglob("*.log"))


def test_table_stores_are_written_without_the_write_ahead_log(tmp_path: Path) -> None:
    """Faust's own store (``Store._set``, ``set_persisted_offset``) writes nothing to RocksDB's
    log; a store Faust drops, as at its stop, keeps every write when opened again."""
    faust_guards.install()
    store = _table_store(tmp_path)
    db = store._db_for_partition(0)
    for i in range(200):
        db.put(b"lead-%d" % i, b'{"v":%d}' % i)
    store.set_persisted_offset(TP(store.table.changelog_topic.get_topic_name(), 0), 199)
    assert _log_bytes(tmp_path) == 0
    store._dbs.clear()  # what Faust's stop and revocations do
    del db
    gc.collect()

    again = _table_store(tmp_path)
    assert again._db_for_partition(0)[b"lead-199"] == b'{"v":199}'
    assert again.persisted_offset(TP(again.table.changelog_topic.get_topic_name(), 0)) == 199


def test_without_the_guard_faust_logs_every_write(tmp_path: Path) -> None:
    """Why the guard: Faust's ``RocksDBOptions.open`` leaves RocksDB's default, the log on."""
    faust_guards.install()
    faust_open = RocksDBOptions.open.__wrapped__  # type: ignore[attr-defined]
    db = faust_open(RocksDBOptions(), tmp_path / "plain")
    for i in range(200):
        db.put(b"lead-%d" % i, b'{"v":%d}' % i)
    assert _log_bytes(tmp_path) > 0


def test_a_tables_dictionary_and_block_size_reach_its_rocksdb_stores(tmp_path: Path) -> None:
    """The dictionary, its training and the block size are what RocksDB opened the stores
    with; the table factory keeps Faust's bloom filter and index."""
    faust_guards.install()
    options = {
        "compression": "zstd",
        "compression_dict_bytes": 16384,
        "zstd_train_bytes": 1638400,
        "block_size": 16384,
        "block_cache_size": 2**20,
    }
    for found in _stored_options(tmp_path / "dict", options):
        assert found["compression"] == "kZSTD"
        opts = _compression_opts(found)
        assert (opts["max_dict_bytes"], opts["zstd_max_train_bytes"]) == ("16384", "1638400")
        assert opts["level"] == "32767"  # zstd's own default level
        assert found["block_size"] == "16384"
        assert (found["filter_policy"], found["index_type"]) == ("bloomfilter", "kBinarySearch")
        assert found["no_block_cache"] == "false"
    faust_block = _stored_options(tmp_path / "faust-block", {**options, "block_size": 4096})
    own_block = _stored_options(tmp_path / "again", options)
    changed = {
        name
        for ours, theirs in zip(own_block, faust_block, strict=True)
        for name in ours.keys() | theirs.keys()
        if ours.get(name) != theirs.get(name)
    }
    assert changed == {"block_size"}  # the rest of Faust's table factory, as Faust builds it
    with pytest.raises(ValueError, match="block size must be positive"):
        _stored_options(tmp_path / "bad", {"compression": "zstd", "block_size": 0})


def test_a_dictionary_makes_the_stored_lead_states_smaller(tmp_path: Path) -> None:
    """The same JSON documents, alike but not equal, written and flushed: the store with a
    dictionary takes fewer bytes on disk than the store without."""
    faust_guards.install()
    rng = random.Random(5)
    rules = ["GGb9", "1ERw", "mJKP", "LSbx", "Ge59", "kwPR", "IG2a", "bY5m", "ar4r", "B2QG"]

    def model() -> dict[str, Any]:
        picked = rng.sample(rules, 6)
        return {
            "a": round(1796304141 + rng.random() * 1e6, 6),
            "s": rng.choice(["lead", "marketingqualifiedlead", "salesqualifiedlead"]),
            "h": [[None, "lead", round(rng.random() * 4e6, 3)]],
            "f": {rule: [rng.randrange(-50, 20), round(rng.random() * 500, 3)] for rule in picked},
            "e": {rule: round(rng.random() * 80, 10) for rule in picked[:4]},
            "c": {rule: [rng.randrange(-5, 5) for _ in range(4)] for rule in picked[:3]},
            "n": rng.randrange(1, 40),
            "o": [rng.randrange(-30, 30), round(rng.random() * 200, 4)],
        }

    values = [
        orjson.dumps(
            {
                "s": {
                    "v": 1,
                    "m": {"b2b": model(), "consumer": model()},
                    "i": base64.b64encode(rng.randbytes(192)).decode(),
                },
                "d": 1796304141 + rng.randrange(5_000_000),
                "o": rng.randrange(200_000),
            }
        )
        for _ in range(3000)
    ]

    def sst_bytes(name: str, options: dict[str, Any]) -> int:
        table = _table(tmp_path / name, options, partitions=1)
        db = table.data._db_for_partition(0)
        for n, value in enumerate(values):
            db.put(b"lead-%d" % n, value)
        db.flush(True)
        return sum(path.stat().st_size for path in (tmp_path / name).rglob("*.sst"))

    plain = sst_bytes("plain", {"compression": "zstd"})
    with_dict = sst_bytes("dict", {"compression": "zstd", "compression_dict_bytes": 16384})
    assert 0 < with_dict < 0.95 * plain


def test_fetches_batch_while_any_brokers_last_fetch_brought_records() -> None:
    modes = ((64 * 1024, 10), (1, 100))
    last: dict[int, bool] = {}
    assert fetch_mode(last, 1, False, modes) == (1, 100)  # the only broker is idle
    assert fetch_mode(last, 2, True, modes) == (64 * 1024, 10)
    assert fetch_mode(last, 1, False, modes) == (64 * 1024, 10)  # broker 2 is still busy
    assert fetch_mode(last, 2, False, modes) == (1, 100)  # now both are idle
    assert fetch_mode(last, 1, True, modes) == (64 * 1024, 10)
