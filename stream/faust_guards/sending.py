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

The records handed over are counted per topic in a plain dictionary and reported to
``on_sent`` (the worker's ``leadstream_messages_out`` counter, which Faust's sensors feed only for
``Topic.send``) once per turn of the event loop that sent any: a batch's records cost one
report per topic, not one locked counter increment per record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from stream.faust_guards.write_order import WriteOrder

__all__ = ["DirectSender"]


class DirectSender:
    """Send bytes records through the app's producer; track their delivery; report how many
    records went to each topic to ``on_sent``."""

    def __init__(
        self,
        app: Any,
        order: WriteOrder | None = None,
        on_sent: Callable[[Mapping[str, int]], None] | None = None,
    ) -> None:
        self.app = app
        self.order = order
        self.on_sent = on_sent
        self._producer: Any = None
        self._unreported: dict[str, int] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Any:
        """Hand the record to the producer; returns its delivery future."""
        producer = self._producer
        if producer is None:
            producer = self._producer = await self.app.maybe_start_producer()
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
