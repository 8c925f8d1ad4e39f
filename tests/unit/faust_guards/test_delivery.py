"""The eager fetch loop and the decode of bytes records (stream.faust_guards.delivery), on
Faust's own consumer and topics."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import inspect
from typing import Any

import faust
import faust.transport.consumer as faust_consumer
import pytest
from aiokafka.structs import ConsumerRecord
from faust.serializers.schemas import Schema
from faust.transport.drivers import aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.faust_guards.delivery import (
    FAUST_DRAIN_SHA256,
    guard_eager_delivery,
    guard_raw_decode,
    raw_bytes,
    start_eagerly,
)

TOPIC = "delivered"
PART = TP(TOPIC, 0)
OFFSETS = (10, 11, 12)


def faust_source_of(owner: str, name: str) -> str:
    """``owner.name`` as Faust's module defines it (unchanged by a guard installed)."""
    tree = ast.parse(inspect.getsource(faust_consumer))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner)
    node = next(n for n in cls.body if getattr(n, "name", None) == name)
    return ast.unparse(node)


def test_the_copied_fetch_loop_is_fausts() -> None:
    """The guard is a copy of Faust's loop with one change: a new Faust must be looked at."""
    source = faust_source_of("Consumer", "_drain_messages")
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
