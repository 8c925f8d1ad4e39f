"""Guards around faust-streaming: the producer-buffer flush and the commit reckoning."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from stream.faust_guards.patches import guard_buffer_flush, guard_commit_offsets


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


# ----------------------------------------------------------------------------- commit offsets


def _books(acked: list[int], gaps: list[tuple[int, int]], committed: int | None) -> Any:
    """What Faust's commit reckoning reads of a consumer, for one partition ``tp``."""
    from collections import defaultdict

    from intervaltree import IntervalTree

    tree = IntervalTree()
    for begin, end in gaps:
        tree.addi(begin, end)
    return SimpleNamespace(
        _acked=defaultdict(list, {"tp": list(acked)}),
        _acked_index=defaultdict(set, {"tp": set(acked)}),
        _gap=defaultdict(IntervalTree, {"tp": tree}),
        _committed_offset=defaultdict(lambda: None, {"tp": committed}),
    )


def _new_offset(books: Any) -> int | None:
    from faust.transport.consumer import Consumer

    guard_commit_offsets()
    result: int | None = Consumer._new_offset(books, "tp")
    return result


def test_a_gap_over_acknowledged_offsets_does_not_break_the_run() -> None:
    # offsets 12-14 were skipped by the reader and later handled and acknowledged anyway
    books = _books(list(range(10, 20)), [(12, 15)], committed=10)
    assert _new_offset(books) == 20  # unguarded: 13 (12-14 listed twice)
    assert books._acked["tp"] == [] and not books._gap["tp"]


def test_a_gap_past_the_highest_acknowledged_offset_is_taken_whole() -> None:
    books = _books([10, 11, 15], [(12, 20)], committed=10)
    assert _new_offset(books) == 20  # unguarded: 16 (15 twice; 19 left in the gaps)
    assert not books._gap["tp"]


def test_offsets_already_committed_are_dropped() -> None:
    books = _books([50, 51, 100, 101], [], committed=100)
    assert _new_offset(books) == 102  # unguarded: 52, below the committed offset
    assert books._acked_index["tp"] == set()


def test_a_missing_offset_still_holds_the_commit() -> None:
    books = _books([10, 11, 13], [], committed=10)
    assert _new_offset(books) == 12
    assert books._acked["tp"] == [13]
