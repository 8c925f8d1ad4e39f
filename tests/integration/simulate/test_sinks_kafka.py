"""The simulator's Kafka sink delivers every record, byte for byte and in order, to the broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from factories import make_settings

from schemas.topics import INBOUND_TOPICS
from stream.kafka.admin import ALL_TOPICS, ensure_topics
from stream.settings import Settings
from stream.simulate.sinks import send_to_kafka, wall_offsets
from stream.simulate.traffic import Delivery, SimConfig, generate

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[Settings]:
    settings = make_settings(kafka_bootstrap=kafka_bootstrap, topic_partitions=1)
    yield settings
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [settings.topic(s.name) for s in ALL_TOPICS if settings.topic(s.name) in existing]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


async def consume(settings: Settings, expected: int) -> dict[str, list[tuple[bytes | None, bytes]]]:
    """Every record of the inbound topics, per topic in offset order."""
    names = {settings.topic(t.name): t.name for t in INBOUND_TOPICS}
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    got: dict[str, list[tuple[bytes | None, bytes]]] = {name: [] for name in names.values()}
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=2_000)
            for tp, records in batch.items():
                got[names[tp.topic]] += [(r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return got


def by_topic(deliveries: list[Delivery]) -> dict[str, list[tuple[bytes | None, bytes]]]:
    out: dict[str, list[tuple[bytes | None, bytes]]] = {t.name: [] for t in INBOUND_TOPICS}
    for delivery in deliveries:
        out[delivery.topic].append((delivery.key, delivery.value))
    return out


async def test_every_delivery_reaches_the_broker_in_order(settings: Settings) -> None:
    sim = generate(SimConfig(seed=5, leads=16, malformed_rate=0.03))
    progress: list[int] = []
    sent = await send_to_kafka(sim.deliveries, settings, progress=progress.append)
    assert sent == len(sim.deliveries) == progress[-1]
    got = await consume(settings, sent)
    # One partition per topic: each topic holds its records in delivery order, duplicates and
    # malformed values included, byte for byte.
    assert got == by_topic(sim.deliveries)


async def test_paced_sending_takes_the_time_it_is_told(settings: Settings) -> None:
    sim = generate(SimConfig(seed=5, leads=2, duplicate_rate=0, malformed_rate=0))
    deliveries = sim.deliveries[:21]
    due = wall_offsets([0.0] * len(deliveries), rate=40)
    assert due is not None
    await ensure_topics(settings)
    started = time.monotonic()
    sent = await send_to_kafka(deliveries, settings, due=due, create_topics=False)
    assert sent == len(deliveries)
    assert time.monotonic() - started >= 0.5  # 21 records at 40/s: the last one after 0.5 s
    got = await consume(settings, len(deliveries))
    assert got == by_topic(deliveries)
