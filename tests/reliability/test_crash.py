"""Crash: the worker is killed with SIGKILL at random points of a stream and restarted.

Afterwards the final lead states equal the offline reference computed by the pure core from the
same events (nothing lost, nothing counted twice), every expected stage change was published, and
a record published twice (at-least-once redelivery after a kill) is the same record, same id. The
account records too: every lead's final contribution to its account is the reference's, and the
account scores and stage changes are the core's for the member updates the accounts received.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from pathlib import Path

import pytest
import reliability_harness as h

from stream.kafka.admin import ensure_topics

pytestmark = pytest.mark.integration


async def test_kill_9_at_random_points_loses_and_doubles_nothing(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    sim = h.scenario(seed=21, leads=h.SIZES.crash_leads)
    settings = h.pipeline_settings(kafka_bootstrap, unique, tmp_path)
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    rng = random.Random(unique)
    # kill points: shares of the deliveries the worker has committed
    points = sorted(rng.uniform(0.05, 0.9) for _ in range(h.SIZES.crash_kills))
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    worker: subprocess.Popen[bytes] = h.start_worker(settings, log)
    kills: list[dict[str, float]] = []
    try:
        producer = asyncio.create_task(h.pipeline.produce(settings, sim.deliveries))
        total = len(sim.deliveries)
        for point in points:
            while (done := await h.committed(settings)) < point * total:
                assert worker.poll() is None, log.read_text()[-3000:]
                await asyncio.sleep(0.05 + rng.random() * 0.3)
            await asyncio.sleep(rng.random())  # anywhere between two commits
            worker.kill()  # SIGKILL: no shutdown, no commit, no flush
            worker.wait()
            kills.append({"committed_share": round(done / total, 3)})
            worker = h.start_worker(settings, log)
        await producer
        await h.settle(settings, out, log)
    finally:
        h.stop_worker(worker)
        stop.set()
        await reader
    result = await h.tally("crash (kill -9)", sim, settings, out)
    result.notes["kills"] = kills
    h.record(result)
    assert len(kills) == h.SIZES.crash_kills
    # a restart after a kill restores the tables from their changelogs
    # (stream.faust_guards.local_stores); a worker killed again before it opened its stores leaves
    # none to remove
    assert 1 <= log.read_text().count("did not stop cleanly: its") <= len(kills)
    assert result.dead_lettered == h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)
    await h.check_accounts(sim, settings)
