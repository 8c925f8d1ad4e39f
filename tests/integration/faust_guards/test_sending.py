"""Records sent straight to Faust's producer (stream.faust_guards.sending), on the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.faust_guards.sending import DirectSender
from stream.faust_guards.write_order import WriteOrder

pytestmark = pytest.mark.integration

PARTITIONS = 4
KEYS = [f"lead-{i}".encode() for i in range(12)]


async def _create(kafka_bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def _read(kafka_bootstrap: str, name: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_records_land_where_faust_would_put_them_and_writes_wait_for_them(
    kafka_bootstrap: str, unique: str
) -> None:
    direct, through_faust = f"direct-{unique}", f"faust-{unique}"
    await _create(kafka_bootstrap, direct, through_faust)
    app = faust.App(f"sending-{unique}", broker=f"kafka://{kafka_bootstrap}", store="memory://")
    order = WriteOrder()
    sender = DirectSender(app, order)
    written: list[int] = []
    try:
        deliveries = []
        for i, key in enumerate(KEYS):
            deliveries.append(await sender.send(direct, key, b"value-%d" % i))
            # not delivered yet (no await since the record was queued): the write is held
            order.write(lambda i=i: written.append(i))
            assert i not in written and order.held >= 1
        metadata = [await delivery for delivery in deliveries]
        await order.drain()
        assert written == list(range(len(KEYS)))
        # Faust's own send path, for the same keys
        topic = app.topic(through_faust, key_type=bytes, value_type=bytes)
        topic.key_serializer = topic.value_serializer = "raw"
        expected = [await (await topic.send(key=key, value=b"v")) for key in KEYS]
        assert [m.partition for m in metadata] == [m.partition for m in expected]
        assert len({m.partition for m in metadata}) > 1  # the keys spread over partitions
        # an explicit partition wins, and a value may be None (a tombstone)
        explicit = await (await sender.send(direct, b"probe", None, 3))
        assert explicit.partition == 3
    finally:
        await app.producer.stop()
    records = await _read(kafka_bootstrap, direct, len(KEYS) + 1)
    got = {(r.key, r.value, r.partition) for r in records}
    assert got == {
        *((key, b"value-%d" % i, metadata[i].partition) for i, key in enumerate(KEYS)),
        (b"probe", None, 3),
    }
