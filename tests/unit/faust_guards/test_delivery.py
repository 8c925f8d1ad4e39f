"""The eager fetch loop and the decode of bytes records (stream.faust_guards.delivery), on
Faust's own consumer and topics."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import faust
import faust.transport.conductor as faust_conductor
import faust.transport.consumer as faust_consumer
import pytest
from aiokafka.structs import ConsumerRecord
from faust.serializers.schemas import Schema
from faust.transport.drivers import aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.faust_guards.delivery import (
    CYTHON_HANDLER,
    FAUST_BUILD_SHA256,
    FAUST_DRAIN_SHA256,
    FAUST_HANDLER_PYX_SHA256,
    deliver_now_of,
    guard_direct_handover,
    guard_eager_delivery,
    guard_raw_decode,
    raw_bytes,
    start_eagerly,
)

TOPIC = "delivered"
PART = TP(TOPIC, 0)
OFFSETS = (10, 11, 12)


def test_the_copied_fetch_loop_is_fausts(faust_source: Any) -> None:
    """The guard is a copy of Faust's loop with its changes marked: a new Faust must be looked
    at."""
    source = faust_source(faust_consumer, "Consumer", "_drain_messages")
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_DRAIN_SHA256
    # the one call the copy changes is still there, as it was
    assert "await self.wait_first(callback(message), self.suspend_flow.wait())" in source


class Fetched(aiokafka.Consumer):  # type: ignore[misc]
    """Faust's Kafka consumer with the broker replaced: every fetch returns ``OFFSETS``."""

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        records = [
            ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"v", None, 1, 1, []) for offset in OFFSETS
        ]
        return {PART: records}, {PART}

    def highwater(self, tp: Any) -> int | None:
        return None


class Fetcher(faust.Service):  # type: ignore[misc]
    """What Faust's fetcher passes to the loop: a service the loop stops with."""


async def drain(callback: Any) -> tuple[Any, Fetcher]:
    """Run the guarded loop of a consumer of ``TOPIC`` that hands each record to ``callback``
    (which stops the fetcher when it has seen enough)."""
    guard_eager_delivery()
    app = faust.App("delivery-test", broker="kafka://localhost:1")
    app.topics.add(app.topic(TOPIC))
    await app.topics._update_indices()

    def ignore(*args: Any) -> None:
        return None

    consumer = Fetched(
        app.transport,
        callback=callback,
        on_partitions_revoked=ignore,
        on_partitions_assigned=ignore,
    )
    fetcher = Fetcher()
    return consumer, fetcher


async def test_records_are_handed_over_in_order_without_a_task_each() -> None:
    handed: list[tuple[int, Any]] = []
    fetcher: Fetcher

    async def callback(message: Any) -> None:
        handed.append((message.offset, asyncio.current_task()))
        if len(handed) == len(OFFSETS):
            fetcher._stopped.set()

    consumer, fetcher = await drain(callback)
    loop_task = asyncio.current_task()
    await consumer._drain_messages(fetcher)
    assert [offset for offset, _ in handed] == list(OFFSETS)
    assert {task for _, task in handed} == {loop_task}  # run in the loop's own task
    assert consumer._read_offset[PART] == OFFSETS[-1]


async def test_a_hand_over_that_waits_is_abandoned_when_the_flow_is_suspended() -> None:
    """As in Faust: a hand-over blocked (a full stream buffer) when a rebalance suspends the
    flow is cancelled, and the loop goes on with the next record."""
    handed: list[int] = []
    cancelled: list[int] = []
    never = asyncio.Event()
    fetcher: Fetcher
    consumer: Any

    async def callback(message: Any) -> None:
        if message.offset == OFFSETS[0]:
            asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
            try:
                await never.wait()  # blocked until the suspension abandons it
            except asyncio.CancelledError:
                cancelled.append(message.offset)
                raise
        handed.append(message.offset)
        if message.offset == OFFSETS[-1]:
            fetcher._stopped.set()

    consumer, fetcher = await drain(callback)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert cancelled == [OFFSETS[0]]
    assert handed == list(OFFSETS[1:])


async def test_a_hand_over_that_waits_and_then_finishes_is_driven_to_its_end() -> None:
    handed: list[int] = []
    fetcher: Fetcher

    async def callback(message: Any) -> int:
        await asyncio.sleep(0.001)  # waits, then finishes: the rest runs in wait_first's task
        handed.append(message.offset)
        if len(handed) == len(OFFSETS):
            fetcher._stopped.set()
        return message.offset

    consumer, fetcher = await drain(callback)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert handed == list(OFFSETS)


async def test_an_error_in_a_hand_over_stops_the_loop_as_in_faust() -> None:
    async def callback(message: Any) -> None:
        raise ValueError(f"bad {message.offset}")

    consumer, fetcher = await drain(callback)
    with pytest.raises(ValueError, match="bad 10"):
        await consumer._drain_messages(fetcher)


async def test_start_eagerly_returns_the_value_or_what_continues() -> None:
    async def done() -> int:
        return 1

    assert start_eagerly(done()) is None

    async def waits(event: asyncio.Event) -> str:
        await event.wait()
        return "finished"

    event = asyncio.Event()
    rest = start_eagerly(waits(event))
    assert rest is not None
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    event.set()
    assert await task == "finished"


RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def consumer_message(key: bytes | None, value: bytes | None, headers: Any) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 3, 41, 1.5, 0, headers, key, value, None)


@pytest.mark.parametrize(
    ("key", "value", "headers"),
    [
        (b"lead-1", b'{"type": "page_view"}', [("trace", b"1")]),
        (None, b"v", None),
        (b"k", None, []),
        (b"", b"", (("a", b"b"), ("c", b""))),
        (b"\xff\xfe", b"\x00\x80", None),  # not UTF-8: bytes are bytes
    ],
)
async def test_a_bytes_topics_decode_gives_the_event_fausts_decode_gives(
    key: bytes | None, value: bytes | None, headers: Any
) -> None:
    app = faust.App("raw-decode-test", broker="kafka://localhost:1")
    fausts = Schema(**RAW).compile(app)  # Faust's own decode of such a topic
    guard_raw_decode()
    topic = app.topic(TOPIC, **RAW)
    assert raw_bytes(topic.schema)
    assert topic.decode.__qualname__.startswith("guard_raw_decode")
    message = consumer_message(key, value, headers)
    theirs = await fausts(message, propagate=True)
    ours = await topic.decode(message, propagate=True)
    assert type(ours) is type(theirs) is app.conf.Event
    assert (ours.key, ours.value, ours.headers, ours.message, ours.app) == (
        theirs.key,
        theirs.value,
        theirs.headers,
        theirs.message,
        theirs.app,
    )
    assert type(ours.key) is type(theirs.key)
    assert type(ours.value) is type(theirs.value)
    # a clone (what an agent iterates) gets it too
    assert topic.clone(is_iterator=True).decode.__qualname__.startswith("guard_raw_decode")


@pytest.mark.parametrize(
    "options",
    [
        {},  # Faust's defaults: json values, models allowed
        {**RAW, "value_type": str},
        {**RAW, "key_serializer": "json"},
        {"key_type": bytes, "value_type": bytes},  # serialisers from the app's defaults
    ],
)
def test_any_other_topic_keeps_fausts_decode(options: dict[str, Any]) -> None:
    guard_raw_decode()
    app = faust.App("raw-decode-other", broker="kafka://localhost:1")
    topic = app.topic(TOPIC, **options)
    assert not raw_bytes(topic.schema)
    assert topic.decode.__qualname__ == "Schema.compile.<locals>.decode"


# ------------------------------------------------------------------ the direct hand-over


def test_the_handler_read_is_fausts(faust_sha256: Any) -> None:
    """``deliver_now_of`` does the work of the handler Faust 0.15 builds: a new Faust must be
    looked at."""
    assert faust_sha256(faust_conductor, "ConductorCompiler", "build") == FAUST_BUILD_SHA256
    pyx = Path(faust_conductor.__file__).parent / "_cython" / "conductor.pyx"
    assert hashlib.sha256(pyx.read_bytes()).hexdigest() == FAUST_HANDLER_PYX_SHA256
    # the worker's handler is the compiled one (its source pinned above)
    assert CYTHON_HANDLER is not None and faust_conductor.ConductorHandler is CYTHON_HANDLER


@pytest.fixture(params=["cython", "python"])
def compiled(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Faust's compiled handler, or its Python closure (Faust without its Cython extension)."""
    if request.param == "python":
        monkeypatch.setattr(faust_conductor, "ConductorHandler", None)
    return str(request.param)


class Conducted:
    """An app whose conductor has built its handler of ``PART`` for an agent's channel over
    ``TOPIC`` (``options``: the topic's), the flow running as after an assignment."""

    def __init__(self, **options: Any) -> None:
        guard_raw_decode()
        guard_direct_handover()
        self.app = faust.App("handover-test", broker="kafka://localhost:1", store="memory://")
        self.channel: Any = aiter(self.app.topic(TOPIC, **options))  # registers the clone
        self.queue = self.channel.queue

    async def assign(self) -> Conducted:
        await self.app.topics.on_partitions_assigned({PART})
        self.app.flow_control.resume()
        self.handler = self.app.topics._tp_to_callback[PART]
        built, self.now = self.app.topics._leadstream_deliver_now.get(PART, (None, None))
        assert built is self.handler
        return self

    def queued(self) -> list[Any]:
        return list(self.queue._queue)


def part_message(offset: int, key: bytes | None = b"k", headers: Any = None) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 0, offset, 1.5, 0, headers, key, b"%d" % offset, None)


def described(event: Any) -> tuple[Any, ...]:
    return (type(event), event.app, event.key, event.value, event.headers, event.message)


@pytest.mark.parametrize(
    ("key", "headers"), [(b"lead-1", [("trace", b"1")]), (None, None), (b"", (("a", b""),))]
)
async def test_the_direct_hand_over_queues_what_fausts_handler_queues(
    key: bytes | None, headers: Any, compiled: str
) -> None:
    fausts, ours = await Conducted(**RAW).assign(), await Conducted(**RAW).assign()
    assert ours.now is not None
    theirs_message, our_message = part_message(7, key, headers), part_message(7, key, headers)
    await fausts.handler(theirs_message)
    assert ours.now(our_message) is True
    (theirs,), (event,) = fausts.queued(), ours.queued()
    assert described(event)[2:5] == described(theirs)[2:5]
    assert described(event)[0] is type(theirs)
    assert event.app is ours.app and event.message is our_message
    assert our_message.refcount == theirs_message.refcount == 1


async def test_a_queue_under_pressure_pauses_its_partition_as_fausts_handler_does(
    compiled: str,
) -> None:
    fausts, ours = await Conducted(**RAW).assign(), await Conducted(**RAW).assign()
    high = ours.queue.pressure_high_size
    for offset in range(high + 2):
        await fausts.handler(part_message(offset))
        assert ours.now(part_message(offset)) is True
    assert len(ours.queued()) == len(fausts.queued()) == high + 2
    # the handler's own pressure-drop callback, once; the partition taken out of the fetches
    (pending,) = ours.queue._pending_pressure_drop_callbacks
    (their_pending,) = fausts.queue._pending_pressure_drop_callbacks
    assert pending == pressure_drop(ours.handler)
    assert their_pending == pressure_drop(fausts.handler)
    assert ours.app.consumer._buffered_partitions == fausts.app.consumer._buffered_partitions
    assert ours.app.consumer._buffered_partitions == {PART}


def pressure_drop(handler: Any) -> Any:
    """The handler's pressure-drop callback (an attribute of the compiled one, a cell of the
    closure)."""
    if hasattr(handler, "on_pressure_drop"):
        return handler.on_pressure_drop
    return handler.__closure__[handler.__code__.co_freevars.index("on_pressure_drop")].cell_contents


async def test_nothing_is_done_directly_when_faust_would_wait_or_decide(compiled: str) -> None:
    """Each case Faust's handler would wait in (flow suspended, producer buffer over its limit,
    queue full) or handle otherwise (two channels, a topic not of raw bytes): the record is
    left untouched for Faust's handler."""
    suspended = await Conducted(**RAW).assign()
    suspended.app.flow_control.suspend()
    over = await Conducted(**RAW).assign()
    over.app.producer.buffer.pending._queue.extend(
        [None] * (over.app.producer.buffer.max_messages + 1)
    )
    full = await Conducted(**RAW).assign()
    full.queue._maxsize = 1
    full.queue.put_nowait(None)
    assert full.queue.full()
    decoded = await Conducted().assign()  # Faust's defaults: json values
    cases = [suspended, over, full, decoded]
    for conducted in cases:
        assert conducted.now is not None
        message = part_message(1)
        before = conducted.queued()
        assert conducted.now(message) is False
        assert conducted.queued() == before
        assert message.refcount == 0
        assert conducted.app.consumer._buffered_partitions == set()

    two = Conducted(**RAW)
    aiter(two.app.topic(TOPIC, **RAW))  # a second agent on the topic
    await two.assign()
    assert two.now is not None
    message = part_message(1)
    assert two.now(message) is False
    assert message.refcount == 0


async def test_a_handler_of_another_shape_gets_no_direct_hand_over() -> None:
    async def handler(message: Any) -> None:
        return None

    assert deliver_now_of(handler) is None
    assert deliver_now_of(object()) is None


class FetchedOnce(Fetched):
    """``Fetched`` that stops its fetcher once it has returned its records."""

    fetcher: Fetcher

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        self.fetcher._stopped.set()
        return await super()._wait_next_records(timeout)


async def conducted_drain(conducted: Conducted) -> tuple[Any, Fetcher]:
    """The guarded fetch loop of ``conducted``'s app, handing records to its conductor."""
    guard_eager_delivery()

    def ignore(*args: Any) -> None:
        return None

    consumer = FetchedOnce(
        conducted.app.transport,
        callback=conducted.app.topics.on_message,
        on_partitions_revoked=ignore,
        on_partitions_assigned=ignore,
    )
    consumer.fetcher = Fetcher()
    return consumer, consumer.fetcher


async def test_the_fetch_loop_hands_records_over_directly(compiled: str) -> None:
    conducted = await Conducted(**RAW).assign()
    delivered: list[int] = []
    assert conducted.now is not None
    now = conducted.now

    def counted(message: Any) -> bool:
        done = now(message)
        if done:
            delivered.append(message.offset)
        return done

    conducted.app.topics._leadstream_deliver_now[PART] = (conducted.handler, counted)
    consumer, fetcher = await conducted_drain(conducted)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert [event.message.offset for event in conducted.queued()] == list(OFFSETS)
    assert delivered == list(OFFSETS)  # none through Faust's handler
    assert consumer._read_offset[PART] == OFFSETS[-1]


async def test_a_handler_replaced_since_is_not_bypassed() -> None:
    """A handler in the conductor's map that is not the one the function was made for (the map
    changed by other means) gets the record."""
    conducted = await Conducted(**RAW).assign()
    calls: list[int] = []

    async def other(message: Any) -> None:
        calls.append(message.offset)

    conducted.app.topics._tp_to_callback[PART] = other
    consumer, fetcher = await conducted_drain(conducted)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 5)
    assert calls == list(OFFSETS)
    assert conducted.queued() == []


async def test_the_fetch_loop_waits_for_the_conductors_lock_as_faust_does() -> None:
    """While the conductor's lock is held (its handlers being rebuilt), records wait for it."""
    conducted = await Conducted(**RAW).assign()
    consumer, fetcher = await conducted_drain(conducted)
    lock = conducted.app.topics._tp_to_callback_lock
    await lock.acquire()
    draining = asyncio.ensure_future(consumer._drain_messages(fetcher))
    await asyncio.sleep(0.05)
    assert conducted.queued() == []
    lock.release()
    await asyncio.wait_for(draining, 5)
    assert [event.message.offset for event in conducted.queued()] == list(OFFSETS)
