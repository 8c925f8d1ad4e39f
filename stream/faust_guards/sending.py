"""Records handed straight to Faust's producer, without the per-record ``Topic.send`` path.

``Topic.send`` builds a ``PendingMessage`` and a ``FutureMessage``, runs the topic's key and
value serialisers, declares the topic if needed, reports to every sensor and attaches two
callbacks per record: most of the cost of a send for records that are already bytes. The
processor's records are bytes with bytes keys, so ``DirectSender`` hands them to what
``Topic.publish_message`` itself hands them to: ``app.maybe_start_producer()``, which is the
producer, or under ``exactly_once`` the transaction manager (the record then joins the
transaction of its partition, as through ``Topic.send``). The partition is Kafka's default
(murmur2 of the key) unless given, as through ``Topic.send``. Each delivery is tracked by the
write order, so a table write still reaches its changelog only after the records sent before it.

``maybe_start_producer`` is asked once: it is wrapped by mode's ``stampede``, which yields to the
event loop three times on every call (``asyncio.sleep(0)``), started producer or not, so asking
it per record cost three turns of the loop (each a poll of the selector) per record sent. What
it returns, the producer or the consumer's transaction manager, is the same object for the
worker's life.

Faust's own sends ask for the producer the same way, once per record: ``Topic.publish_message``
awaits ``Topic._get_producer``, that is ``app.maybe_start_producer()``; every table write (a
changelog message, handed to it by the producer buffer's task) paid the three turns.
``guard_topic_producer`` makes ``Topic._get_producer`` return a started producer at once (what
``maybe_start_producer`` would return: the producer, outside a transaction), and ask Faust as
before otherwise (a producer not started yet, or the transaction manager under ``exactly_once``).

A record sent without a partition gets the partition Kafka's default partitioner gives its key
(murmur2 of the key bytes, modulo the partition count), from a cache of recent keys: aiokafka
computes murmur2 in Python, 5 µs for a lead id and 13 µs for a score key, for every record,
and a worker sends each lead's keys again batch after batch. The sender is given the partition
count of the topics it writes to (a worker refuses to start when a topic has another).

The records handed over are counted per topic in a plain dictionary and reported to
``on_sent`` (the worker's ``leadstream_messages_out`` counter, which Faust's sensors feed only for
``Topic.send``) once per turn of the event loop that sent any: a batch's records cost one
report per topic, not one locked counter increment per record.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2

from stream.faust_guards.write_order import WriteOrder

__all__ = ["KEYS_KEPT", "DirectSender", "guard_topic_producer"]

KEYS_KEPT = 65_536
"""Keys whose partitions the sender keeps (least recently used dropped)."""


class DirectSender:
    """Send bytes records through the app's producer; track their delivery; report how many
    records went to each topic to ``on_sent``."""

    def __init__(
        self,
        app: Any,
        order: WriteOrder | None = None,
        on_sent: Callable[[Mapping[str, int]], None] | None = None,
        *,
        partitions: int | None = None,
    ) -> None:
        self.app = app
        self.order = order
        self.on_sent = on_sent
        self._producer: Any = None
        self._unreported: dict[str, int] = {}
        self.partitions = partitions
        """The partition count of every topic sent to (``None``: the producer partitions)."""
        self.partition_of = functools.lru_cache(maxsize=KEYS_KEPT)(self._murmur_partition)
        """The partition of a key: Kafka's default partitioner, recent keys kept."""

    def _murmur_partition(self, key: bytes) -> int:
        # aiokafka's DefaultPartitioner over partitions 0..n-1
        assert self.partitions is not None
        return int(murmur2(key) & 0x7FFFFFFF) % self.partitions

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        """Hand the record to the producer; returns its delivery future."""
        producer = self._producer
        if producer is None:
            producer = self._producer = await self.app.maybe_start_producer()
        if partition is None and key is not None and self.partitions is not None:
            partition = self.partition_of(key)
        delivery = await producer.send(topic, key, value, partition, None, None)
        if self.order is not None:
            self.order.track(delivery)
        if self.on_sent is not None:
            counts = self._unreported
            if not counts:
                asyncio.get_running_loop().call_soon(self.report)
            counts[topic] = counts.get(topic, 0) + 1
        return delivery

    def report(self) -> None:
        """Hand the counts of the records sent since the last report to ``on_sent``."""
        counts, self._unreported = self._unreported, {}
        if counts and self.on_sent is not None:
            self.on_sent(counts)


_GUARDED = "_leadstream_topic_producer"


def guard_topic_producer() -> None:
    """Install the direct producer lookup on Faust's ``Topic`` (idempotent; affects every Faust
    app in the process)."""
    from faust.topics import Topic  # noqa: PLC0415

    if getattr(Topic, _GUARDED, False):
        return
    original = Topic._get_producer

    async def _get_producer(self: Any) -> Any:
        app = self.app
        producer = app.producer
        if not app.in_transaction and producer.started:
            return producer
        return await original(self)

    Topic._get_producer = _get_producer
    setattr(Topic, _GUARDED, True)
