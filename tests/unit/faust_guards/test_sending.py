"""DirectSender asks Faust for its producer once (stream.faust_guards.sending)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from stream import faust_guards
from stream.faust_guards.sending import DirectSender


async def test_faust_maybe_start_producer_yields_to_the_loop_on_every_call() -> None:
    """Why the sender asks once: each call of the stampede-guarded method gives the event loop
    turns even when the producer is started (here: a producer made to look started)."""
    app = faust.App("sending-turns", broker="kafka://localhost:1")
    app.producer._started.set()  # stands for a started producer
    producer, turns = await _turns_taken(app.maybe_start_producer)
    assert producer is app.producer
    assert turns >= 3


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    async def send(self, *args: Any) -> None:
        self.sent.append(args)


class OneProducerApp:
    """An app whose ``maybe_start_producer`` counts its calls."""

    def __init__(self) -> None:
        self.producer = RecordingProducer()
        self.asked = 0

    async def maybe_start_producer(self) -> RecordingProducer:
        self.asked += 1
        return self.producer


async def test_the_sender_asks_for_the_producer_once_and_sends_every_record() -> None:
    app = OneProducerApp()
    sender = DirectSender(app)
    for i in range(3):
        await sender.send("topic", b"key-%d" % i, b"value", None if i < 2 else 5)
    assert app.asked == 1
    assert app.producer.sent == [
        ("topic", b"key-0", b"value", None, None, None),
        ("topic", b"key-1", b"value", None, None, None),
        ("topic", b"key-2", b"value", 5, None, None),
    ]


def test_the_sender_partitions_keys_as_kafkas_default_partitioner() -> None:
    """With the topics' partition count, a record without a partition gets the one aiokafka's
    own partitioner would choose for its key (checked against aiokafka's code)."""
    partitioner = DefaultPartitioner()
    for partitions in (1, 3, 8, 12):
        sender = DirectSender(OneProducerApp(), partitions=partitions)
        every = list(range(partitions))
        for i in range(2_000):
            key = f'{{"lead_id":"lead-{i:06d}-é","model":"engagement_v{i % 3}"}}'.encode()
            assert sender.partition_of(key) == partitioner(key, every, every)


async def test_the_sender_sends_a_keyed_record_to_its_partition() -> None:
    app = OneProducerApp()
    sender = DirectSender(app, partitions=8)
    partitioner = DefaultPartitioner()
    every = list(range(8))
    await sender.send("topic", b"lead-1", b"value")
    await sender.send("topic", b"lead-1", None, 3)  # a partition given is kept
    await sender.send("topic", None, b"value")  # no key: the producer chooses
    assert app.producer.sent == [
        ("topic", b"lead-1", b"value", partitioner(b"lead-1", every, every), None, None),
        ("topic", b"lead-1", None, 3, None, None),
        ("topic", None, b"value", None, None, None),
    ]


async def _turns_taken(call: Any) -> tuple[Any, int]:
    """What awaiting ``call()`` returns, and the turns the event loop took meanwhile."""
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns
    result = await call()
    after = turns
    counter.cancel()
    return result, after - before


async def test_a_topic_gets_a_started_producer_without_turns_of_the_loop() -> None:
    """Faust's ``Topic.publish_message`` (every table write's changelog message) asks for the
    producer per record; guarded, a started one is returned at once."""
    faust_guards.install()
    app = faust.App("sending-topic", broker="kafka://localhost:1")
    app.producer._started.set()  # stands for a started producer
    topic = app.topic("leads-changelog")
    producer, turns = await _turns_taken(topic._get_producer)
    assert producer is app.producer
    assert turns == 0


async def test_under_exactly_once_a_topic_still_gets_the_transaction_manager() -> None:
    faust_guards.install()
    app = faust.App(
        "sending-topic-eos", broker="kafka://localhost:1", processing_guarantee="exactly_once"
    )
    app.producer._started.set()
    app.in_worker = True
    topic = app.topic("leads-changelog")
    assert await topic._get_producer() is app.consumer.transactions


async def test_the_records_sent_are_reported_per_topic_once_per_turn_of_the_loop() -> None:
    app = OneProducerApp()
    reports: list[dict[str, int]] = []
    sender = DirectSender(app, on_sent=lambda counts: reports.append(dict(counts)))
    for topic in ("scores", "internal", "scores", "scores"):
        await sender.send(topic, b"key", b"value")
    assert reports == []  # nothing reported while the sending task still runs
    await asyncio.sleep(0)
    assert reports == [{"scores": 3, "internal": 1}]
    await sender.send("stage-changes", b"key", b"value")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert reports == [{"scores": 3, "internal": 1}, {"stage-changes": 1}]
    sender.report()  # nothing sent since: no empty report
    assert len(reports) == 2
