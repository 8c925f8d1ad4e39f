"""Batches of events taken straight from a stream's channel: Faust's ``take_events`` without
its per-event trip through the stream iterator.

``Stream.take_events(max_, within)`` fills its buffer from a background task that iterates the
stream one event at a time: for every event a turn of the event loop (the iterator's
``sleep(0)``), an awaited ``queue.get``, the buffering processor run as a coroutine inside a
tracing block, the iterator's bookkeeping, and after the batch an awaited ``Stream.ack``. On this
project's bench machine that is about a third of the guarded batched agent's CPU per record.

``take_batches(stream, max_, within_s)`` hands out the same batches from the agent's own task:
it takes the events the conductor has put on the stream's channel queue, all that are there at
once (``get_nowait``), and waits only when the queue is empty. Each event gets what Faust's
stream iterator gives it (``faust._cython.streams.StreamIterator``, ``Stream._py_aiter``):

- an event fetched before the last rebalance (its ``generation_id`` is not the consumer's), or
  taken while the flow is suspended, is dropped, neither tracked nor acknowledged, so it is read
  again from the committed offset;
- an event of an acknowledging topic is tracked (``Message.tracked``, the consumer's unacked
  set, the sensors' ``on_message_in``), so the rebalance waits for it (``stream_wait_empty``);
- the sensors' ``on_stream_event_in`` and, at acknowledgement, ``on_stream_event_out`` and
  ``on_message_out`` (each only when a sensor of the app, at the start of the batches, does
  something with it: the worker's quiet monitor and its own sensor do not);
- an error thrown into the channel is raised, and the end of the channel (the stream stopping)
  ends the batches; the events of a batch not handed out then are read again.

As in ``take_events``, every event of a batch is acknowledged when the batch is handed back,
including when its handling raised or was cancelled (``patches.leave_unacknowledged`` marks a
batch to be read again instead), a batch holds at most ``max_`` events, and one is handed out
at the latest ``within_s`` after the previous one was handed back, when it has any event. It
differs in one way: once the period is over, the first event to arrive is handed out with those
queued behind it at once, where ``take_events`` waits for the next tick of its period (up to
``within_s`` more). Table writes made while a batch is handled need ``tables.writing_for``, as
with ``take_events``. ``FAUST_STREAM_SHA256`` pins the Faust code this follows. Upstream issue:
none filed (a cost, not a defect).

A batch's events are acknowledged together (``ack_events``): what ``Event.ack`` does for each
(``Message.ack``: its reference count down by one and, at zero, its final acknowledgement, the
consumer's books), under Faust's acknowledgement lock taken once for the batch instead of twice
per event, and without the two calls around it. ``FAUST_ACK_SHA256`` pins that code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from faust.types import EventT
from faust.types.tuples import ack_lock

from stream.faust_guards.sensors import hooks_idle

__all__ = ["FAUST_ACK_SHA256", "FAUST_STREAM_SHA256", "ack_events", "take_batches"]

FAUST_STREAM_SHA256 = {
    "_py_aiter": "a2fd9c17e8371c82c1d2fa7298afa83cbfbe88963249634102010ab60f4ac157",
    "take_events": "fdfabe98ab1143a794c277bdfbd40a431fe9097246e41356e8019c8e4bb7dac7",
}
"""SHA-256 of ``ast.unparse`` of Faust 0.15's ``Stream._py_aiter`` (what the stream iterator
does for each event, held level with its Cython twin) and ``Stream.take_events`` (the batches),
the code this module follows: a Faust upgrade fails ``tests/unit/faust_guards/test_batches.py``
until it is checked again."""

FAUST_ACK_SHA256 = {
    "Event.ack": "d0259001780e16e6288cebfdf453bc83554efb45fc7b2533f1876d5eaa5615c3",
    "Message.ack": "fa0c25acc04e9f19c77d5318c8b737bf6b6984b8ac6f9a711c80ff3469d05ead",
    "Message.decref": "a1c850e1bbb72a20eaab2b93507471d62797ec5391834c4c2733ce03937b0c1d",
}
"""SHA-256 of ``ast.unparse`` of Faust 0.15's ``Event.ack``, ``Message.ack`` and
``Message.decref``: what ``ack_events`` does for each event."""


def ack_events(events: list[Any], consumer: Any) -> list[bool]:
    """Acknowledge ``events`` in order, each as ``Event.ack`` does (``consumer``: their app's),
    under Faust's acknowledgement lock taken once; what ``Event.ack`` returns for each (True:
    its message's final acknowledgement, the consumer's books updated)."""
    lasts: list[bool] = []
    with ack_lock:
        for event in events:
            message = event.message
            if message.acked:
                lasts.append(False)
                continue
            refcount = message.refcount = max(message.refcount - 1, 0)  # Message.decref
            lasts.append(False if refcount else message.on_final_ack(consumer))
    return lasts


def take_batches(stream: Any, max_: int, within_s: float) -> AsyncIterator[list[Any]]:
    """Batches of ``stream``'s events: at most ``max_`` each, handed out at the latest
    ``within_s`` seconds after the previous batch was handed back (see the module). The
    generator is closed with the stream, as ``take_events``'s is."""
    if max_ < 1:
        raise ValueError("a batch holds at least one event")
    batches = _take_batches(stream, max_, within_s)
    stream._active_agens.add(batches)
    return batches


async def _take_batches(  # noqa: PLR0915 - its locals kept local for speed
    stream: Any, max_: int, within_s: float
) -> AsyncGenerator[list[Any], None]:
    await stream.maybe_start()
    app = stream.app
    channel = stream.channel
    queue = channel.queue
    errors = queue._errors
    quick_get = queue.get_nowait
    slow_get = channel.__anext__
    is_empty = queue.empty
    flow_active = app.flow_control.is_active
    consumer = app.consumer
    add_unacked = consumer._unacked_messages.add
    discard_unacked = consumer._unacked_messages.discard
    acking_topics = app.topics._acking_topics
    on_message_in = stream._on_message_in
    on_stream_event_in = stream._on_stream_event_in
    on_stream_event_out = stream._on_stream_event_out
    on_message_out = stream._on_message_out
    clock = asyncio.get_running_loop().time
    # skipped where no sensor does anything with them (the worker's): two calls per event
    stream_hooks = not hooks_idle(app, "on_stream_event_in", "on_stream_event_out")
    message_out = not hooks_idle(app, "on_message_out")
    events: list[Any] = []
    states: list[Any] = []

    def admit(value: Any) -> None:
        if not isinstance(value, EventT):
            raise TypeError(f"take_batches takes a stream of events, got {value!r}")
        message = value.message
        if not flow_active() or message.generation_id != app.consumer_generation_id:
            return  # fetched before the rebalance: read again from the committed offset
        tp = message.tp
        offset = message.offset
        if message.topic in acking_topics and not message.tracked:
            message.tracked = True
            add_unacked(message)
            on_message_in(tp, offset, message)
        states.append(on_stream_event_in(tp, offset, stream, value) if stream_hooks else None)
        events.append(value)

    def release() -> None:
        # a batch that will not be handed out: read again, and not waited for by a rebalance
        for event in events:
            event.message.tracked = False
            discard_unacked(event.message)
        events.clear()
        states.clear()

    async def fill() -> None:
        # take events until the batch is full, or the queue is empty and the period over
        deadline = clock() + within_s
        while len(events) < max_:
            if errors:
                raise errors.popleft()
            if not is_empty():
                admit(quick_get())
                continue
            if events:
                remaining = deadline - clock()
                if remaining <= 0:
                    return
                try:
                    value = await asyncio.wait_for(slow_get(), remaining)
                except TimeoutError:
                    return
            else:
                value = await slow_get()
            admit(value)

    try:
        while not stream.should_stop:
            try:
                await fill()
            except StopAsyncIteration:  # the channel ends (the stream stops), as in Faust
                release()
                return
            except BaseException:
                release()
                raise
            try:
                yield list(events)
            finally:
                lasts = ack_events(events, consumer)
                if stream_hooks or message_out:
                    for event, state, last in zip(events, states, lasts, strict=True):
                        message = event.message
                        if stream_hooks:
                            on_stream_event_out(message.tp, message.offset, stream, event, state)
                        if last and message_out:
                            on_message_out(message.tp, message.offset, message)
                events.clear()
                states.clear()
    finally:
        stream._channel_stop_iteration(channel)
