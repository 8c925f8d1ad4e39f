"""Every record of an assigned partition is handled once, in offset order, by its worker.

Faust's consumer can let a record slip past the agent around a rebalance, and then commit its
offset (upstream issue: none filed; why: ``RELIABILITY.md#faust-guards``). It reads and updates
the consumer's ``_committed_offset``, ``_acked``, ``_acked_index`` and ``_gap``.

The processor therefore keeps, per partition it consumes, the offset of the last record it
handled, and checks each record against it:

* a record at or below that offset was handled already, by this worker, in this assignment (the
  fetcher delivered it again after a seek): it is acknowledged and skipped;
* a record past the next expected offset means records in between never reached the agent: they
  are read from the broker directly and handled first, in order, and their offsets are marked
  done for Faust's commit logic. Offsets that hold no record (transaction markers) are simply
  marked done. The first record after an assignment is checked against the committed offset.
* a partition whose records stop reaching the agent while the broker holds more (the tail of a
  batch dropped, nothing after it yet, or nothing at all since it was assigned) is noticed by a
  timer: when a partition made no progress between two checks (``STALL_CHECK_S`` apart) while
  its high watermark is past it, a ``partition`` tick is sent to the internal topic's partition
  of the same number, and on its arrival the agent reads the missing records (table writes then
  land on that partition, as they must).

A partition's records are expected from the group's committed offset or, for a partition the
group never committed (records that arrived while it changed hands, say), from its log start:
the worker reads such a partition from its earliest record.

Every ``SAVE_EVERY`` records a partition's position is saved in each table the records write
(leads and identities), under a key no id can take, and so in each table's changelog *after*
the state writes of the records it covers. A changelog orders only its own writes (a crash can
keep a later write to one and lose an earlier one to the other), so the position a restarted
worker trusts is the lowest of the saved ones: it skips, exactly, the records up to it (their
effects are in the restored tables, which after a crash are the changelogs' contents:
``stream.faust_guards.local_stores``); the few after it are recognised by the event ids the lead
state remembers.

Only the partitions of the worker's current assignment are checked. Their offsets are forgotten
when the partitions are revoked, so a partition that comes back later starts again from its
committed offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from stream.faust_guards.tables import writing_for
from stream.kafka import clients

__all__ = ["POSITION_PREFIX", "STALL_CHECK_S", "Fetched", "SequenceGuard", "position_key"]

log = logging.getLogger(__name__)

SAVE_EVERY = 20
"""Handled records per partition between two saves of its position (one table write each)."""

STALL_CHECK_S = 5.0
"""Seconds between two checks for partitions that stopped reaching the agent."""

COORDINATOR_WAIT_S = 180.0
COORDINATOR_RETRY_S = 0.5
"""Asking the broker for the group's committed offsets: how long to keep trying while the
broker or the group's coordinator is not available (a restarted broker takes a while to come
back and then loads the coordinator on first use), and the pause between attempts. Past the
wait the error is raised and the worker stops (``processor.register``: an agent crash stops
the worker, for its supervisor to restart)."""

HELD_CHECKS = 3
"""Checks in a row a partition's commits may stay put below its last handled record before
the guard says so in the log."""

POSITION_PREFIX = b"position "
"""Table keys of saved positions start with this (a space: never a lead id)."""


def position_key(topic: str, partition: int) -> bytes:
    """The table key under which the position of ``topic[partition]`` is saved."""
    return POSITION_PREFIX + f"{topic} {partition}".encode()


Handler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A record read from the broker directly (what the handlers read of a Faust message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class SequenceGuard:
    """Per consumed partition, the last offset handled; gaps are read and handled in order."""

    def __init__(
        self,
        app: Any,
        bootstrap: str,
        *,
        topics: Collection[str] | None = None,
        read_committed: bool = False,
        positions: Sequence[MutableMapping[bytes, bytes]] = (),
        on_redelivered: Callable[[], None] = lambda: None,
        on_recovered: Callable[[int], None] = lambda count: None,
        write: Callable[[Any, bytes, bytes | None], None] | None = None,
    ) -> None:
        self.app = app
        self.write = write
        """How a position is written to a table (``None``: as a Faust table item), so it takes
        the route, and keeps the order, of the owner's other writes to that table."""
        self.on_redelivered = on_redelivered
        self.on_recovered = on_recovered
        self.bootstrap = bootstrap
        self.topics = None if topics is None else frozenset(topics)
        self.read_committed = read_committed
        self.positions = tuple(positions)
        self._since_saved: dict[tuple[str, int], int] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._last: dict[tuple[str, int], int] = {}  # handled: effects written
        self._accepted: dict[tuple[str, int], int] = {}  # admitted (a batch: not yet handled)
        self._seen_at_check: dict[tuple[str, int], int] = {}
        self._held: dict[tuple[str, int], tuple[int, int]] = {}
        self._log_start: dict[tuple[str, int], int] = {}  # partitions the group never committed
        self._reader: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._filling = False

    # ------------------------------------------------------------------ bookkeeping

    def assign(self, tps: Any) -> None:
        """Partitions assigned to this worker (only those of the agent's ``topics`` are
        checked: the assignment also holds the tables' changelogs)."""
        self._assigned.update(
            (tp.topic, tp.partition) for tp in tps if self.topics is None or tp.topic in self.topics
        )

    def forget(self, tps: Any) -> None:
        """Partitions revoked: their positions start again from the committed offsets."""
        for tp in tps:
            key = (tp.topic, tp.partition)
            self._assigned.discard(key)
            self._last.pop(key, None)
            self._accepted.pop(key, None)
            self._since_saved.pop(key, None)
            self._seen_at_check.pop(key, None)
            self._log_start.pop(key, None)

    def handled(self, message: Any) -> None:
        """``message`` (admitted) is handled, its table writes made (Faust's current event: the
        position is written to that event's partition)."""
        key = (message.topic, message.partition)
        if key in self._assigned and message.offset > self._last.get(key, -1):
            self._last[key] = message.offset
            if self.positions:
                count = self._since_saved.get(key, 0) + 1
                if count >= SAVE_EVERY:
                    self._save(key, message.offset)
                    count = 0
                self._since_saved[key] = count

    def handled_batch(self, events: Sequence[Any]) -> None:
        """The admitted Faust ``events`` of a batch are handled, their table writes made. A
        partition's position is saved (at most once per batch, at its last record) when
        ``SAVE_EVERY`` records have been handled since the last save."""
        last_of: dict[tuple[str, int], Any] = {}
        for event in events:
            message = event.message
            key = (message.topic, message.partition)
            if key in self._assigned and message.offset > self._last.get(key, -1):
                self._last[key] = message.offset
                self._since_saved[key] = self._since_saved.get(key, 0) + 1
                last_of[key] = event
        if not self.positions:
            return
        for key, event in last_of.items():
            if self._since_saved[key] >= SAVE_EVERY:
                with writing_for(event):
                    self._save(key, event.message.offset)
                self._since_saved[key] = 0

    def interrupted(self, events: Sequence[Any]) -> None:
        """The handling of a batch's admitted Faust ``events`` stopped part-way (the agent
        crashed or is stopping): its records count as not taken, so the next record delivered
        after them, or the stall check, has them read again (Faust does not deliver them again
        while the partition stays assigned; ``leave_unacknowledged`` keeps them uncommitted)."""
        for event in events:
            key = (event.message.topic, event.message.partition)
            last = self._last.get(key)
            if last is None:
                self._accepted.pop(key, None)
            else:
                self._accepted[key] = last

    def _save(self, key: tuple[str, int], offset: int) -> None:
        for table in self.positions:
            if self.write is not None:
                self.write(table, position_key(*key), str(offset).encode())
            else:
                table[position_key(*key)] = str(offset).encode()

    def _saved(self, key: tuple[str, int]) -> int | None:
        """The position saved in every table (the lowest: each table's changelog orders only
        its own writes), ``None`` if a table has none."""
        saved: list[int] = []
        for table in self.positions:
            raw = table.get(position_key(*key))
            if raw is None:
                return None
            saved.append(int(raw))
        return min(saved) if saved else None

    def _in_assignment(self, key: tuple[str, int]) -> bool:
        try:
            return TopicPartition(*key) in self.app.consumer.assignment()
        except Exception:  # no consumer running (Faust's test context)
            return False

    def _committed(self, key: tuple[str, int]) -> int | None:
        """The group's committed offset of ``key`` as the worker's consumer knows it."""
        offsets = getattr(self.app.consumer, "_committed_offset", None)
        if offsets is None:
            return None
        committed: int | None = offsets.get(TopicPartition(*key))
        return committed

    async def _first(self, key: tuple[str, int]) -> int | None:
        """The offset a partition's records start from in this assignment: the group's
        committed offset or, when the group never committed one, the partition's log start
        (the worker reads a new partition from its earliest record); ``None``: not known.

        Faust's books lack a partition's committed offset both when the group never committed
        one and between a rebalance and Faust's seek to the committed offsets (it drops them
        on revocation): the broker decides which. Taking the second for the first would read
        the partition again from its log start and apply its whole history twice."""
        committed = self._committed(key)
        if committed is not None:
            return committed
        if key in self._log_start:
            return self._log_start[key]
        tp = TopicPartition(*key)
        on_broker = await self._group_committed(tp)
        if on_broker is not None:
            return on_broker
        reader = await self._consumer()
        starts = await reader.beginning_offsets([tp])
        self._log_start[key] = starts[tp]
        return self._log_start[key]

    async def _group_committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` on the broker (``None``: none committed)."""
        if self._admin is None:
            self._admin = await clients.admin(
                self.bootstrap, client_id=f"{self.app.conf.id}-sequence-admin"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COORDINATOR_WAIT_S
        warned = False
        while True:
            try:
                found = await self._admin.list_consumer_group_offsets(
                    self.app.conf.id, partitions=[tp]
                )
                break
            except KafkaError as exc:  # the broker away, or loading the group's coordinator
                if not exc.retriable or loop.time() >= deadline:
                    raise
                if not warned:
                    log.warning(
                        "%s[%s]: the group's committed offset is not available yet (%r); "
                        "retrying for up to %.0f s",
                        tp.topic,
                        tp.partition,
                        exc,
                        COORDINATOR_WAIT_S,
                    )
                    warned = True
                await asyncio.sleep(COORDINATOR_RETRY_S)
        meta = found.get(tp)
        return meta.offset if meta is not None and meta.offset >= 0 else None

    async def _progress(self, key: tuple[str, int]) -> int | None:
        """The last offset of ``key`` known taken: admitted by this worker in this assignment
        (a batch's records count from their admission), else the one before the first
        (``_first``; ``None``: not known yet)."""
        last = self._accepted.get(key, self._last.get(key))
        if last is not None:
            return last
        first = await self._first(key)
        return None if first is None else first - 1

    async def admit(self, message: Any, handle: Handler) -> bool:
        """Whether ``message`` is to be handled; records missing before it are handled first."""
        key = (message.topic, message.partition)
        if key not in self._assigned:
            # the agent can see a partition's first records before the assignment signal
            # reaches the guard: the consumer's own assignment decides
            if not self._in_assignment(key):
                return True  # not a partition of this worker's assignment (tests, replies)
            self._assigned.add(key)
        last = self._accepted.get(key)
        if last is None:
            saved = self._saved(key)
            if saved is not None and message.offset <= saved:
                # handled before a restart or a move: its effects are in the restored table
                self._last[key] = self._accepted[key] = last = saved
        if last is not None and message.offset <= last:
            self.on_redelivered()
            return False
        expected = last + 1 if last is not None else await self._first(key)
        if last is None and expected is not None and message.offset < expected:
            # below the group's committed offset: handled before (a copy fetched before a
            # rebalance, delivered after it)
            self.on_redelivered()
            return False
        if expected is not None and message.offset > expected:
            await self.fill(message.topic, message.partition, expected, message.offset, handle)
        self._accepted[key] = message.offset
        return True

    # ------------------------------------------------------------------ reading gaps

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._reader is None:
            self._reader = await clients.consumer(
                self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed" if self.read_committed else "read_uncommitted",
                client_id=f"{self.app.conf.id}-sequence",
            )
        return self._reader

    async def fill(self, topic: str, partition: int, start: int, end: int, handle: Handler) -> int:
        """Handle the records of ``topic[partition]`` in ``[start, end)``; how many there were."""
        self._filling = True
        try:
            return await self._fill(topic, partition, start, end, handle)
        finally:
            self._filling = False

    async def _fill(self, topic: str, partition: int, start: int, end: int, handle: Handler) -> int:
        reader = await self._consumer()
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, start)
        count = 0
        position = start
        while position < end:
            batch = await reader.getmany(tp, timeout_ms=2000, max_records=500)
            records = batch.get(tp, [])
            if not records:
                if await reader.position(tp) >= end:
                    break
                continue
            for record in records:
                if record.offset >= end:
                    position = end
                    break
                await handle(Fetched(topic, partition, record.offset, record.key, record.value))
                self._last[(topic, partition)] = self._accepted[(topic, partition)] = record.offset
                count += 1
                position = record.offset + 1
        self._mark_done(topic, partition, start, end)
        log.warning(
            "%s[%s]: %d record(s) in offsets %d..%d never reached the agent; read and handled",
            topic,
            partition,
            count,
            start,
            end - 1,
        )
        self.on_recovered(count)
        return count

    def _mark_done(self, topic: str, partition: int, start: int, end: int) -> None:
        """Tell Faust's commit logic the offsets ``[start, end)`` are done.

        They are acknowledged the way Faust acknowledges a record (its list and index of
        acknowledged offsets), each once: an offset counted twice breaks Faust's run of
        consecutive offsets, and commits then crawl one offset at a time. (Faust's own "gap"
        ranges are not used: it does not index what it takes from them, so a late copy of the
        record acknowledged afterwards would be counted twice.)
        """
        consumer = self.app.consumer
        # aiokafka's TopicPartition, not the Faust ``TP`` of ``assignment()``: the two are equal
        # and hash alike, so a book this creates keeps its key, and Faust's commits hand the
        # books' keys to aiokafka, which refuses any other type ("Key should be TopicPartition
        # instance", raised from the transaction's commit under exactly_once)
        tp = TopicPartition(topic, partition)
        if tp not in consumer.assignment():
            return
        acked_index = consumer._acked_index[tp]
        acked = consumer._acked[tp]
        gaps = consumer._gap[tp]
        for offset in range(start, end):
            if offset not in acked_index and not gaps.overlaps_point(offset):
                acked_index.add(offset)
                acked.append(offset)

    def advance(self) -> None:
        """Let the commits reach every record handled. Records are handled in offset order, so
        all offsets up to a partition's last handled one are done; a record Faust fetched but
        neither handed over nor acknowledged (a copy dropped around a seek) would otherwise
        hold its partition's commits back for good."""
        for key, last in list(self._last.items()):
            committed = self._committed(key)
            if committed is not None and committed <= last and key in self._assigned:
                self._mark_done(*key, committed, last + 1)
                self._watch_commits(key, committed, last)
            else:
                self._held.pop(key, None)

    def _watch_commits(self, key: tuple[str, int], committed: int, last: int) -> None:
        """Warn when a partition's commits stay at one offset below its last handled record
        for ``HELD_CHECKS`` checks in a row (with what Faust's commit logic holds for it)."""
        since, count = self._held.get(key, (committed, 0))
        count = count + 1 if since == committed else 1
        self._held[key] = (committed, count)
        if count != HELD_CHECKS:
            return
        consumer = self.app.consumer
        tp = TopicPartition(*key)
        acked = sorted(consumer._acked.get(tp, ()))
        index = consumer._acked_index.get(tp, set())
        gaps = sorted((g.begin, g.end) for g in consumer._gap.get(tp, ()))
        log.warning(
            "%s[%s]: commits held at %d for %d checks, last handled %d; acked %d offsets "
            "(first %s, last %s), %d indexed (committed offset indexed: %s, listed: %s); "
            "gaps %s",
            *key,
            committed,
            count,
            last,
            len(acked),
            acked[:5],
            acked[-3:],
            len(index),
            committed in index,
            committed in acked,
            gaps[:5],
        )

    # ------------------------------------------------------------------ stalled tails

    async def stalled(self) -> set[int]:
        """Partitions (numbers) with a consumed topic stuck below its high watermark since the
        previous check, including one that has delivered nothing since it was assigned (and
        one the group never committed: checked from its log start)."""
        consumer = self.app.consumer
        out: set[int] = set()
        for key in list(self._assigned):
            topic, partition = key
            try:
                last = await self._progress(key)
            except Exception as exc:  # the broker away: the next check tries again
                log.debug("no progress known for %s[%s]: %r", topic, partition, exc)
                continue
            if last is None:
                continue
            try:
                highwater = consumer.highwater(TopicPartition(topic, partition))
            except Exception as exc:  # unassigned meanwhile: nothing to do
                log.debug("no high watermark for %s[%s]: %r", topic, partition, exc)
                continue
            if highwater is not None and highwater > last + 1:
                if self._seen_at_check.get(key) == last:
                    out.add(partition)
                self._seen_at_check[key] = last
            else:
                self._seen_at_check.pop(key, None)
        return out

    async def catch_up(self, partition: int, handle: Handler) -> None:
        """Read what the stalled topics of ``partition`` hold past their last handled record.

        A request met while records are being read (a partition tick among them, sent while
        the broker was away) is dropped: the reading under way covers it."""
        if self._filling:
            return
        consumer = self.app.consumer
        for key in list(self._assigned):
            topic, number = key
            if number != partition:
                continue
            last = await self._progress(key)
            if number != partition or last is None or self._seen_at_check.get(key) != last:
                continue
            highwater = consumer.highwater(TopicPartition(topic, partition))
            saved = self._saved(key)
            if saved is not None and saved > last:
                # handled before a restart or a move (in the restored table): done, not again
                self._mark_done(topic, partition, last + 1, saved + 1)
                self._last[key] = self._accepted[key] = last = saved
            if highwater is not None and highwater > last + 1:
                await self.fill(topic, partition, last + 1, highwater, handle)
            self._seen_at_check.pop(key, None)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        if self._admin is not None:
            await clients.close(self._admin)
            self._admin = None
