"""Batches taken straight from a stream's channel (stream.faust_guards.batches), on Faust's own
app, topic channel, stream, events, messages and consumer books; the events are put on the
channel's queue as Faust's conductor puts them."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import faust.events
import faust.streams
import faust.types.tuples
import pytest
from faust.events import Event
from faust.sensors import Sensor
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.faust_guards.batches import (
    FAUST_ACK_SHA256,
    FAUST_STREAM_SHA256,
    ack_events,
    take_batches,
)
from stream.faust_guards.patches import guard_skipped_acks, leave_unacknowledged

TOPIC = "batched"
PART = TP(TOPIC, 0)


class Source:
    """An app with ``TOPIC`` subscribed (acknowledging), the agent's stream over it, and the
    channel queue the conductor fills."""

    def __init__(self) -> None:
        self.app = faust.App("batches-test", broker="kafka://localhost:1", store="memory://")
        channel: Any = aiter(self.app.topic(TOPIC))  # what an agent's stream iterates
        self.app.topics._acking_topics.add(TOPIC)  # what the conductor does for a source topic
        self.stream: Any = self.app.stream(channel)
        self.queue = channel.queue
        self.consumer = self.app.consumer
        self.app.flow_control.resume()  # as after a partition assignment (it clears the queues)

    def put(self, offset: int, generation_id: int | None = None) -> Event:
        """Put the record at ``offset`` on the channel, as the conductor does."""
        generation = self.app.consumer_generation_id if generation_id is None else generation_id
        message = ConsumerMessage(
            TOPIC, 0, offset, 0.0, 0, None, b"k", b"%d" % offset, None, generation_id=generation
        )
        event = Event(self.app, b"k", b"%d" % offset, None, message)
        self.queue.put_nowait(event)
        return event


def offsets(batch: list[Any]) -> list[int]:
    return [event.message.offset for event in batch]


async def test_queued_events_come_in_one_batch_and_are_acknowledged_when_it_is_handed_back() -> (
    None
):
    source = Source()
    for offset in range(5):
        source.put(offset)
    batches = take_batches(source.stream, 100, 0.05)
    batch = await anext(batches)
    assert offsets(batch) == [0, 1, 2, 3, 4]
    # handed out: tracked and waiting in the consumer's books, not acknowledged
    assert all(event.message.tracked for event in batch)
    assert set(source.consumer._unacked_messages) == {event.message for event in batch}
    assert source.consumer._acked[PART] == []

    source.put(5)
    batch_2 = await anext(batches)  # handing the first back acknowledges it
    assert source.consumer._acked[PART] == [0, 1, 2, 3, 4]
    assert offsets(batch_2) == [5]
    await batches.aclose()
    assert source.consumer._acked[PART] == [0, 1, 2, 3, 4, 5]
    assert not source.consumer._unacked_messages


async def test_a_batch_holds_at_most_max_events() -> None:
    source = Source()
    for offset in range(7):
        source.put(offset)
    batches = take_batches(source.stream, 3, 0.05)
    sizes = [offsets(await anext(batches)) for _ in range(3)]
    await batches.aclose()
    assert sizes == [[0, 1, 2], [3, 4, 5], [6]]


async def test_events_arriving_within_the_period_join_the_batch_and_later_ones_do_not() -> None:
    source = Source()
    source.put(0)
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, source.put, 1)  # within the 0.3 s period
    loop.call_later(0.6, source.put, 2)  # after it
    batches = take_batches(source.stream, 100, 0.3)
    started = loop.time()
    assert offsets(await anext(batches)) == [0, 1]
    assert loop.time() - started >= 0.29  # held for the period, the queue being empty
    assert offsets(await anext(batches)) == [2]
    await batches.aclose()


async def test_an_event_of_an_earlier_generation_is_dropped_untracked() -> None:
    """Fetched before a rebalance: Faust's stream iterator skips it and does not track or
    acknowledge it, so it is read again from the committed offset."""
    source = Source()
    source.app.consumer_generation_id = 4
    stale = source.put(0, generation_id=3)
    source.put(1)
    batches = take_batches(source.stream, 100, 0.01)
    assert offsets(await anext(batches)) == [1]
    await batches.aclose()
    assert not stale.message.tracked
    assert source.consumer._acked[PART] == [1]


async def test_events_taken_while_the_flow_is_suspended_are_dropped() -> None:
    source = Source()
    source.put(0)
    source.app.flow_control.suspend()
    batches = take_batches(source.stream, 100, 0.01)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the one event was dropped: nothing to hand out
    source.app.flow_control.resume()
    source.put(1)
    assert offsets(await waiting) == [1]
    await batches.aclose()


async def test_an_error_thrown_into_the_channel_is_raised() -> None:
    source = Source()
    source.stream.channel._throw(RuntimeError("from upstream"))
    batches = take_batches(source.stream, 100, 0.01)
    with pytest.raises(RuntimeError, match="from upstream"):
        await anext(batches)


async def test_an_interrupted_batch_left_unacknowledged_is_not_acknowledged() -> None:
    guard_skipped_acks()
    source = Source()
    for offset in range(3):
        source.put(offset)
    batches = take_batches(source.stream, 100, 0.01)
    batch = await anext(batches)
    leave_unacknowledged(batch)  # what the worker does when a batch's handling is interrupted
    await batches.aclose()
    assert source.consumer._acked[PART] == []


async def test_the_stream_stopping_closes_the_batches_and_acknowledges_the_one_handed_out() -> None:
    source = Source()
    source.put(0)
    batches = take_batches(source.stream, 100, 0.01)
    assert offsets(await anext(batches)) == [0]
    await source.stream.on_stop()  # Faust closes the stream's generators
    assert source.consumer._acked[PART] == [0]
    with pytest.raises(StopAsyncIteration):
        await anext(batches)


def test_a_batch_of_no_events_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        take_batches(Source().stream, 0, 0.01)


@pytest.mark.parametrize("name", sorted(FAUST_STREAM_SHA256))
def test_the_faust_code_followed_is_unchanged(name: str, faust_sha256: Any) -> None:
    """What Faust's stream iterator does per event and how ``take_events`` batches: a new
    Faust must be looked at."""
    assert faust_sha256(faust.streams, "Stream", name) == FAUST_STREAM_SHA256[name]


async def test_the_batches_and_acknowledgements_are_those_of_fausts_take_events() -> None:
    """The same queued records (one of them stale) through Faust's ``take_events`` and through
    ``take_batches``: the same batches, the same offsets acknowledged after each."""

    async def run(take: Any) -> list[tuple[list[int], list[int]]]:
        source = Source()
        source.app.consumer_generation_id = 2
        for offset in range(8):
            source.put(offset, generation_id=1 if offset == 4 else 2)
        seen = []
        batches = take(source.stream)
        for _ in range(3):
            batch = await asyncio.wait_for(anext(batches), 5)
            seen.append((offsets(batch), list(source.consumer._acked[PART])))
        await batches.aclose()
        seen.append(([], list(source.consumer._acked[PART])))
        return seen

    faust_batches = await run(lambda stream: stream.take_events(3, 0.05))
    assert faust_batches == [
        ([0, 1, 2], []),
        ([3, 5, 6], [0, 1, 2]),
        ([7], [0, 1, 2, 3, 5, 6]),
        ([], [0, 1, 2, 3, 5, 6, 7]),
    ]
    assert await run(lambda stream: take_batches(stream, 3, 0.05)) == faust_batches


async def test_the_actor_cancelled_ends_the_batches_and_a_batch_not_handed_out_is_read_again() -> (
    None
):
    """Faust stops an agent's actor by throwing ``StopAsyncIteration`` into its channel
    (``faust.agents.actor.Actor.cancel``): the batches end, as Faust's stream iteration does,
    and the events taken for a batch not yet handed out are left untracked and out of the
    consumer's books (read again; a rebalance does not wait for them)."""
    source = Source()
    first = source.put(0)
    batches = take_batches(source.stream, 100, 5.0)
    pending = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0.05)  # event 0 taken, waiting for more within the period
    assert first.message.tracked
    source.stream.channel._throw(StopAsyncIteration())
    with pytest.raises(StopAsyncIteration):
        await pending
    assert not first.message.tracked
    assert not source.consumer._unacked_messages
    assert source.consumer._acked[PART] == []


async def test_the_actor_cancelled_while_the_queue_is_idle_ends_the_batches() -> None:
    source = Source()
    source.stream.channel._throw(StopAsyncIteration())  # no getter waiting: kept for the next
    batches = take_batches(source.stream, 100, 0.01)
    with pytest.raises(StopAsyncIteration):
        await anext(batches)


class Recording(Sensor):  # type: ignore[misc]
    """A sensor recording the stream events it is told of."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int]] = []

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        self.seen.append(("in", offset))
        return offset

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        self.seen.append(("out", state))


async def test_a_sensor_using_the_stream_hooks_is_told_of_every_event_and_gets_its_state() -> None:
    source = Source()
    sensor = Recording()
    source.app.sensors.add(sensor)
    for offset in range(2):
        source.put(offset)
    batches = take_batches(source.stream, 100, 0.01)
    await anext(batches)
    assert sensor.seen == [("in", 0), ("in", 1)]
    await batches.aclose()
    assert sensor.seen == [("in", 0), ("in", 1), ("out", 0), ("out", 1)]


async def test_the_stream_hooks_are_not_called_when_no_sensor_uses_them() -> None:
    source = Source()
    calls: list[int] = []
    source.stream._on_stream_event_in = lambda tp, offset, stream, event: calls.append(offset)
    source.put(0)
    batches = take_batches(source.stream, 100, 0.01)
    await anext(batches)
    await batches.aclose()
    assert calls == []
    source.app.sensors.add(Recording())
    source.put(1)
    batches = take_batches(source.stream, 100, 0.01)
    await anext(batches)
    await batches.aclose()
    assert calls == [1]


@pytest.mark.parametrize("name", sorted(FAUST_ACK_SHA256))
def test_the_faust_acknowledgement_followed_is_unchanged(name: str, faust_sha256: Any) -> None:
    owner, method = name.split(".")
    module = faust.events if owner == "Event" else faust.types.tuples
    assert faust_sha256(module, owner, method) == FAUST_ACK_SHA256[name]


async def test_events_acknowledged_together_are_acknowledged_as_one_by_one() -> None:
    """``ack_events`` against ``Event.ack`` on the same events: tracked, one held by a second
    channel (reference count 2), one acknowledged already, one never tracked (the skipped-ack
    guard refuses it), one below the committed offset, one of a topic without acks: the same
    results and the same consumer books."""
    guard_skipped_acks()

    def prepared() -> tuple[Source, list[Event]]:
        source = Source()
        source.consumer._committed_offset[PART] = 2
        events = [source.put(offset) for offset in range(8)]
        for event in events:
            source.queue.get_nowait()
            event.message.refcount = 1
            event.message.tracked = True
            source.consumer._unacked_messages.add(event.message)
        events[3].message.refcount = 2  # a second channel still holds it
        events[4].ack()  # acknowledged already
        events[5].message.tracked = False  # never handed to a stream
        other = ConsumerMessage("no-acks", 0, 9, 0.0, 0, None, b"k", b"9", None)
        other.refcount, other.tracked = 1, True
        events.append(Event(source.app, b"k", b"9", None, other))
        return source, events

    def books(source: Source) -> tuple[Any, ...]:
        consumer = source.consumer
        return (
            dict(consumer._acked),
            {tp: set(index) for tp, index in consumer._acked_index.items()},
            sorted(m.offset for m in consumer._unacked_messages),
            consumer._n_acked,
        )

    theirs_source, theirs_events = prepared()
    theirs = [event.ack() for event in theirs_events]
    ours_source, ours_events = prepared()
    ours = ack_events(ours_events, ours_source.consumer)
    assert ours == theirs
    assert theirs == [False, False, True, False, False, False, True, True, False]
    assert books(ours_source) == books(theirs_source)
    assert [(e.message.acked, e.message.refcount) for e in ours_events] == [
        (e.message.acked, e.message.refcount) for e in theirs_events
    ]
    # a second round: the one held by two channels is now final, the rest unchanged
    assert ack_events(ours_events, ours_source.consumer) == [event.ack() for event in theirs_events]
    assert books(ours_source) == books(theirs_source)
