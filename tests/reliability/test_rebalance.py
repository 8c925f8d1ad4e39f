"""Rebalance: workers go 1 → 2 → 1 mid-stream, and three workers are replaced one by one; the
outputs still equal the offline reference.

A second worker joins after a third of the stream (partitions move to it) and leaves after the
second third (they move back). No stage change may be lost, and a record published twice, by the
worker that lost a partition and by the one that got it, is the same record with the same id.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
import reliability_harness as h

from stream.kafka.admin import ensure_topics
from stream.worker import processor

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


@pytest.mark.parametrize("standby", [0, 1])
async def test_a_rolling_replacement_of_three_workers_under_steady_load_loses_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path, standby: int
) -> None:
    """Three workers under a steady stream; each in turn stopped (SIGTERM) and started again on
    its data directory, as a rolling upgrade does. The outputs equal the reference; the longest
    event → stage change delay during the roll is recorded."""
    sim = h.scenario(seed=33, leads=h.SIZES.rebalance_leads)
    settings = h.pipeline_settings(kafka_bootstrap, unique, tmp_path, standby_replicas=standby)
    await ensure_topics(settings, tables=processor.TABLES)
    log = tmp_path / "workers.log"
    data = [tmp_path / f"data-{i}" for i in range(3)]
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    workers = [h.start_worker(settings.model_copy(update={"data_dir": d}), log) for d in data]
    sent_at: dict[str, float] = {}
    members: list[int] = []
    try:
        await _until_members(settings, 3)
        chunks = [sim.deliveries[i : i + 100] for i in range(0, len(sim.deliveries), 100)]
        gap = ROLL_S / len(chunks)

        async def steady() -> None:
            for chunk in chunks:
                for delivery in chunk:
                    event_id = _event_id(delivery.value)
                    if event_id is not None:
                        sent_at.setdefault(event_id, time.time())
                await h.pipeline.produce(settings, chunk)
                await asyncio.sleep(gap)

        sending = asyncio.create_task(steady())
        await asyncio.sleep(ROLL_S / 8)
        rolled_at = time.time()
        for i, data_dir in enumerate(data):
            h.stop_worker(workers[i])
            workers[i] = h.start_worker(settings.model_copy(update={"data_dir": data_dir}), log)
            await _until_members(settings, 3)
            members.append(await _members(settings))
        rolled_s = time.time() - rolled_at
        await sending
        await h.settle(settings, out, log)
    finally:
        for worker in workers:
            h.stop_worker(worker)
        stop.set()
        await reader
    delays = [
        arrived - sent_at[change.triggering_event_id]
        for change, arrived in zip(out.changes, out.change_arrivals, strict=True)
        if change.triggering_event_id in sent_at and arrived >= rolled_at
    ]
    result = await h.tally(
        f"rolling replacement of 3 workers, {standby} standby replicas", sim, settings, out
    )
    result.notes |= {
        "members_after_each": members,
        "roll_s": round(rolled_s, 1),
        "stage_changes_during_roll": len(delays),
        "longest_event_to_stage_change_s": round(max(delays), 2) if delays else None,
    }
    h.record(result)
    assert members == [3, 3, 3]
    assert delays, "no stage change was published during the roll"
    assert result.dead_lettered == h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)


ROLL_S = 40.0
"""How long the steady stream lasts; the roll happens within it."""


async def _until_members(settings: object, count: int) -> None:
    for _ in range(240):
        if await _members(settings) == count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the group never had {count} members")


def _event_id(value: bytes | None) -> str | None:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    event_id = doc.get("event_id") if isinstance(doc, dict) else None
    return event_id if isinstance(event_id, str) else None
