"""The producer-buffer guard: a flush returns only once every buffered message is handed over."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from stream.faust_fixes import guard_buffer_flush


class _SlowChannel:
    """Stands in for a topic: handing a message to the client takes 0.3 s (a busy machine)."""

    def __init__(self) -> None:
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(0.3)
        self.published.append(fut.message.value)


async def test_flush_waits_until_the_buffer_is_empty() -> None:
    guard_buffer_flush()
    channel = _SlowChannel()
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.start()
    try:
        for value in range(3):
            buffer.put(SimpleNamespace(message=SimpleNamespace(channel=channel, value=value)))  # type: ignore[arg-type]
        await buffer.flush()
        # unguarded, the flush gives up after 0.1 s without a sent message: nothing sent yet
        assert channel.published == [0, 1, 2]
        assert buffer.size == 0
    finally:
        await buffer.stop()
