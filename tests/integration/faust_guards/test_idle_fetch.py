"""A worker's consumer fetches in two modes (``patches.guard_idle_fetch``), on the real broker.

The aiokafka consumer Faust's driver builds for an app given fetch options is started on a
fresh topic, and every fetch request it sends is noted on its way to the broker (the request
itself, unchanged). After a fetch that brought no records the next one asks for the first
record or the idle wait; once a fetch brings records the next one batches again (64 KiB or
10 ms); a record produced while an idle fetch is out is read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.fetch import FetchRequest

from stream.faust_guards.patches import set_fetch_batching

pytestmark = pytest.mark.integration

BATCHING = (10, 64 * 1024)
IDLE = (200, 1)
"""(max wait ms, min bytes) of a batching fetch and of an idle one."""


class Sent(list[tuple[int, int]]):
    """(max wait ms, min bytes) of each fetch request sent, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()

    def note(self, request: FetchRequest) -> None:
        self.append((request._max_wait_ms, request._min_bytes))
        self.more.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(20):
            while len(self) < count:
                self.more.clear()
                await self.more.wait()


async def _consumer(kafka_bootstrap: str, unique: str, idle_wait_ms: int) -> tuple[Any, Sent]:
    app = faust.App(f"idle-{unique}", broker=f"kafka://{kafka_bootstrap}", store="memory://")
    set_fetch_batching(app, 64 * 1024, 10, idle_wait_ms)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    consumer._group_id = None  # assigned by hand below, no group
    consumer._enable_auto_commit = False
    await consumer.start()
    sent = Sent()
    send = consumer._client.send

    async def noting(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(request, FetchRequest):
            sent.note(request)
        return await send(node_id, request, *args, **kwargs)

    consumer._client.send = noting
    return consumer, sent


async def _topic(kafka_bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def test_an_idle_fetch_waits_for_the_first_record_and_records_bring_batching_back(
    kafka_bootstrap: str, unique: str
) -> None:
    name = f"idle-fetch-{unique}"
    await _topic(kafka_bootstrap, name)
    consumer, sent = await _consumer(kafka_bootstrap, unique, IDLE[0])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        await sent.until(3)  # the empty topic: fetches come back with nothing
        assert sent[0] == BATCHING
        assert set(sent[1:]) == {IDLE}
        idle_before = len(sent)
        await producer.send_and_wait(name, b"one", key=b"k")
        async with asyncio.timeout(20):
            got = await consumer.getmany(tp, timeout_ms=5000)
        assert [r.value for r in got[tp]] == [b"one"]
        # the fetch that brought it was an idle one; the next batches again
        await sent.until(idle_before + 1)
        after = sent[idle_before:]
        assert after[0] == BATCHING, sent
        await sent.until(idle_before + 2)
        assert sent[idle_before + 1] == IDLE  # which came back empty: idle again
    finally:
        await producer.stop()
        await consumer.stop()


async def test_without_an_idle_wait_every_fetch_batches(kafka_bootstrap: str, unique: str) -> None:
    name = f"batch-fetch-{unique}"
    await _topic(kafka_bootstrap, name)
    consumer, sent = await _consumer(kafka_bootstrap, unique, 0)
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        await sent.until(5)
        assert set(sent) == {BATCHING}
    finally:
        await consumer.stop()
