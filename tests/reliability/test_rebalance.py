"""Rebalance: workers go 1 → 2 → 1 mid-stream; the outputs still equal the offline reference.

A second worker joins after a third of the stream (partitions move to it) and leaves after the
second third (they move back). No stage change may be lost, and a record published twice, by the
worker that lost a partition and by the one that got it, is the same record with the same id.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import reliability_harness as h

from stream.kafka.admin import ensure_topics

pytestmark = pytest.mark.integration


async def _members(settings: object) -> int:
    return int(await h.pipeline.group_members(settings))


async def test_workers_one_two_one_mid_stream_change_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    sim = h.scenario(seed=31, leads=h.SIZES.rebalance_leads)
    settings = h.pipeline_settings(kafka_bootstrap, unique, tmp_path)
    await ensure_topics(settings)
    log = tmp_path / "workers.log"
    third = len(sim.deliveries) // 3
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    first = h.start_worker(settings, log)
    second = None
    members: list[int] = []
    try:
        await h.pipeline.produce(settings, sim.deliveries[:third])
        second_settings = settings.model_copy(update={"data_dir": tmp_path / "data-2"})
        second = h.start_worker(second_settings, log)
        await h.pipeline.produce(settings, sim.deliveries[third : 2 * third])
        for _ in range(120):  # the second worker is a member before it leaves again
            if await _members(settings) == 2:
                break
            await asyncio.sleep(0.5)
        members.append(await _members(settings))
        h.stop_worker(second)
        second = None
        await h.pipeline.produce(settings, sim.deliveries[2 * third :])
        await h.settle(settings, out, log)
        members.append(await _members(settings))
    finally:
        h.stop_worker(first)
        if second is not None:
            h.stop_worker(second)
        stop.set()
        await reader
    result = await h.tally("rebalance 1 → 2 → 1", sim, settings, out)
    result.notes["members"] = members
    h.record(result)
    assert members == [2, 1], "the group did not go 1 → 2 → 1"
    assert result.dead_lettered == h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)
