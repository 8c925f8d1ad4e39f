"""A table write reaches its changelog only after every record sent before it is delivered.

``WriteOrder`` numbers the records the processor sends (``sending.DirectSender`` tracks each
delivery) and holds each changelog write of the processor's tables back until every record
sent before it has been delivered (``hold_changelog`` replaces the changelog topic's ``send_soon``
with ``Topic.as_future_message`` and the producer's ``send_soon``; the local store has the value at
once). The agent never waits: the writes are released, in order, by the records' delivery
callbacks. Before offsets are committed the producer's ``flush`` waits until no write is held
(``hold_flush``). Upstream issue: none filed (Kafka orders records within a partition only). Why:
``RELIABILITY.md#faust-guards``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["WriteOrder", "hold_changelog", "hold_flush"]

log = logging.getLogger(__name__)


class WriteOrder:
    """Records sent (numbered) and changelog writes held behind them, in order."""

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self._sent = 0
        self._outstanding: set[int] = set()  # numbers of undelivered records
        self._order: deque[int] = deque()  # numbers sent, oldest first; delivered ones are
        # dropped from the front at each delivery (a dict's first key, the earlier books, is
        # found past every deleted slot before it: thousands on a busy worker)
        self._held: deque[tuple[int, Callable[[], None]]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_failure = on_failure
        self.failure: BaseException | None = None

    @property
    def held(self) -> int:
        """Changelog writes waiting for records sent before them."""
        return len(self._held)

    def track(self, delivery: Any) -> None:
        """A record was sent; ``delivery`` is its delivery future (``None``: nothing to wait
        for, as in Faust's test context)."""
        if delivery is None:
            return
        self._sent += 1
        number = self._sent
        self._outstanding.add(number)
        self._order.append(number)
        delivery.add_done_callback(functools.partial(self._delivered, number))

    def write(self, send: Callable[[], None]) -> None:
        """Hand a changelog write over now if nothing sent before it is undelivered, else once
        everything sent before it is."""
        if not self._outstanding and not self._held:
            send()
            return
        self._held.append((self._sent, send))
        self._idle.clear()

    def _delivered(self, number: int, fut: Any) -> None:
        self._outstanding.remove(number)
        if fut.cancelled() or fut.exception() is not None:
            error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if self.failure is None:
                self.failure = error
                log.error(
                    "a record was not delivered (%r): the %d table write(s) after it stay "
                    "unwritten and the worker stops",
                    error,
                    len(self._held),
                )
                if self._on_failure is not None:
                    self._on_failure(error)
            self._idle.set()
            return
        if self.failure is None:
            self._release()

    def _lowest(self) -> int | None:
        """The lowest number of an undelivered record (``None``: all delivered)."""
        order, outstanding = self._order, self._outstanding
        while order and order[0] not in outstanding:
            order.popleft()
        return order[0] if order else None

    def _release(self) -> None:
        lowest = self._lowest()
        held = self._held
        while held and (lowest is None or held[0][0] < lowest):
            held.popleft()[1]()
        if not held:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until no changelog write is held; raise if a record before one failed."""
        while self._held:
            if self.failure is not None:
                raise RuntimeError(
                    f"{len(self._held)} table write(s) held behind a record that was not "
                    f"delivered: {self.failure!r}"
                ) from self.failure
            await self._idle.wait()


def hold_changelog(topic: Any, order: WriteOrder) -> None:
    """Route the writes of a table's changelog ``topic`` through ``order``. The message is made
    (and its value serialised) at once; only its hand-over to the producer waits."""

    def send_soon(*, force: bool = False, **kwargs: Any) -> Any:
        fut = topic.as_future_message(**kwargs)
        order.write(lambda: topic.app.producer.send_soon(fut))
        return fut

    topic.send_soon = send_soon


def hold_flush(producer: Any, order: WriteOrder, *then: Callable[[], Awaitable[None]]) -> None:
    """Make ``producer.flush`` (what Faust awaits before committing offsets, and at shutdown)
    first wait for the writes ``order`` holds, then for each of ``then`` (a queue between the
    order and the producer)."""
    original = producer.flush

    async def flush() -> None:
        await order.drain()
        for drain in then:
            await drain()
        await original()

    producer.flush = flush
