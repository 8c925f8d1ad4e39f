"""DirectSender asks Faust for its producer once (stream.faust_guards.sending)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from stream.faust_guards.sending import DirectSender


async def test_faust_maybe_start_producer_yields_to_the_loop_on_every_call() -> None:
    """Why the sender asks once: each call of the stampede-guarded method gives the event loop
    turns even when the producer is started (here: a producer made to look started)."""
    app = faust.App("sending-turns", broker="kafka://localhost:1")
    app.producer._started.set()  # stands for a started producer
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns
    assert await app.maybe_start_producer() is app.producer
    after = turns
    counter.cancel()
    assert after - before >= 3


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
