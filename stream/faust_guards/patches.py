"""Class patches of faust-streaming's consumer and producer buffer, each idempotent and
process-wide (installed by ``stream.faust_guards.install``):

* ``guard_skipped_acks``: ``Consumer.ack`` refuses a record never handed to a stream
  (faust-streaming #216, #221, #318), or one of a batch whose handling was interrupted
  (``leave_unacknowledged``);
* ``guard_read_offsets``: ``Consumer.perform_seek`` / ``Consumer.getmany`` keep the seek's read
  offset for a record handed over across the seek;
* ``guard_buffer_flush``: ``ProducerBuffer.flush`` waits until the buffer is empty;
* ``guard_commit_offsets``: ``Consumer._new_offset`` counts each acknowledged offset once;
* ``guard_recovery_flush``: ``Recovery._set_recovery_ended`` applies every changelog record the
  recovery took before the streams resume;
* ``guard_standby_backlog``: ``Recovery.on_recovery_completed`` keeps the standby replicas'
  changelog records queued for the recovery when it resumes the flow;
* ``guard_fetched_partitions``: ``AIOKafkaConsumerThread._fetch_records`` hands over only the
  records of the partitions Faust's consumer takes, even when it takes none;
* ``guard_rocksdb_compression``: ``RocksDBOptions.as_options`` applies a table's ``compression``,
  ``compression_dict_bytes``, ``zstd_train_bytes`` and ``block_size`` options on rocksdict,
  which Faust drops;
* ``guard_rocksdb_unlogged_writes``: ``RocksDBOptions.open`` writes the stores without
  RocksDB's write-ahead log (a store of a worker that died is rebuilt from its changelog).

Why each exists: ``RELIABILITY.md#faust-guards``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.consumer import Consumer

_GUARDED = "_leadstream_skip_guard"


def guard_skipped_acks() -> None:
    """Refuse the acknowledgement of a record that was never tracked (never handed to a
    stream), so its offset stays uncommitted and it is read again after the rebalance."""
    if getattr(Consumer, _GUARDED, False):
        return
    original = Consumer.ack

    def ack(self: Any, message: Any) -> bool:
        if not getattr(message, "tracked", True):
            return False  # skipped, never processed: leave it to be read again
        result: bool = original(self, message)
        return result

    Consumer.ack = ack
    setattr(Consumer, _GUARDED, True)


def leave_unacknowledged(events: Any) -> None:
    """Have ``guard_skipped_acks`` refuse the acknowledgement of ``events`` (Faust events taken
    in a batch) so their offsets stay uncommitted and they are read again. For a batch whose
    handling was interrupted (the worker stopping mid-batch): ``batches.take_batches``, like
    Faust's ``take_events``, acknowledges every event of the batch it handed out when its
    generator is closed, handled or not, and the commit at shutdown would then skip the
    unhandled ones for good."""
    for event in events:
        event.message.tracked = False


# ----------------------------------------------------------------------------- read offsets

_EPOCH = "_leadstream_seek_epoch"
_SEEKED = "_leadstream_seeked"


def guard_read_offsets() -> None:
    """Put back the read offset a seek set when a record was handed over across the seek
    (else the records between the committed offset and it are dropped as "already read")."""
    if getattr(Consumer, _EPOCH, None) is not None:
        return
    setattr(Consumer, _EPOCH, 0)
    original_seek = Consumer.perform_seek
    original_getmany = Consumer.getmany

    async def perform_seek(self: Any) -> None:
        await original_seek(self)
        setattr(self, _SEEKED, dict(self._read_offset))
        setattr(self, _EPOCH, getattr(self, _EPOCH, 0) + 1)

    async def getmany(
        self: Any,
        timeout: float,  # noqa: ASYNC109 - Faust's own signature (called with timeout=)
    ) -> AsyncIterator[tuple[Any, Any]]:
        async for tp, message in original_getmany(self, timeout):
            epoch = getattr(self, _EPOCH, 0)
            yield tp, message
            if getattr(self, _EPOCH, 0) != epoch:
                # Handed over across a seek: the read offset just taken from it is stale.
                seeked: dict[Any, int | None] = getattr(self, _SEEKED, {})
                if seeked.get(tp) is not None:
                    self._read_offset[tp] = seeked[tp]
                else:
                    self._read_offset.pop(tp, None)

    Consumer.perform_seek = perform_seek
    Consumer.getmany = getmany


# ----------------------------------------------------------------------------- buffer flush

_FLUSH_GUARDED = "_leadstream_flush_guard"


def guard_buffer_flush() -> None:
    """Make the producer buffer's flush wait until the buffer is empty and the message its
    background task took is handed over (Faust's returns after 0.1 s without a sent message)."""
    from faust.transport.producer import ProducerBuffer  # noqa: PLC0415

    if getattr(ProducerBuffer, _FLUSH_GUARDED, False):
        return
    original_send = ProducerBuffer._send_pending

    async def _send_pending(self: Any, fut: Any) -> None:
        self._leadstream_in_flight = getattr(self, "_leadstream_in_flight", 0) + 1
        try:
            await original_send(self, fut)
        finally:
            self._leadstream_in_flight -= 1

    async def flush(self: Any) -> None:
        while self.size or getattr(self, "_leadstream_in_flight", 0):
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)

    ProducerBuffer._send_pending = _send_pending
    ProducerBuffer.flush = flush
    setattr(ProducerBuffer, _FLUSH_GUARDED, True)


# ----------------------------------------------------------------------------- commit offsets

_OFFSETS_GUARDED = "_leadstream_offsets_guard"


def guard_commit_offsets() -> None:
    """Count each offset once when Faust works out how far a partition can be committed: the
    gaps up to the highest acknowledged offset move into the (indexed) list of acknowledged
    offsets, and offsets already committed are dropped, before Faust's own reckoning."""
    if getattr(Consumer, _OFFSETS_GUARDED, False):
        return
    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked: list[int] = self._acked[tp]
        if acked:
            index: set[int] = self._acked_index[tp]
            top = max(acked)
            gaps = self._gap[tp]
            if gaps:
                taken = [o for g in gaps.overlap(0, top + 1) for o in range(g.begin, g.end)]
                if taken:
                    last = max(taken)
                    gaps.chop(0, max(last, top) + 1)
                    acked.extend(taken)
                    index.update(taken)
            committed = self._committed_offset[tp]
            unique = sorted(set(acked))
            if committed is not None:
                stale = [o for o in unique if o < committed]
                if stale:
                    index.difference_update(stale)
                    unique = unique[len(stale) :]
            acked[:] = unique
        result: int | None = original(self, tp)
        return result

    Consumer._new_offset = _new_offset
    setattr(Consumer, _OFFSETS_GUARDED, True)


# ----------------------------------------------------------------------------- fetch batching

_FETCH_GUARDED = "_leadstream_fetch_guard"
_IDLE_GUARDED = "_leadstream_idle_fetch_guard"
_LAST_FETCHES = "_leadstream_last_fetches"
"""The aiokafka ``Fetcher`` attribute ``guard_idle_fetch`` keeps: broker id → whether its last
fetch brought records."""
FETCH_OPTIONS = "leadstream_fetch_options"
"""The app attribute ``guard_fetch_batching`` reads: ``(fetch_min_bytes, fetch_max_wait_ms,
idle_wait_ms)``."""
FETCH_MODES = "_leadstream_fetch_modes"
"""The aiokafka ``Fetcher`` attribute ``guard_idle_fetch`` reads: ``((min_bytes, max_wait_ms)
after a fetch that brought records, (1, idle_wait_ms) after one that brought none)``."""


def set_fetch_batching(app: Any, min_bytes: int, max_wait_ms: int, idle_wait_ms: int = 0) -> None:
    """Have ``app``'s Kafka consumer ask the broker to hold each fetch until ``min_bytes`` are
    there or ``max_wait_ms`` have passed, and, with ``idle_wait_ms`` above ``max_wait_ms``,
    hold a fetch that follows an empty one until the first record or ``idle_wait_ms``
    (installs ``guard_fetch_batching`` and ``guard_idle_fetch``)."""
    guard_fetch_batching()
    guard_idle_fetch()
    setattr(app, FETCH_OPTIONS, (max(1, min_bytes), max_wait_ms, idle_wait_ms))


def guard_fetch_batching() -> None:
    """Let an app choose its consumer's ``fetch_min_bytes`` and ``fetch_max_wait_ms``, which
    Faust's aiokafka driver fixes at 1 byte and 1.5 s. With those, a steady stream is answered
    one fetch per handful of records: every fetch names every assigned partition (aiokafka has
    no incremental fetch sessions) and its answer wakes the agent, so a worker offered a steady
    stream spent more CPU on fetching than on scoring (``BENCHMARKS.md``)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # noqa: PLC0415

    if getattr(AIOKafkaConsumerThread, _FETCH_GUARDED, False):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        options = getattr(self.app, FETCH_OPTIONS, None)
        if options is not None:
            min_bytes, max_wait_ms, idle_wait_ms = options
            # read by AIOKafkaConsumer.start() when it builds its Fetcher
            consumer._fetch_min_bytes, consumer._fetch_max_wait_ms = min_bytes, max_wait_ms
            if idle_wait_ms > max_wait_ms:
                _on_fetcher(consumer, ((min_bytes, max_wait_ms), (1, idle_wait_ms)))
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    setattr(AIOKafkaConsumerThread, _FETCH_GUARDED, True)


def _on_fetcher(consumer: Any, modes: tuple[tuple[int, int], tuple[int, int]]) -> None:
    """Give ``consumer``'s Fetcher, built when the consumer starts, the two fetch modes."""
    start = consumer.start

    async def start_with_modes() -> None:
        await start()
        setattr(consumer._fetcher, FETCH_MODES, modes)

    consumer.start = start_with_modes


def fetch_mode(
    last: dict[int, bool],
    node_id: int,
    brought: bool,
    modes: tuple[tuple[int, int], tuple[int, int]],
) -> tuple[int, int]:
    """The ``(min_bytes, max_wait_ms)`` of the next fetches, once ``node_id``'s fetch brought
    records or not: one setting serves every broker's next request, so it batches while any
    broker's last fetch brought records (``last``, updated here)."""
    last[node_id] = brought
    return modes[0] if any(last.values()) else modes[1]


def guard_idle_fetch() -> None:
    """While the last fetch from every broker brought no records, the next fetches wait for the
    first record (1 byte) or ``idle_wait_ms``, instead of for ``fetch_min_bytes`` or
    ``fetch_max_wait_ms``; once any broker's fetch brings records, fetches batch as before
    (aiokafka puts one setting in every broker's request, so a busy broker's fetches never
    stop batching because another broker is idle).

    With fetches held for 64 KiB or 10 ms (``guard_fetch_batching``) an idle worker fetched
    every 10 ms, each fetch naming every assigned partition and parsed in Python: 72 fetches and
    about 0.09 of a core per second, doing nothing (``BENCHMARKS.md``), and the first record
    after a quiet spell waited out the rest of the 10 ms. Kafka answers a fetch as soon as
    ``min_bytes`` are there, so a quiet worker now asks about ten times a second and hears of a
    record at once; a steady stream, whose fetches bring records, is fetched as before. The
    price: aiokafka sends one fetch at a time to a broker, so a partition resumed or sought while
    an idle fetch is out is read when that fetch returns (at most ``idle_wait_ms`` later).
    Reads aiokafka's ``Fetcher._proc_fetch_request`` result (whether the fetch brought records
    or errors to hand over) and sets ``Fetcher._fetch_min_bytes`` / ``_fetch_max_wait_ms``,
    which ``Fetcher._get_actions_per_node`` puts in the next ``FetchRequest``."""
    from aiokafka.consumer.fetcher import Fetcher  # noqa: PLC0415

    if getattr(Fetcher, _IDLE_GUARDED, False):
        return
    original = Fetcher._proc_fetch_request

    async def _proc_fetch_request(self: Any, assignment: Any, node_id: int, request: Any) -> Any:
        brought = await original(self, assignment, node_id, request)
        modes = getattr(self, FETCH_MODES, None)
        if modes is not None:
            last = self.__dict__.setdefault(_LAST_FETCHES, {})
            self._fetch_min_bytes, self._fetch_max_wait_ms = fetch_mode(
                last, node_id, bool(brought), modes
            )
        return brought

    Fetcher._proc_fetch_request = _proc_fetch_request
    setattr(Fetcher, _IDLE_GUARDED, True)


# ----------------------------------------------------------------------------- producer idempotence

_IDEMPOTENCE_GUARDED = "_leadstream_idempotence_guard"
IDEMPOTENCE_OPTION = "leadstream_producer_idempotence"
"""The app attribute ``guard_producer_idempotence`` reads: ``True`` for an idempotent producer."""


def set_producer_idempotence(app: Any, enabled: bool) -> None:
    """Have ``app``'s Kafka producer be idempotent (``acks=all``, ``enable_idempotence``) when
    ``enabled`` (installs ``guard_producer_idempotence``)."""
    guard_producer_idempotence()
    setattr(app, IDEMPOTENCE_OPTION, enabled)


def guard_producer_idempotence() -> None:
    """Let an app ask for an idempotent producer outside transactions. Faust's aiokafka driver
    turns ``enable_idempotence`` on only under ``exactly_once`` (``Producer._settings_extra``),
    so an ``at_least_once`` worker that retries a send whose answer was lost (a leader that
    died after writing it) writes the record twice. With idempotence the broker drops the
    retried copy by the producer's sequence numbers. An error the broker cannot reconcile
    (aiokafka #1017, ``OutOfOrderSequenceNumber`` after a long cluster outage) fails the send,
    and an undelivered record stops the worker (``write_order``): it restarts with a new
    producer id instead of sending nothing."""
    from faust.transport.drivers.aiokafka import Producer  # noqa: PLC0415

    if getattr(Producer, _IDEMPOTENCE_GUARDED, False):
        return
    original = Producer._settings_extra

    def _settings_extra(self: Any) -> Any:
        extra = dict(original(self))
        if getattr(self.app, IDEMPOTENCE_OPTION, False):
            extra.update(acks="all", enable_idempotence=True)
        return extra

    Producer._settings_extra = _settings_extra
    setattr(Producer, _IDEMPOTENCE_GUARDED, True)


# ----------------------------------------------------------------------------- recovery flush

_RECOVERY_GUARDED = "_leadstream_recovery_flush"


def guard_recovery_flush() -> None:
    """Apply every changelog record the table recovery has taken before it declares recovery
    over (and the streams resume on the tables).

    Faust's recovery counts a changelog record as read when it takes it from its queue, but
    applies it to the table's store only in batches (``recovery_buffer_size`` records) or at a
    flush. Records a standby replica fetched before a rebalance made its partition active are
    taken after the rebalance as the active partition's records: they advance its offset to
    the high watermark, so no recovery is needed, and nothing flushes them. The agent then
    scores on a store without them (a lead's state missing or old), and a later flush writes
    them over the agent's newer values. Flushing whenever recovery ends
    (``Recovery._set_recovery_ended``, reached on every path before the streams resume)
    closes that gap."""
    from faust.tables.recovery import Recovery  # noqa: PLC0415

    if getattr(Recovery, _RECOVERY_GUARDED, False):
        return
    original = Recovery._set_recovery_ended

    def _set_recovery_ended(self: Any) -> None:
        self.flush_buffers()
        original(self)

    Recovery._set_recovery_ended = _set_recovery_ended
    setattr(Recovery, _RECOVERY_GUARDED, True)


# ----------------------------------------------------------------------------- fetched partitions

_FETCHED_GUARDED = "_leadstream_fetched_partitions"


class TakenPartitions:
    """The partitions Faust's consumer takes records of (its active partitions, a set it keeps
    changing), as aiokafka's ``Fetcher.fetched_records`` reads them: never empty to a truth
    test (aiokafka hands over every partition's records for an empty set), each partition
    looked up in the live set when aiokafka asks."""

    __slots__ = ("tps",)

    def __init__(self, tps: Any) -> None:
        self.tps = tps

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.tps

    def __iter__(self) -> Any:
        return iter(set(self.tps))

    def __len__(self) -> int:
        return len(self.tps)


def guard_fetched_partitions() -> None:
    """Have aiokafka hand Faust's consumer only the records of the partitions it takes, also
    when it takes none at that moment.

    Faust's fetch loop asks its consumer thread for records of its active partitions
    (``Consumer._wait_next_records``, ``AIOKafkaConsumerThread._fetch_records``) and passes the
    set itself, which its event loop goes on changing (``pause_partitions``,
    ``resume_partitions``) while the thread waits up to a second in aiokafka's
    ``Fetcher.fetched_records`` for records to arrive. aiokafka reads an empty set as "every
    partition": when the set is empty by the time records arrive (the table recovery pauses
    the active changelog partitions once they are read, while the stream partitions and the
    standby partitions are still paused), it hands over the records of every assigned
    partition and moves their positions past them, and Faust's ``Consumer.getmany`` drops
    those of partitions that are not active. A standby partition seeked to its store's offset
    just before its resume lost that way the records that existed when it started: its
    recovery took the next ones and counted itself up to date (seen on the real broker,
    ``tests/integration/faust_guards/test_standby.py``). The guard passes the live set behind
    an object that is never empty to a truth test, so aiokafka hands over only the records of
    partitions active when it looks."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # noqa: PLC0415

    if getattr(AIOKafkaConsumerThread, _FETCHED_GUARDED, False):
        return
    original = AIOKafkaConsumerThread._fetch_records

    async def _fetch_records(
        self: Any,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - Faust's own signature
        max_records: int | None = None,
    ) -> Any:
        if active_partitions is not None:
            active_partitions = TakenPartitions(active_partitions)
        return await original(
            self, consumer, active_partitions, timeout=timeout, max_records=max_records
        )

    AIOKafkaConsumerThread._fetch_records = _fetch_records
    setattr(AIOKafkaConsumerThread, _FETCHED_GUARDED, True)


# ----------------------------------------------------------------------------- standby backlog

_BACKLOG_GUARDED = "_leadstream_standby_backlog"


def guard_standby_backlog() -> None:
    """Keep the standby replicas' changelog records that wait in the recovery's queue when
    Faust's ``Recovery.on_recovery_completed`` resumes the flow.

    Faust's recovery seeks the standby partitions to their stores' offsets and resumes them
    (``Recovery._restart_recovery``), then awaits ``on_recovery_completed``, which, after the
    tables' callbacks and a seek of the stream partitions to their committed offsets, calls
    ``app.flow_control.resume()``. That call clears every queue made with
    ``clear_on_resume``, the tables' changelog queue included (``TableManager.changelog_queue``,
    ``mode.utils.queues.FlowControlEvent.resume``): whatever the standby partitions fetched in
    between and the recovery had not taken yet is dropped, while the consumer's position is
    past it. The recovery then takes the next records, counts them as the standby's offset and
    never reads the dropped ones again: a standby replica started on a changelog partition that
    holds records ends without a run of them (those fetched before the clear, typically the
    partition's first records) and counts itself up to date. Seen on the real broker with a
    recovery that takes its records more slowly than they are fetched
    (``tests/integration/faust_guards/test_standby.py``).

    Those records were fetched after this recovery's seek of the standby partitions (until the
    seek and their resume, the standby partitions are paused, and the queue was cleared when
    they were resumed), so they follow, in order, what the recovery took of each partition.
    The guard keeps them in the queue through the clears made while ``on_recovery_completed``
    runs, as long as the consumer's flow is on and the group's generation is the one of this
    recovery: a rebalance or a stop turns the flow off before it clears the queue, and then
    every record is dropped as Faust does (the next recovery seeks the standby partitions to
    what was taken again)."""
    from faust.tables.recovery import Recovery  # noqa: PLC0415

    if getattr(Recovery, _BACKLOG_GUARDED, False):
        return
    original = Recovery.on_recovery_completed

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        standby = frozenset(self.standby_tps)
        if not standby:
            await original(self, generation_id)
            return
        app = self.app
        queue = self.tables.changelog_queue
        faust_clear = type(queue).clear

        def clear() -> None:
            keep = app.consumer.flow_active and app.consumer_generation_id == generation_id
            kept = [event for event in queue._queue if event.message.tp in standby] if keep else []
            faust_clear(queue)
            queue._queue.extend(kept)

        queue.clear = clear
        try:
            await original(self, generation_id)
        finally:
            if vars(queue).get("clear") is clear:
                del queue.clear

    Recovery.on_recovery_completed = on_recovery_completed
    setattr(Recovery, _BACKLOG_GUARDED, True)


# ----------------------------------------------------------------------------- RocksDB compression

_COMPRESSION_GUARDED = "_leadstream_compression_guard"
COMPRESSIONS = ("zstd", "lz4", "snappy", "none")
"""The block compressions a table's ``compression`` option may name."""
ROCKSDB_DEFAULT_BLOCK_SIZE = 4096
"""RocksDB's data block size (what Faust's table factory keeps)."""
_DEFAULT_LEVEL = 32767
"""RocksDB's ``kDefaultCompressionLevel``: the algorithm's own default (zstd: 3)."""
_DEFAULT_WINDOW_BITS = -14
"""RocksDB's default ``window_bits`` of its compression options (used by zlib only)."""


def guard_rocksdb_compression() -> None:
    """Let a table's RocksDB options set how its stores compress (on rocksdict, Faust's
    ``RocksDBOptions.as_options`` builds the options from its own fields only and drops every
    other option: ``extra_options`` reach python-rocksdb alone):

    * ``compression``: the block compression (Faust leaves RocksDB's default, Snappy);
    * ``compression_dict_bytes``: a compression dictionary of at most this many bytes per SST
      file, sampled from the file's data (zstd, lz4), and ``zstd_train_bytes``: how much of that
      data zstd's dictionary trainer reads to build it (0: the samples are the dictionary);
    * ``block_size``: the data block size (a point lookup that misses the block cache reads and
      decompresses one block).

    Lead states are small JSON documents, alike from one lead to the next: each 4 KiB block holds
    a few of them, and a dictionary gives every block what they share (``BENCHMARKS.md``)."""
    import rocksdict  # noqa: PLC0415
    from faust.stores.rocksdb import RocksDBOptions  # noqa: PLC0415

    if getattr(RocksDBOptions, _COMPRESSION_GUARDED, False):
        return
    original = RocksDBOptions.as_options
    kinds = {
        "zstd": rocksdict.DBCompressionType.zstd,
        "lz4": rocksdict.DBCompressionType.lz4,
        "snappy": rocksdict.DBCompressionType.snappy,
        "none": rocksdict.DBCompressionType.none,
    }

    def table_factory(self: Any, block_size: int) -> Any:
        """Faust's table factory (bloom filter, block cache, binary-search index) with
        ``block_size``."""
        factory = rocksdict.BlockBasedOptions()
        factory.set_bloom_filter(self.bloom_filter_size, block_based=True)
        factory.set_block_cache(rocksdict.Cache(self.block_cache_size))
        factory.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        factory.set_block_size(block_size)
        return factory

    def as_options(self: Any) -> Any:
        options = original(self)
        if not self.use_rocksdict:
            return options
        extra = self.extra_options
        name = extra.get("compression")
        if name is not None:
            if name not in kinds:
                raise ValueError(f"unknown RocksDB compression {name!r}: one of {COMPRESSIONS}")
            options.set_compression_type(kinds[name]())
        dict_bytes = int(extra.get("compression_dict_bytes", 0))
        train_bytes = int(extra.get("zstd_train_bytes", 0))
        if dict_bytes < 0 or train_bytes < 0:
            raise ValueError("RocksDB dictionary sizes cannot be negative")
        if dict_bytes:
            options.set_compression_options(_DEFAULT_WINDOW_BITS, _DEFAULT_LEVEL, 0, dict_bytes)
            if train_bytes:
                options.set_zstd_max_train_bytes(train_bytes)
        block_size = int(extra.get("block_size", ROCKSDB_DEFAULT_BLOCK_SIZE))
        if block_size <= 0:
            raise ValueError(f"RocksDB block size must be positive, not {block_size}")
        if block_size != ROCKSDB_DEFAULT_BLOCK_SIZE:
            options.set_block_based_table_factory(table_factory(self, block_size))
        return options

    RocksDBOptions.as_options = as_options
    setattr(RocksDBOptions, _COMPRESSION_GUARDED, True)


_UNLOGGED_GUARDED = "_leadstream_unlogged_writes"


def guard_rocksdb_unlogged_writes() -> None:
    """Write a table's RocksDB stores without the write-ahead log. Faust opens each partition
    store with RocksDB's default write options, which append every write (a table value, the
    changelog offset Faust records after each changelog message) to the log before the
    memtable: about 8 µs a write on this project's bench machine against 2 µs without.

    The log only serves a store reopened after its process died, and a worker whose last run
    did not stop cleanly removes its stores and restores them from the changelogs
    (``local_stores``). A store dropped or closed normally (Faust's stop and revocations drop
    it; RocksDB then flushes what the log would have kept) holds every write. And if writes
    were lost anyway, a store still holds a prefix of its writes in order: Faust records a
    changelog offset only after the values before it, so the store's recorded offset never
    runs ahead of its values and the recovery reads the changelog from there."""
    import rocksdict  # noqa: PLC0415
    from faust.stores.rocksdb import RocksDBOptions  # noqa: PLC0415

    if getattr(RocksDBOptions, _UNLOGGED_GUARDED, False):
        return
    original = RocksDBOptions.open

    def open(self: Any, path: Any, *, read_only: bool = False) -> Any:
        db = original(self, path, read_only=read_only)
        if self.use_rocksdict:
            unlogged = rocksdict.WriteOptions()
            unlogged.disable_wal = True
            db.set_write_options(unlogged)
        return db

    open.__wrapped__ = original  # type: ignore[attr-defined]  # Faust's, for its tests
    RocksDBOptions.open = open
    setattr(RocksDBOptions, _UNLOGGED_GUARDED, True)
