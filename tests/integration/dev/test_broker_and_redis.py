"""The real broker and the real Redis answer, and Leadstream's topics are created right."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from factories import make_settings

from stream.errors import ConfigurationError
from stream.kafka import topics
from stream.kafka.admin import ALL_TOPICS, describe_topics, ensure_topics

pytestmark = pytest.mark.integration


async def test_produce_and_consume_through_the_broker(kafka_bootstrap: str, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(topic, key=b"lead-1", value=f"event-{n}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 10:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no records within 10 s"
            values += [r.value for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    assert values == [f"event-{n}".encode() for n in range(10)]


async def test_ensure_topics_creates_them_with_partitions_and_cleanup_policy(
    kafka_bootstrap: str,
) -> None:
    settings = make_settings(kafka_bootstrap=kafka_bootstrap, topic_partitions=3)
    created = await ensure_topics(settings)
    assert sorted(created) == sorted(settings.topic(spec.name) for spec in ALL_TOPICS)
    assert await ensure_topics(settings) == []  # idempotent
    states = await describe_topics(settings)
    assert {state.partitions for state in states} == {3}

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, settings.topic(spec.name))
            for spec in (topics.SCORES, topics.CLICKSTREAM)
        ]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    policies = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in responses
        for resource in response.resources
    }
    assert policies == {
        settings.topic(topics.SCORES.name): "compact",
        settings.topic(topics.CLICKSTREAM.name): "delete",
    }


async def test_partition_mismatch_is_a_clear_error(kafka_bootstrap: str, unique: str) -> None:
    prefix = f"t{unique}."
    await ensure_topics(
        make_settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, topic_partitions=2)
    )
    with pytest.raises(ConfigurationError, match="expected 4"):
        await ensure_topics(
            make_settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, topic_partitions=4)
        )


async def test_redis_pipelined_writes_and_reads(redis_url: str, unique: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"test:{unique}"
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(f"{key}:lead", mapping={"fit": "12", "stage": "mql"})
            pipe.zadd(f"{key}:board", {"lead-1": 40.5, "lead-2": 12.0})
            await pipe.execute()
        assert await client.hgetall(f"{key}:lead") == {b"fit": b"12", b"stage": b"mql"}
        assert await client.zrevrange(f"{key}:board", 0, -1, withscores=True) == [
            (b"lead-1", 40.5),
            (b"lead-2", 12.0),
        ]
    finally:
        await client.delete(f"{key}:lead", f"{key}:board")
        await client.aclose()
