"""Soak: a bounded run at half the measured maximum load, lag and memory sampled.

The worker's maximum rate is measured first (after a warm-up round, bursts of a simulation's
deliveries sent as fast as they go, timed from the first send to the commit of the last record and
of everything it passed on through the internal topic, grown until one lasts twenty seconds); then
the same population's traffic is sent again and again (fresh event ids each round, so every event
is new) at half that rate for the soak duration (10 minutes in full mode, 2 in CI). The consumer
group's lag and the worker's resident memory are sampled every two seconds: the lag must stay
bounded (the second half never deeper than twice the first half or thirty seconds of traffic:
commits come every two seconds and the machine may be shared) and memory must grow less than 10%
after the warm-up (the first quarter of the run), highest sample after it against highest during
it: RSS rises and falls with RocksDB's memtables, and a leak raises the peaks.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from pathlib import Path

import pytest
import reliability_harness as h
from aiokafka import AIOKafkaProducer

from stream.kafka.admin import ensure_topics

pytestmark = pytest.mark.integration


async def _send_round(
    producer: AIOKafkaProducer, settings: object, deliveries: list, n: int, rate: float | None
) -> None:
    """One round of the deliveries with event ids made new (``r{n}-``), paced at `rate`/s."""
    began = time.monotonic()
    for i, delivery in enumerate(deliveries):
        value = delivery.value.replace(b'"event_id":"', f'"event_id":"r{n}-'.encode(), 1)
        await producer.send(settings.topic(delivery.topic), key=delivery.key, value=value)  # type: ignore[attr-defined]
        if rate is not None and i % 50 == 0:
            ahead = began + i / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)


async def test_half_the_max_load_keeps_lag_bounded_and_memory_flat(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    sim = h.scenario(seed=71, leads=h.SIZES.soak_leads)
    settings = h.pipeline_settings(kafka_bootstrap, unique, tmp_path)
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = h.start_worker(settings, log)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20)
    await producer.start()
    samples: list[tuple[float, int, int]] = []
    try:
        # 1. the maximum. A first round warms the worker up (joins the group, opens its store);
        # then bursts of fresh rounds, each timed from its first send to the commit of its last
        # record, grow until one lasts twenty seconds, so the two-second commit interval is a
        # small part of the measurement
        total = len(sim.deliveries)
        await _send_round(producer, settings, sim.deliveries, 0, None)
        await producer.flush()
        sent = total
        await _wait_handled(settings, sent, worker, log)
        rounds = 0
        copies = 1
        while True:
            began = time.monotonic()
            for _ in range(copies):
                rounds += 1
                await _send_round(producer, settings, sim.deliveries, rounds, None)
            await producer.flush()
            sent += copies * total
            await _wait_handled(settings, sent, worker, log)
            took = time.monotonic() - began
            if took >= 20:
                break
            copies = max(2 * copies, math.ceil(copies * 25 / max(took, 0.5)))
        max_rate = copies * total / took
        rate = max_rate / 2

        # 2. the soak at half of it, sampled every two seconds
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                lag = await h.group_lag(settings)
                samples.append((time.monotonic(), lag or 0, h.rss_bytes(worker.pid)))
                await asyncio.sleep(2)

        sampler = asyncio.create_task(sample())
        began = time.monotonic()
        soaked = 0
        while time.monotonic() - began < h.SIZES.soak_s:
            rounds += 1
            left = h.SIZES.soak_s - (time.monotonic() - began)
            part = sim.deliveries[: max(int(left * rate), 1)]
            await _send_round(producer, settings, part, rounds, rate)
            soaked += len(part)
        await producer.flush()
        stop.set()
        await sampler
        alive = worker.poll() is None
        drained = await _drained(settings)
    finally:
        await producer.stop()
        h.stop_worker(worker)
    soak = [s for s in samples if s[0] >= began]
    warm = [s for s in soak if s[0] < began + h.SIZES.soak_s / 4]
    after = [s for s in soak if s[0] >= began + h.SIZES.soak_s / 4]
    half = len(soak) // 2
    lag_first = max(s[1] for s in soak[:half])
    lag_second = max(s[1] for s in soak[half:])
    # Resident memory goes up and down with RocksDB's memtables (they fill, flush and are handed
    # back to the system: stream.worker.native_memory), so growth is peak against peak: the highest
    # RSS after the warm-up against the highest during it. (One sample at the end of the
    # warm-up as the base counted where in that cycle it fell, up to +17%, as growth.)
    rss_warm = max(s[2] for s in warm)
    rss_max = max(s[2] for s in after)
    growth = rss_max / rss_warm - 1
    quarters = [
        [
            s[2]
            for s in soak
            if began + q * h.SIZES.soak_s / 4 <= s[0] < began + (q + 1) * h.SIZES.soak_s / 4
        ]
        for q in range(4)
    ]
    result = h.Tally(
        "soak",
        events_in=sent + soaked,
        notes={
            "max_rate_per_s": round(max_rate),
            "soak_rate_per_s": round(rate),
            "soak_s": h.SIZES.soak_s,
            "lag_max_first_half": lag_first,
            "lag_max_second_half": lag_second,
            "rss_warmup_max_mb": round(rss_warm / 2**20, 1),
            "rss_max_mb": round(rss_max / 2**20, 1),
            "rss_growth_pct": round(100 * growth, 1),
            "rss_min_max_by_quarter_mb": [
                [round(min(q) / 2**20, 1), round(max(q) / 2**20, 1)] for q in quarters if q
            ],
            "samples": len(soak),
        },
    )
    h.record(result)
    assert alive, log.read_text()[-3000:]
    assert drained, "the lag did not come back to 0 after the soak"
    assert lag_second <= max(2 * lag_first, 30 * rate), (lag_first, lag_second)
    assert growth < 0.10, f"memory grew {100 * growth:.1f}% after the warm-up"


async def _wait_handled(
    settings: object, records: int, worker: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until the worker group has committed `records` source records and everything they
    passed on to the internal topic (where the events are scored)."""
    while (
        await h.committed(settings) < records  # type: ignore[arg-type]
        or await h.group_lag(settings)  # type: ignore[arg-type]
    ):
        assert worker.poll() is None, log.read_text()[-3000:]
        await asyncio.sleep(0.5)


async def _drained(settings: object, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await h.group_lag(settings) == 0:  # type: ignore[arg-type]
            return True
        await asyncio.sleep(1)
    return False
