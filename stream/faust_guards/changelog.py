"""Table writes handed to the producer without Faust's per-message send path.

A write to a Faust table (``table[key] = value``) builds a ``PendingMessage`` and a
``FutureMessage`` for its changelog message, runs the key and the value through the serialiser
registry twice (once for the message, once for the store), books the key in the store's index,
and hands the message to the producer buffer, whose task passes it to ``Topic.publish_message``
(sensors, a callback per message, a ``FutureMessage`` resolved from aiokafka's future). For a
raw table (bytes keys and values, ``raw`` serialisers) on RocksDB all of that produces what
``ChangelogWriter.set`` produces directly: the same bytes in the store of the current event's
partition (``Store._set``), the same changelog message (topic, partition, key, value), handed
to the producer once every record sent before it is delivered (``write_order``), and on its
delivery the count of confirmed writes (``local_stores``) and the changelog offset the store
records (``Collection._on_changelog_sent``: per message; here the highest of a produce
response's messages per partition, once, right after their callbacks ran).

Messages wait in the writer's queue, in order, only while the producer cannot take one at once
(its buffer full); ``hold_flush`` waits for the queue too before offsets are committed. A
changelog message the broker refuses stops the worker (``on_failure``), as a record sent by the
processor does: Faust only logs it and would commit past a state the changelog never got.
Deletions, other tables and ``exactly_once`` (the writes join the transaction) keep Faust's path.
Upstream issue: none filed (a cost).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from faust import streams
from faust.stores.rocksdb import Store
from faust.types import TP

from stream.faust_guards import local_stores
from stream.faust_guards.write_order import WriteOrder

__all__ = ["ChangelogWriter"]

log = logging.getLogger(__name__)

_Pending = tuple[Any, str, int, bytes, bytes | None]
"""A changelog message waiting for the producer: table, topic, partition, key, value."""


def _direct(table: Any) -> bool:
    """Whether ``table``'s writes can skip Faust's path (a raw, partitioned RocksDB table)."""
    return (
        isinstance(table.data, Store)
        and not table.is_global
        and not table.use_partitioner
        and table.key_serializer == "raw"
        and table.value_serializer == "raw"
        and not table._should_expire_keys()
    )


class ChangelogWriter:
    """Writes of raw RocksDB tables: the local store at once, the changelog behind ``order``."""

    def __init__(
        self,
        app: Any,
        order: WriteOrder,
        on_failure: Callable[[BaseException], None],
        on_sent: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self.app = app
        self.order = order
        self.on_failure = on_failure
        self.on_sent = on_sent
        """Told how many changelog messages went to each topic (once per turn of the event loop
        that handed any over), as Faust's sensors are told of the messages it sends."""
        self._unreported: dict[str, int] = {}
        self._producer: Any = None
        self._waiting: deque[_Pending] = deque()
        self._sending: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._tps: dict[tuple[str, int], TP] = {}
        self._confirmed: dict[TP, tuple[Any, int]] = {}

    def set(self, table: Any, key: bytes, value: bytes) -> None:
        """``table[key] = value`` for the current event's partition."""
        if not self._direct(table):
            table[key] = value
            return
        partition: int = table.partition_for_key(key)  # Faust's co-partitioning check too
        store = table.data
        store._key_index[key] = partition
        store._db_for_partition(partition).put(key, value)
        self._changelog(table, partition, key, value)
        table._sensor_on_set(table, key, value)

    def delete(self, table: Any, key: bytes) -> None:
        """``table.pop(key, None)`` for the current event's partition."""
        if not self._direct(table):
            table.pop(key, None)
            return
        partition: int = table.partition_for_key(key)
        db = table.data._db_for_partition(partition)
        if db.get(key) is None:
            return
        db.delete(key)
        self._changelog(table, partition, key, None)
        table._sensor_on_del(table, key)

    async def drain(self) -> None:
        """Wait until every changelog message released to the writer is with the producer."""
        await self._idle.wait()

    def _direct(self, table: Any) -> bool:
        """Whether this write skips Faust's path: a raw table on RocksDB, an event current, and
        the producer started with Faust's buffer empty (once, then for good: a table's
        messages keep one route, in order)."""
        if streams.current_event() is None or not _direct(table):
            return False
        if self._producer is None:
            producer = self.app.producer
            if not producer.started or producer.buffer.size:
                return False
            self._producer = producer
        return True

    def _changelog(self, table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        local_stores.changelog_sent()
        topic = table.changelog_topic.get_topic_name()
        self.order.write(functools.partial(self._hand_over, (table, topic, partition, key, value)))

    # ------------------------------------------------------------------ internals

    def _hand_over(self, pending: _Pending) -> None:
        if self._waiting:  # the producer is full: behind the ones already waiting
            self._waiting.append(pending)
            return
        try:
            self._send_now(pending)
        except Exception as exc:
            self._failed(exc)

    def _send_now(self, pending: _Pending) -> None:
        """Hand ``pending`` to the producer; queue it (and what follows) if it has to wait."""
        table, topic, partition, key, value = pending
        coro = self._producer.send(topic, key, value, partition, None, None)
        try:
            waiting_on = coro.send(None)
        except StopIteration as done:
            self._track(table, topic, partition, done.value)
            return
        self._waiting.append(pending)
        self._idle.clear()
        self._sending = asyncio.ensure_future(self._send_waiting(coro, waiting_on))

    async def _send_waiting(self, coro: Any, waiting_on: Any) -> None:
        from stream.faust_guards.delivery import Resumed  # noqa: PLC0415

        try:
            table, topic, partition, _, _ = self._waiting[0]
            self._track(table, topic, partition, await Resumed(coro, waiting_on))
            self._waiting.popleft()
            while self._waiting:
                table, topic, partition, key, value = self._waiting[0]
                delivery = await self._producer.send(topic, key, value, partition, None, None)
                self._track(table, topic, partition, delivery)
                self._waiting.popleft()
        except Exception as exc:
            self._failed(exc)
        finally:
            self._sending = None
            self._idle.set()

    def _track(self, table: Any, topic: str, partition: int, delivery: Any) -> None:
        if self.on_sent is not None:
            counts = self._unreported
            if not counts:
                asyncio.get_running_loop().call_soon(self._report)
            counts[topic] = counts.get(topic, 0) + 1
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = TP(topic, partition)
        delivery.add_done_callback(functools.partial(self._written, table, tp))

    def _report(self) -> None:
        counts, self._unreported = self._unreported, {}
        if counts and self.on_sent is not None:
            self.on_sent(counts)

    def _written(self, table: Any, tp: TP, delivery: Any) -> None:
        if delivery.cancelled() or delivery.exception() is not None:
            error = delivery.exception() if not delivery.cancelled() else asyncio.CancelledError()
            self._failed(error)
            return
        local_stores.changelog_confirmed()
        offset = delivery.result().offset
        confirmed = self._confirmed
        if not confirmed:
            asyncio.get_running_loop().call_soon(self._record_offsets)
        known = confirmed.get(tp)
        if known is None or offset > known[1]:
            confirmed[tp] = (table.data, offset)

    def _record_offsets(self) -> None:
        """Record each changelog partition's highest confirmed offset in its store (Faust's
        ``set_persisted_offset``), once for all the messages a produce response confirmed."""
        confirmed, self._confirmed = self._confirmed, {}
        for tp, (store, offset) in confirmed.items():
            store.set_persisted_offset(tp, offset)

    def _failed(self, error: BaseException) -> None:
        log.error("a table's changelog message was not delivered (%r): the worker stops", error)
        self.on_failure(error)
