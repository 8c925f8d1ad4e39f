"""Clients made from the settings talk to the real broker: a round trip, and batches in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic

from stream.kafka import clients
from stream.kafka.clients import Record
from stream.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(kafka_bootstrap: str, unique: str) -> Settings:
    return Settings(kafka_bootstrap=kafka_bootstrap, app_id=f"clients{unique}")


@pytest.fixture
async def topic(settings: Settings, unique: str) -> AsyncIterator[str]:
    """A fresh topic of one partition (one order for every record)."""
    name = f"clients{unique}"
    async with clients.admin(settings) as admin:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    yield name
    async with clients.admin(settings) as admin:
        await admin.delete_topics([name])


async def read(consumer: AIOKafkaConsumer, expected: int) -> list[tuple[bytes | None, bytes]]:
    got: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            got += [(r.key, r.value) for r in records]
    return got


async def test_a_record_goes_round_trip(settings: Settings, topic: str) -> None:
    async with clients.producer(settings, acks="all", enable_idempotence=True) as producer:
        delivered = await producer.send_and_wait(topic, key=b"lead-1", value=b"hello")
    assert delivered.topic == topic and delivered.offset == 0
    async with clients.consumer(
        settings, topic, role="reader", group_id=None, auto_offset_reset="earliest"
    ) as consumer:
        assert await read(consumer, 1) == [(b"lead-1", b"hello")]


async def test_send_batch_delivers_every_record_in_order(settings: Settings, topic: str) -> None:
    count = 2 * clients.SEND_WINDOW + 123  # crosses two windows of awaited deliveries
    records: list[Record] = [
        (topic, f"lead-{n % 7}".encode(), f"record {n}".encode()) for n in range(count)
    ]
    reported: list[int] = []
    async with clients.producer(settings, acks="all", linger_ms=5) as producer:
        sent = await clients.send_batch(producer, records, progress=reported.append)
    assert sent == count
    assert reported[-1] == count  # the last report comes when all are delivered
    async with clients.consumer(settings, group_id=None, auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        got = await read(consumer, count)
    assert got == [(key, value) for _, key, value in records]


async def test_send_batch_takes_records_made_as_they_go(settings: Settings, topic: str) -> None:
    async def paced() -> AsyncIterator[Record]:
        for n in range(20):
            await asyncio.sleep(0.001)
            yield topic, None, f"paced {n}".encode()

    async with clients.producer(settings) as producer:
        assert await clients.send_batch(producer, paced(), window=3) == 20
    async with clients.consumer(
        settings, topic, group_id=None, auto_offset_reset="earliest"
    ) as consumer:
        assert await read(consumer, 20) == [(None, f"paced {n}".encode()) for n in range(20)]
