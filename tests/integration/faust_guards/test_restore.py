"""The bulk restore against Faust's own RocksDB store code, on the real broker.

One changelog topic of three partitions holds rewritten keys, tombstones (a key deleted for
good, a key deleted and written again) and a partition left empty. One store is restored the
way Faust's recovery does it (every record as a Faust event, applied by
``Store.apply_changelog_batch`` in batches of the table's ``recovery_buffer_size``); another by
the bulk pass, in two steps (up to the middle of each partition, then from the persisted
offset to the end, as a later recovery would), with small fetches so that every partition
takes several. The two stores hold the same keys and values in the same per-partition
databases and the same persisted offsets, and those are the changelog's last values; what the
bulk pass wrote is on disk when it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP
from faust.types.tuples import Message

from stream.faust_guards import readers
from stream.faust_guards.restore import Target, enable, restore, targets_for

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _records(partition: int) -> Iterator[tuple[bytes, bytes | None]]:
    """Partition 0: 40 keys written five times each, interleaved; key 3 deleted for good, key 5
    deleted and written again. Partition 1: a few keys and a final tombstone. Partition 2:
    nothing."""
    if partition == 0:
        for version in range(5):
            for key in range(40):
                yield f"lead-{key}".encode(), f'{{"v":{version},"k":{key}}}'.encode()
            if version == 2:
                yield b"lead-5", None
        yield b"lead-3", None
        yield b"lead-5", b'{"v":"again"}'
    elif partition == 1:
        for key in range(7):
            yield f"acct-{key}".encode(), (b"x" * 300) + str(key).encode()
        yield b"acct-6", None


def _expected(partition: int) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for key, value in _records(partition):
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def _store(app_id: str, datadir: Path) -> Any:
    app = faust.App(app_id, broker="kafka://localhost:1", store="rocksdb://", datadir=datadir)
    return app.Table("leads", partitions=PARTITIONS)


def _contents(table: Any) -> dict[int, dict[bytes, bytes]]:
    databases = readers.open_databases(table.data)
    assert databases is not None
    return {partition: dict(db.items()) for partition, db in sorted(databases.items())}


async def _fill(bootstrap: str, topic: str) -> dict[int, int]:
    """Write the records; returns each partition's last offset (-1: empty)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=PARTITIONS,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            ]
        )
    finally:
        await admin.close()
    last = dict.fromkeys(range(PARTITIONS), -1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            for key, value in _records(partition):
                sent = await producer.send_and_wait(topic, value, key=key, partition=partition)
                last[partition] = sent.offset
    finally:
        await producer.stop()
    return last


async def _restore_as_faust_does(bootstrap: str, topic: str, table: Any) -> None:
    """Every record as a Faust event, applied by the store in the recovery's batch size."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        buffer: list[faust.Event] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for r in records:
                    message = Message(
                        r.topic, r.partition, r.offset, r.timestamp / 1000.0,
                        r.timestamp_type, [], r.key, r.value, r.checksum,
                    )  # fmt: skip
                    buffer.append(faust.Event(table.app, r.key, r.value, message.headers, message))
                    if len(buffer) >= table.recovery_buffer_size:
                        table.apply_changelog_batch(buffer)
                        buffer.clear()
        table.apply_changelog_batch(buffer)
    finally:
        await consumer.stop()


async def test_a_bulk_restored_store_equals_one_restored_by_faust(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    topic = f"restore-{unique}-leads-changelog"
    last = await _fill(kafka_bootstrap, topic)
    assert last[0] > 200 and last[1] == 7 and last[2] == -1
    tps = {p: TP(topic, p) for p in range(PARTITIONS)}

    by_faust = _store(f"faust-{unique}", tmp_path / "faust")
    await _restore_as_faust_does(kafka_bootstrap, topic, by_faust)

    bulk = _store(f"bulk-{unique}", tmp_path / "bulk")
    tables = {tp: bulk for tp in tps.values()}
    highwaters = {tps[p]: end for p, end in last.items()}
    # first pass up to the middle of each partition: a restore cut short (a rebalance, the
    # time limit) leaves its persisted offset behind
    middle = {tps[p]: end // 2 for p, end in last.items()}
    first = targets_for(tps.values(), tables, {}, middle)
    assert {tp.partition for tp in first} == {0, 1}  # the empty partition has nothing to read
    assert first[tps[0]] == Target(table=bulk, start=0, end=last[0] // 2)
    applied: list[tuple[int, int]] = []
    done = await restore(
        kafka_bootstrap,
        first,
        fetch_bytes=2048,
        on_applied=lambda tp, offset: applied.append((tp.partition, offset)),
    )
    assert done == {tps[0]: last[0] // 2, tps[1]: last[1] // 2}
    assert len([p for p, _ in applied if p == 0]) > 1  # several fetches
    assert all(bulk.persisted_offset(tp) == end for tp, end in done.items())
    assert _contents(bulk)[0] != _expected(0)  # not there yet

    persisted = {tp: bulk.persisted_offset(tp) for tp in tps.values()}
    second = targets_for(tps.values(), tables, persisted, highwaters)
    assert second[tps[0]].start == last[0] // 2 + 1
    await restore(kafka_bootstrap, second, fetch_bytes=2048)

    offset_key = by_faust.data.offset_key
    for partition in (0, 1):
        assert by_faust.persisted_offset(tps[partition]) == last[partition]
        assert bulk.persisted_offset(tps[partition]) == last[partition]
        faust_side = _contents(by_faust)[partition]
        assert faust_side.pop(offset_key) == str(last[partition]).encode()
        assert faust_side == _expected(partition)
    assert _expected(0)[b"lead-5"] == b'{"v":"again"}' and b"lead-3" not in _expected(0)
    assert b"acct-6" not in _expected(1)
    # on disk: the pass wrote without RocksDB's log and flushed (a read-only copy opened from
    # the files sees only what was flushed)
    for partition in (0, 1):
        on_disk = rocksdict.Rdict(
            str(bulk.data.partition_path(partition)),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            assert dict(on_disk.items()) == _contents(bulk)[partition]
        finally:
            on_disk.close()
    # Faust's recovery reads every assigned partition's persisted offset (opening its database)
    assert by_faust.persisted_offset(tps[2]) is None and bulk.persisted_offset(tps[2]) is None
    assert _contents(bulk) == _contents(by_faust)

    # nothing left: a later recovery finds no partition to restore in bulk
    persisted = {tp: bulk.persisted_offset(tp) for tp in tps.values()}
    assert targets_for(tps.values(), tables, persisted, highwaters) == {}


def test_only_rocksdb_tables_without_a_changelog_callback_are_restored_in_bulk(
    tmp_path: Path,
) -> None:
    app = faust.App(
        "restore-kinds", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    plain = app.Table("plain", partitions=1)

    async def seen(event: Any) -> None: ...

    watched = app.Table("watched", partitions=1, on_changelog_event=seen)
    memory = faust.App("restore-memory", broker="kafka://localhost:1", store="memory://").Table(
        "in-memory", partitions=1
    )
    tps = [TP(name, 0) for name in ("plain", "watched", "memory")]
    tables = dict(zip(tps, [plain, watched, memory], strict=True))
    targets = targets_for(tps, tables, {}, dict.fromkeys(tps, 10))
    assert list(targets) == [tps[0]]
    assert targets[tps[0]] == Target(table=plain, start=0, end=10)
    # from the persisted offset on; -1 (no record applied) is from the start
    assert targets_for(tps[:1], tables, {tps[0]: 4}, {tps[0]: 10})[tps[0]].start == 5
    assert targets_for(tps[:1], tables, {tps[0]: -1}, {tps[0]: 10})[tps[0]].start == 0
    assert targets_for(tps[:1], tables, {tps[0]: 10}, {tps[0]: 10}) == {}


class _EarliestOffsets:
    """The one call Faust's own ``_build_offsets`` makes of its consumer, answered by the
    broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            found = await consumer.beginning_offsets([TopicPartition(*tp) for tp in tps])
        finally:
            await consumer.stop()
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}


async def test_faust_recovery_finds_nothing_left_after_the_bulk_pass(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    """The guard in Faust's recovery: the active offsets Faust builds (and then seeks to) are
    the high watermarks, so ``need_recovery`` says no record is left to read, and the store
    holds the changelog's last values. Standby offsets are left to Faust."""
    topic = f"restore-{unique}-leads-changelog"
    last = await _fill(kafka_bootstrap, topic)
    tps = [TP(topic, p) for p in range(PARTITIONS)]
    consumer = _EarliestOffsets(kafka_bootstrap)
    recoveries = {}
    for name, bulk in (("faust", False), ("bulk", True)):
        app = faust.App(
            f"{name}-{unique}",
            broker=f"kafka://{kafka_bootstrap}",
            store="rocksdb://",
            datadir=tmp_path / name,
        )
        table = app.Table("leads", partitions=PARTITIONS)
        if bulk:
            enable(app, kafka_bootstrap, fetch_bytes=4096)
        recovery = app.tables.recovery
        for tp in tps:
            recovery.add_active(table, tp)  # reads the persisted offset, as on a rebalance
        recovery.active_highwaters.update({tp: last[tp.partition] for tp in tps})
        standby: Any = dict.fromkeys(tps)
        await recovery._build_offsets(consumer, set(tps), standby, "standby")
        assert set(standby.values()) == {-1}  # standby offsets: Faust's own, nothing read
        assert table.persisted_offset(tps[0]) is None
        await recovery._build_offsets(consumer, set(tps), recovery.active_offsets, "active")
        recoveries[name] = recovery, table

    # Faust alone: everything left to read
    faust_alone, _ = recoveries["faust"]
    assert set(faust_alone.active_offsets.values()) == {-1}
    assert faust_alone.need_recovery()

    recovery, table = recoveries["bulk"]
    assert dict(recovery.active_offsets) == {tp: last[tp.partition] for tp in tps}
    assert not recovery.need_recovery()
    assert [table.persisted_offset(tp) for tp in tps] == [last[0], last[1], None]
    contents = _contents(table)
    for partition in (0, 1):
        contents[partition].pop(table.data.offset_key)
        assert contents[partition] == _expected(partition)
