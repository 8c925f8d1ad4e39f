"""Records handed from Faust's fetch loop to the conductor without four tasks per record, or put
on their stream's queue by the fetch loop itself when the conductor would do so at once, and
bytes records made into events without Faust's serialiser registry.

Faust's fetch loop (``Consumer._drain_messages``) hands every record to the conductor with
``await self.wait_first(callback(message), self.suspend_flow.wait())``, so that a hand-over
blocked on a full stream buffer is abandoned when a rebalance suspends the flow. ``wait_first``
wraps the hand-over, the suspension, and the service's stopped and crashed events in four tasks
and waits on them with ``asyncio.wait``: about 20 µs per record on this project's bench machine,
against well under 1 µs for the hand-over itself, which almost never blocks (it decodes the
record into an event and puts it on a stream's queue that has room).

``guard_eager_delivery`` replaces ``Consumer._drain_messages`` with the same loop (Faust
0.15's, whose source ``FAUST_DRAIN_SHA256`` pins: a Faust upgrade fails
``tests/unit/faust_guards/test_delivery.py`` until the copy is checked again) in which the
hand-over runs at once, in the fetch loop's task, until it first waits. One that finishes
without waiting (the usual case) is done: no task is made, and nothing could have happened
meanwhile that ``wait_first`` would have reacted to. One that waits (a full queue, a held lock)
is handed to ``wait_first`` from where it stopped, with the same three events racing it, as in
Faust. Upstream issue: none filed (a cost, not a defect).

``guard_raw_decode`` gives a topic whose keys and values are bytes read with the ``raw`` codec
(every topic of the worker) a decode that makes the event from the record's own key and value.
Faust's decode (``Schema.compile``) runs each through the serialiser registry (``loads_key``,
``loads_value``, the codec's ``loads``, ``want_bytes``, ``_prepare_payload``), which for these
types returns them unchanged, and reads the event class from the app's settings for every record
(``App.create_event``): a fifth of the guarded batched agent's samples went to the conductor's
hand-over, this the largest part. Any other topic keeps Faust's decode. Upstream issue: none
filed (a cost).

``guard_direct_handover`` lets the fetch loop put a record's event on its stream's queue itself
when the conductor's hand-over would finish at once with nothing to decide. For every record
Faust's conductor (``Conductor.on_message``) takes a lock to look up the partition's handler,
and the handler (Faust's compiled ``ConductorHandler``, or ``ConductorCompiler.build``'s closure
without Cython) waits on the flow control and on the producer buffer, decodes the record and puts
the event on each subscribed channel's queue: six coroutines, each started and finished without
waiting in the usual case. For each handler Faust builds, the guard keeps a plain function doing
the same with that handler's own objects (its flow control, producer buffer, channels and
pressure callbacks). The fetch loop calls it only when the lock is free with no task waiting on
it (taking it would not wait), and it delivers only when the flow is not suspended, the producer
buffer is not over its limit, the partition has one channel, that channel's decode is
``guard_raw_decode``'s and its queue is not full. Otherwise it touches nothing and the record
takes Faust's path. ``FAUST_BUILD_SHA256`` and ``FAUST_HANDLER_PYX_SHA256`` pin both handlers'
sources. Upstream issue: none filed (a cost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, cast

from faust.serializers import codecs
from faust.serializers.schemas import Schema
from faust.topics import Topic
from faust.transport import conductor as faust_conductor
from faust.transport.conductor import Conductor
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.producer import ProducerBuffer
from mode.utils.queues import FlowControlEvent

__all__ = [
    "CYTHON_HANDLER",
    "FAUST_BUILD_SHA256",
    "FAUST_DRAIN_SHA256",
    "FAUST_HANDLER_PYX_SHA256",
    "Resumed",
    "deliver_now_of",
    "guard_direct_handover",
    "guard_eager_delivery",
    "guard_raw_decode",
    "raw_bytes",
    "start_eagerly",
]

FAUST_DRAIN_SHA256 = "3e3742ba998ee65d8be5a4a4745a03eeab3e71969ce93b29065c54ae8fd13977"
"""SHA-256 of ``ast.unparse`` of Faust's ``Consumer._drain_messages``, the code copied here."""

CYTHON_HANDLER: Any = faust_conductor.ConductorHandler
"""Faust's compiled partition handler (``None`` without its Cython extension, or with
``NO_CYTHON`` set): the conductor's handler when present."""

FAUST_BUILD_SHA256 = "74a4dd8b889217ada0593677fd823f9c22169ad00d1ac78009820665d19e1765"
"""SHA-256 of ``ast.unparse`` of Faust's ``ConductorCompiler.build``, whose handler
``deliver_now_of`` reads and does the work of."""

FAUST_HANDLER_PYX_SHA256 = "dde1f974267881cf8c5f7e4fd2b114a2c6d754633a2aa9a2a2fc92f93e143dba"
"""SHA-256 of Faust's ``faust/transport/_cython/conductor.pyx``, the source of
``CYTHON_HANDLER``."""

_GUARDED = "_leadstream_eager_delivery"
_NOW = "_leadstream_deliver_now"
"""The attribute of a conductor holding, per partition, the handler it built and its
``deliver_now_of`` function."""
_EVENT_OF = "_leadstream_event_of"
"""The attribute of a ``guard_raw_decode`` decode holding its event maker (plain function)."""


class Resumed:
    """An awaitable that continues ``coro`` from the point where it first waited (``pending``,
    what it yielded), so a task (``asyncio.ensure_future``) can drive the rest of it."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation included: passed on to the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> Resumed | None:
    """Run ``coro`` until it first waits: ``None`` if it finished (an exception it raised is
    raised here), else what continues it."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    return Resumed(coro, pending)


async def _drain_messages(self: Any, fetcher: Any) -> None:  # noqa: PLR0912, PLR0915 - Faust's shape
    # Faust 0.15's Consumer._drain_messages; the changes are marked "eager" and "direct".
    callback = self.callback
    getmany = self.getmany
    # direct: the conductor's hand-over may be done by its handler's deliver_now
    conductor = self.app.topics
    direct = callback is conductor.on_message and not self.app.client_only
    handover_lock = conductor._tp_to_callback_lock
    handlers = conductor._tp_to_callback
    direct_by_tp = conductor.__dict__.setdefault(_NOW, {})
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set

    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    flag_consumer_fetching = CONSUMER_FETCHING
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for

    yield_every = 100
    num_since_yield = 0
    sleep = asyncio.sleep

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(flag_consumer_fetching)
            ait = getmany(timeout=1.0)

            # Sleeping because sometimes getmany is called in a loop
            # never releasing to the event loop
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await sleep(0)
                        num_since_yield = 0

                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        # We have a gap in income messages
                        if gap > 1 and r_offset:
                            acks_enabled = acks_enabled_for(message.topic)
                            if acks_enabled:
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None:  # noqa: SIM102 - as in Faust
                            if self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                        # direct: done here when Faust's hand-over would finish at once
                        built = (
                            direct_by_tp.get(tp)
                            if direct and not handover_lock.locked() and not handover_lock._waiters
                            else None
                        )
                        if (
                            built is None
                            or built[0] is not handlers.get(tp)
                            or not built[1](message)
                        ):
                            # eager: the hand-over runs here until it first waits; only one
                            # that waits races the suspension (and stop, crash) as in Faust
                            rest = start_eagerly(callback(message))
                            if rest is not None:
                                await self.wait_first(rest, self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    else:
                        self.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                            offset,
                            message.key,
                            message.value,
                        )
                unset_flag(flag_consumer_fetching)

    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            # we're already stopping so ignore
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(flag_consumer_fetching)


def guard_eager_delivery() -> None:
    """Install the eager fetch loop on Faust's ``Consumer`` (idempotent)."""
    if getattr(Consumer, _GUARDED, False):
        return
    Consumer._drain_messages = cast(Any, _drain_messages)
    setattr(Consumer, _GUARDED, True)


_RAW_GUARDED = "_leadstream_raw_decode"


def raw_bytes(schema: Any) -> bool:
    """Whether Faust's decode of ``schema`` gives every record's key and value unchanged: keys
    and values typed ``bytes``, read with Faust's own ``raw`` codec, by Faust's ``Schema``."""
    return (
        type(schema) is Schema
        and schema.key_type is bytes
        and schema.value_type is bytes
        and schema.key_serializer == "raw"
        and schema.value_serializer == "raw"
        and type(codecs.get_codec("raw")) is codecs.raw
    )


def guard_raw_decode() -> None:
    """Install the decode of bytes records on Faust's ``Topic`` (idempotent; topics made
    afterwards)."""
    if getattr(Topic, _RAW_GUARDED, False):
        return
    original = Topic._compile_decode

    def _compile_decode(self: Any) -> None:
        original(self)
        if not raw_bytes(self.schema):
            return
        app = self.app
        event = app.conf.Event  # read once: App.create_event reads it for every record

        def event_of(message: Any) -> Any:
            return event(app, message.key, message.value, message.headers, message)

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return event_of(message)

        setattr(decode, _EVENT_OF, event_of)
        self.decode = decode

    Topic._compile_decode = _compile_decode
    setattr(Topic, _RAW_GUARDED, True)


def deliver_now_of(handler: Any) -> Callable[[Any], bool] | None:
    """What does the work of a conductor's partition ``handler`` when that work would finish
    without waiting: a function that puts the record's event on the partition's one channel and
    returns True, or touches nothing and returns False (the record is then for ``handler``).
    ``handler`` is Faust's: its compiled ``ConductorHandler`` (``CYTHON_HANDLER``) or the
    closure of ``ConductorCompiler.build``. ``None`` for a handler of another shape."""
    if CYTHON_HANDLER is not None and type(handler) is CYTHON_HANDLER:
        channels = handler.channels
        acquire_flow_control = handler.acquire_flow_control
        wait_until_producer_ebb = handler.wait_until_producer_ebb
        on_pressure_high = handler.on_pressure_high
        on_pressure_drop = handler.on_pressure_drop
    else:
        code = getattr(handler, "__code__", None)
        closure = getattr(handler, "__closure__", None)
        if code is None or closure is None or code.co_name != "on_message":
            return None
        try:
            cells = dict(
                zip(code.co_freevars, (cell.cell_contents for cell in closure), strict=True)
            )
            channels = cells["channels"]
            acquire_flow_control = cells["acquire_flow_control"]
            wait_until_producer_ebb = cells["wait_until_producer_ebb"]
            on_pressure_high = cells["on_pressure_high"]
            on_pressure_drop = cells["on_pressure_drop"]
        except (KeyError, ValueError):  # another shape, or a cell not filled
            return None
    flow = getattr(acquire_flow_control, "__self__", None)
    buffer = getattr(wait_until_producer_ebb, "__self__", None)
    if (
        getattr(acquire_flow_control, "__func__", None) is not FlowControlEvent.acquire
        or getattr(wait_until_producer_ebb, "__func__", None) is not ProducerBuffer.wait_until_ebb
        or not isinstance(flow, FlowControlEvent)
        or not isinstance(buffer, ProducerBuffer)
    ):
        return None
    suspended = flow._suspend.is_set

    def deliver_now(message: Any) -> bool:
        # the handler's awaits that would wait: the flow suspended, the buffer over its limit
        if suspended() or buffer.size > buffer.max_messages or len(channels) != 1:
            return False
        for channel in channels:
            event_of = getattr(channel.decode, _EVENT_OF, None)
            queue = channel.queue
            if event_of is None or queue.full():
                return False
            message.refcount += 1  # message.incref(1)
            queue.put_nowait_enhanced(
                event_of(message),
                on_pressure_high=on_pressure_high,
                on_pressure_drop=on_pressure_drop,
            )
        return True

    return deliver_now


_HANDOVER_GUARDED = "_leadstream_direct_handover"


def guard_direct_handover() -> None:
    """Attach ``deliver_now_of`` to every partition handler Faust's conductor builds from now
    on (idempotent); ``guard_eager_delivery``'s fetch loop uses it."""
    if getattr(Conductor, _HANDOVER_GUARDED, False):
        return
    original = Conductor._build_handler

    def _build_handler(self: Any, tp: Any, channels: Any) -> Any:
        handler = original(self, tp, channels)
        direct = self.__dict__.setdefault(_NOW, {})
        now = deliver_now_of(handler)
        if now is None:
            direct.pop(tp, None)
        else:
            direct[tp] = (handler, now)
        return handler

    Conductor._build_handler = _build_handler
    setattr(Conductor, _HANDOVER_GUARDED, True)
