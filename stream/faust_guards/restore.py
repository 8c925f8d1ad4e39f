"""Bulk restore: a worker's active table partitions are read from their changelogs in large
fetches and written to the RocksDB stores in write batches before Faust's own recovery runs.

Why: Faust restores a table one changelog record at a time, through its consumer, its conductor
and an event object per record (``Recovery._slurp_changelogs``, ``Conductor.on_message``,
``Consumer._to_message``, ``App.create_event``), and a worker that lost its stores (an empty
disk, or the restore after a crash, ``local_stores``) spent about two minutes on 1,000,000 leads
(``BENCHMARKS.md``), nearly all of it in that per-record path and waiting on fetches. The bulk
pass reads the same records with a plain aiokafka consumer of its own and writes each fetch of
a partition in one RocksDB write batch, as the store's ``apply_changelog_batch`` does
(``faust.stores.rocksdb.Store``): the same key and value bytes in the same per-partition
database, a tombstone deletes, the last value of a key wins, and the store's persisted offset
(the key Faust reads at the next recovery) is the last record applied, written in the same
batch. The batches skip RocksDB's write-ahead log (the changelog is the log; with it the writes
took about twice the time in the profile) and the pass flushes the databases it wrote before it
returns, cancelled or not, so they are on disk before anything else writes to them. Faust's
recovery then starts from that offset and finds nothing, or only what was written meanwhile,
left to read: it stays the fallback and the source of truth.

Where it runs: inside Faust's recovery of every assignment, in ``Recovery._build_offsets`` for
the active partitions (after Faust took their high watermarks, before it seeks to the persisted
offsets), so it waits like every recovery step on a new rebalance, which cancels it. It reads
each partition from the store's persisted offset (a partition promoted from a standby replica:
from the offset its standby copy reached) up to the high watermark Faust took, never
past it (Faust's consistency check refuses a persisted offset above it). Each fetch's records
are applied before the next is awaited, and a cancellation only lands on an await, so a store's
contents and persisted offset always agree. It stops after three quarters of Faust's
``broker_request_timeout`` (the deadline of the recovery step it runs in) and leaves the rest to
Faust. Standby partitions keep Faust's path: they are read in the background while the worker
serves, so they do not delay it. Tables on the memory store (no persisted offset), on the
python-rocksdb driver, or with an ``on_changelog_event`` callback (which Faust calls per record)
keep Faust's path too.

Faust symbols: ``Recovery._build_offsets``, ``.tp_to_table``, ``.active_highwaters`` (patched
and read), ``Store._db_for_partition``, ``.offset_key``, ``.use_rocksdict``,
``Collection._on_changelog_event`` (read). Upstream issue: none filed.
``RELIABILITY.md#faust-guards``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rocksdict
from aiokafka import TopicPartition

from stream.faust_guards import readers
from stream.kafka import clients

__all__ = [
    "OPTION",
    "RestoreOptions",
    "Target",
    "bulk_capable",
    "enable",
    "guard_bulk_restore",
    "restore",
    "targets_for",
    "write",
]

log = logging.getLogger(__name__)

OPTION = "leadstream_bulk_restore"
"""The app attribute ``guard_bulk_restore`` reads: a ``RestoreOptions`` (absent: Faust alone)."""

BUDGET_SHARE = 0.75
"""Share of Faust's ``broker_request_timeout`` the bulk pass may take before Faust goes on."""

_GUARDED = "_leadstream_bulk_restore"


@dataclass(frozen=True)
class RestoreOptions:
    """How an app's bulk pass reads its changelogs."""

    kafka: clients.Kafka
    fetch_bytes: int
    """Most bytes taken from one partition per fetch."""


@dataclass(frozen=True)
class Target:
    """One changelog partition to restore: into ``table``, offsets ``start`` to ``end``
    (inclusive; ``end`` is Faust's high watermark, the last offset of the partition)."""

    table: Any
    start: int
    end: int


def enable(app: Any, kafka: clients.Kafka, *, fetch_bytes: int) -> None:
    """Have ``app``'s table recovery restore its active partitions in bulk first (installs
    ``guard_bulk_restore``)."""
    guard_bulk_restore()
    setattr(app, OPTION, RestoreOptions(kafka=kafka, fetch_bytes=fetch_bytes))


def guard_bulk_restore() -> None:
    """Run the bulk pass in ``Recovery._build_offsets`` for the active partitions of an app
    that enabled it (idempotent, process-wide)."""
    from faust.tables.recovery import Recovery  # noqa: PLC0415

    if getattr(Recovery, _GUARDED, False):
        return
    original = Recovery._build_offsets

    async def _build_offsets(
        self: Any, consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:
        options: RestoreOptions | None = getattr(self.app, OPTION, None)
        if options is not None and title == "active":
            await _restore_actives(self, tps, destination, options)
        await original(self, consumer, tps, destination, title)

    Recovery._build_offsets = _build_offsets
    setattr(Recovery, _GUARDED, True)


def bulk_capable(table: Any) -> bool:
    """Whether ``table``'s changelog can be applied in bulk: a RocksDB store on rocksdict (it
    persists its offsets; Leadstream's driver) and no callback Faust would call per changelog
    record."""
    return (
        readers.open_databases(table.data) is not None
        and getattr(table.data, "use_rocksdict", False) is True
        and getattr(table, "_on_changelog_event", None) is None
    )


def targets_for(
    tps: Iterable[Any],
    tables: Mapping[Any, Any],
    offsets: Mapping[Any, int | None],
    highwaters: Mapping[Any, int | None],
) -> dict[Any, Target]:
    """The partitions of ``tps`` to restore in bulk: those of a bulk-capable table with records
    past their ``offsets`` (the last offset applied; ``None`` or -1: none) up to their
    ``highwaters`` (the last offset; -1: empty)."""
    targets: dict[Any, Target] = {}
    for tp in tps:
        table = tables.get(tp)
        end = highwaters.get(tp)
        if table is None or end is None or end < 0 or not bulk_capable(table):
            continue
        last = offsets.get(tp)
        start = 0 if last is None or last < 0 else last + 1
        if start <= end:
            targets[tp] = Target(table=table, start=start, end=end)
    return targets


async def _restore_actives(recovery: Any, tps: Any, offsets: Any, options: RestoreOptions) -> None:
    targets = targets_for(tps, recovery.tp_to_table, offsets, recovery.active_highwaters)
    if not targets:
        return
    app = recovery.app
    budget = app.conf.broker_request_timeout * BUDGET_SHARE

    def applied(tp: Any, offset: int) -> None:
        # Faust's recovery takes only records past this offset (also any it still had queued)
        offsets[tp] = offset

    await restore(
        options.kafka,
        targets,
        fetch_bytes=options.fetch_bytes,
        isolation_level="read_committed" if app.in_transaction else "read_uncommitted",
        deadline=time.monotonic() + budget,
        on_applied=applied,
    )


async def restore(
    kafka: clients.Kafka,
    targets: Mapping[Any, Target],
    *,
    fetch_bytes: int,
    isolation_level: str = "read_uncommitted",
    deadline: float | None = None,
    on_applied: Callable[[Any, int], None] | None = None,
) -> dict[Any, int]:
    """Apply the records of each target's changelog partition, ``start`` to ``end``, to its
    table's store, a fetch at a time (``write``). Stops at
    ``deadline`` (``time.monotonic()``) if given. Returns the last offset applied per partition
    (the store's persisted offset); ``on_applied`` is called with it after each write."""
    if not targets:
        return {}
    started = time.monotonic()
    by_kafka_tp = {TopicPartition(tp.topic, tp.partition): tp for tp in targets}
    done: dict[Any, int] = {}
    written: dict[int, Any] = {}  # the databases written, by id: flushed at the end
    records = 0
    consumer = await clients.consumer(
        kafka,
        role="restore",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        max_partition_fetch_bytes=fetch_bytes,
        fetch_max_bytes=max(fetch_bytes, 50 * 1024 * 1024),
        check_crcs=False,
    )
    try:
        consumer.assign(list(by_kafka_tp))
        for ktp, tp in by_kafka_tp.items():
            consumer.seek(ktp, targets[tp].start)
        pending = set(by_kafka_tp)
        while pending:
            if deadline is not None and time.monotonic() > deadline:
                log.warning(
                    "bulk restore stopped at its time limit with %d changelog partition(s) "
                    "left; Faust's recovery reads the rest",
                    len(pending),
                )
                break
            fetched = await consumer.getmany(*pending, timeout_ms=500)
            for ktp in list(pending):
                tp = by_kafka_tp[ktp]
                batch = fetched.get(ktp, [])
                last, finished = await _step(consumer, ktp, tp, targets[tp], batch, written=written)
                records += len(batch)
                if last is not None and done.get(tp) != last:
                    done[tp] = last
                    if on_applied is not None:
                        on_applied(tp, last)
                if finished:
                    pending.discard(ktp)
    finally:
        for db in written.values():
            db.flush(True)
        await clients.close(consumer)
    secs = time.monotonic() - started
    log.info(
        "bulk restore: %d changelog record(s) of %d partition(s) read in %.1f s (%.0f/s)",
        records,
        len(targets),
        secs,
        records / secs if secs > 0 else 0.0,
    )
    return done


async def _step(
    consumer: Any,
    ktp: TopicPartition,
    tp: Any,
    target: Target,
    batch: list[Any],
    *,
    written: dict[int, Any],
) -> tuple[int | None, bool]:
    """Apply a fetch's records of ``tp`` up to the target's end. Returns the last offset
    applied (``None``: none) and whether the partition is done."""
    end = target.end
    if not batch:
        if await consumer.position(ktp) <= end:
            return None, False
        # the rest up to the high watermark holds no record to apply (transaction markers,
        # aborted records): nothing below it is left to read
        if target.table.persisted_offset(tp) != end:
            target.table.data.set_persisted_offset(tp, end)
        return end, True
    db = target.table.data._db_for_partition(tp.partition)
    written.setdefault(id(db), db)
    return write(db, target.table.data.offset_key, batch, end), batch[-1].offset >= end


def write(db: Any, offset_key: bytes, records: Iterable[Any], end: int) -> int | None:
    """Write ``records`` (Kafka records of one changelog partition, in offset order) up to
    offset ``end`` to ``db`` (the store's database of that partition) in one RocksDB write
    batch, as ``Store.apply_changelog_batch`` does (the raw key and value bytes; a record
    without a value deletes its key), with the store's persisted offset
    (``Store.set_persisted_offset``: the last offset as decimal bytes under ``offset_key``) in
    the same batch, so the two are written together. Returns the last offset written (``None``:
    none).

    The batch skips RocksDB's write-ahead log (the changelog is the log): the pass flushes the
    databases it wrote when it ends, and a worker that dies before that restores its stores in
    full at its next start (``local_stores``)."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    put, delete = batch.put, batch.delete
    last = None
    for record in records:
        offset = record.offset
        if offset > end:
            break
        value = record.value
        if value is None:
            delete(record.key)
        else:
            put(record.key, value)
        last = offset
    if last is not None:
        put(offset_key, str(last).encode())
        db.write(batch, _NO_WAL)
    return last


_NO_WAL = rocksdict.WriteOptions()
_NO_WAL.disable_wal = True
