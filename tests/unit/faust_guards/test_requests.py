"""A produce request takes every batch waiting for its broker (stream.faust_guards.requests),
checked on aiokafka's own MessageAccumulator."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.structs import TopicPartition

from stream import faust_guards

DUE = TopicPartition("leads.internal.v1", 0)
LINGERING = TopicPartition("leads.scores.v1", 3)
ELSEWHERE = TopicPartition("leads.scores.v1", 4)


class Cluster:
    """Partition leaders: ``ELSEWHERE`` is on broker 2, the others on broker 1."""

    def leader_for_partition(self, tp: TopicPartition) -> int:
        return 2 if tp == ELSEWHERE else 1


async def _accumulator() -> MessageAccumulator:
    accumulator = MessageAccumulator(Cluster(), 16_384, 0, 30.0, linger_ms=5_000)
    for tp in (DUE, LINGERING, ELSEWHERE):
        await accumulator.add_message(tp, b"lead-1", b"{}", timeout=1.0)
    accumulator._batches[DUE][0]._ctime -= 10.0  # its linger ran out
    return accumulator


def _drained(drain: Any, accumulator: MessageAccumulator, **kwargs: Any) -> dict[int, set[Any]]:
    nodes, _ = drain(accumulator, **kwargs)
    return {node: set(batches) for node, batches in nodes.items()}


async def test_aiokafka_leaves_lingering_batches_of_a_broker_with_a_request_due() -> None:
    """Why the guard: aiokafka's drain takes the due batch alone."""
    faust_guards.install()
    aiokafka_drain = MessageAccumulator.drain_by_nodes.__wrapped__  # type: ignore[attr-defined]
    accumulator = await _accumulator()
    assert _drained(aiokafka_drain, accumulator, ignore_nodes=set()) == {1: {DUE}}
    await asyncio.sleep(0)


async def test_a_request_takes_every_batch_of_its_broker_once_one_is_due() -> None:
    faust_guards.install()
    accumulator = await _accumulator()
    # the lingering batch on the same broker goes too; broker 2's keeps its linger
    assert _drained(MessageAccumulator.drain_by_nodes, accumulator, ignore_nodes=set()) == {
        1: {DUE, LINGERING}
    }
    assert accumulator._batches[ELSEWHERE][0].remaining_linger()


async def test_a_broker_with_a_request_in_flight_or_muted_partitions_are_left_alone() -> None:
    faust_guards.install()
    accumulator = await _accumulator()
    drain = MessageAccumulator.drain_by_nodes
    assert _drained(drain, accumulator, ignore_nodes={1}) == {}
    assert accumulator._batches[LINGERING][0].remaining_linger()
    assert _drained(drain, accumulator, ignore_nodes=set(), muted_partitions={DUE}) == {}
    assert accumulator._batches[LINGERING][0].remaining_linger()
