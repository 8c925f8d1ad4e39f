"""Outages: the broker restarts mid-stream; Redis goes away for a while.

Each test runs its own broker or Redis (``deploy/local/*.sh`` with a private run directory and
free ports), so stopping it disturbs nothing else. The broker test checks that the worker picks
up again after the broker's return and that nothing is lost (the offline-reference equality);
the Redis test that scoring goes on while Redis is down and that the read model catches up
after its return. How long each took is measured and recorded (RELIABILITY.md holds the figures
against the targets: 30 s to resume, 10 s to converge); the waits here are only deadlines.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import reliability_harness as h

from stream.kafka.admin import ensure_topics
from stream.readmodel.model import ReadModel

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A broker or Redis of this test's own, driven by its deploy/local script."""

    def __init__(self, name: str, tmp: Path, **env: str) -> None:
        self.script = h.REPO / f"deploy/local/{name}.sh"
        self.env = {**os.environ, "LEADSTREAM_RUN_DIR": str(tmp / f"run-{name}"), **env}

    def run(self, action: str, *args: str) -> None:
        done = subprocess.run(
            ["bash", str(self.script), action, *args],
            env=self.env,
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port, ctrl = _free_port(), _free_port()
    kafka = Service(
        "kafka",
        tmp_path,
        LEADSTREAM_LOCAL_KAFKA_PORT=str(port),
        LEADSTREAM_LOCAL_KAFKA_CTRL_PORT=str(ctrl),
        LEADSTREAM_KAFKA_HEAP="512m",
    )
    kafka.run("start", "--fresh")
    try:
        yield kafka, f"127.0.0.1:{port}"
    finally:
        kafka.run("stop")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port = _free_port()
    server = Service("redis", tmp_path, LEADSTREAM_LOCAL_REDIS_PORT=str(port))
    server.run("start")
    try:
        yield server, f"redis://127.0.0.1:{port}/0"
    finally:
        server.run("stop")


async def _until(check: Any, *, timeout: float, what: str) -> float:
    """Seconds until `check()` is true (fails after `timeout`: a deadline, not a target)."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout, f"{what} within {timeout}s"
        await asyncio.sleep(0.25)
    return time.monotonic() - began


async def test_worker_resumes_after_a_broker_restart_and_loses_nothing(
    own_kafka: tuple[Service, str], unique: str, tmp_path: Path
) -> None:
    kafka, bootstrap = own_kafka
    sim = h.scenario(seed=51, leads=h.SIZES.broker_leads)
    settings = h.pipeline_settings(bootstrap, unique, tmp_path)
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    half = len(sim.deliveries) // 2
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    worker = h.start_worker(settings, log)
    try:
        await h.pipeline.produce(settings, sim.deliveries[:half])

        async def started() -> bool:
            return await h.committed(settings) > half // 4

        await _until(started, timeout=300, what="the worker committed a quarter")
        before = await h.committed(settings)
        kafka.run("stop")
        await asyncio.sleep(h.SIZES.broker_down_s)
        kafka.run("start")
        back = time.monotonic()
        await h.pipeline.produce(settings, sim.deliveries[half:])

        async def resumed() -> bool:
            try:
                return await h.committed(settings) > before
            except Exception:  # the broker's coordinator may still be loading
                return False

        resume_s = (
            time.monotonic() - back + await _until(resumed, timeout=300, what="the worker resumed")
        )
        await h.settle(settings, out, log)
        alive = worker.poll() is None
    finally:
        h.stop_worker(worker)
        stop.set()
        await reader
    result = await h.tally("broker restart", sim, settings, out)
    result.notes |= {"broker_down_s": h.SIZES.broker_down_s, "resumed_after_s": round(resume_s, 1)}
    h.record(result)
    assert alive, "the worker exited during the broker's restart:\n" + log.read_text()[-3000:]
    assert result.dead_lettered == h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)


async def test_scoring_goes_on_through_a_redis_outage_and_the_read_model_converges(
    own_redis: tuple[Service, str], worker_launcher: Any, tmp_path: Path
) -> None:
    server, url = own_redis
    worker = worker_launcher(url)
    models = tmp_path / "models.yaml"
    models.write_text(h.pipeline.model_text())
    worker.env["LEADSTREAM_MODELS_PATH"] = str(models)
    worker.env["LEADSTREAM_TIMER_INTERVAL_S"] = "3600"
    settings = worker.settings.model_copy(update={"models_path": models, "redis_url": url})
    await ensure_topics(settings)
    sim = h.scenario(seed=61, leads=h.SIZES.redis_leads)
    third = len(sim.deliveries) // 3
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    worker.start()
    read_model = ReadModel(redis.asyncio.Redis.from_url(url), prefix=_prefix(settings))
    try:
        await h.pipeline.produce(settings, sim.deliveries[:third])
        server.run("stop")
        down = time.monotonic()
        scored_before = len(out.scores)
        await h.pipeline.produce(settings, sim.deliveries[third:])
        await h.settle(settings, out, worker.log)  # scoring needs no Redis
        await asyncio.sleep(max(h.SIZES.redis_down_s - (time.monotonic() - down), 0))
        scored_during = len(out.scores) - scored_before
        latest = h.pipeline.latest_scores(out.scores)
        server.run("start")
        back = time.monotonic()

        async def converged() -> bool:
            try:
                return await _matches(read_model, latest)
            except Exception:  # redis' ConnectionError while it starts
                return False

        converge_s = (
            time.monotonic()
            - back
            + await _until(converged, timeout=300, what="the read model converged")
        )
        alive = worker.proc is not None and worker.proc.poll() is None
    finally:
        stop.set()
        await reader
        await read_model.close()
    result = await h.tally("Redis outage", sim, settings, out)
    result.notes |= {
        "redis_down_s": round(back - down, 1),
        "scores_published_while_down": scored_during,
        "read_model_converged_after_s": round(converge_s, 1),
    }
    h.record(result)
    assert alive, "the worker exited during the Redis outage"
    assert scored_during > 0, "nothing was scored while Redis was down"
    await h.check_reference(sim, settings, out)


def _prefix(settings: Any) -> str:
    from stream.readmodel.model import prefix_for

    return prefix_for(settings)


async def _matches(read_model: ReadModel, latest: dict[tuple[str, str], Any]) -> bool:
    """The read model holds every lead's latest score (same revision, same total)."""
    for (lead, model), score in latest.items():
        row = await read_model.score(model, lead)
        if row is None or int(row["revision"]) != score.revision:
            return False
        if abs(float(row["total"]) - score.total) > 1e-6:
            return False
    return True
