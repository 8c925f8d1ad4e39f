"""What the trip through the internal topic costs the worker.

Loads the bench's simulated records into fresh topics on LEADSTREAM_KAFKA_BOOTSTRAP in one of
two ways and lets a pipeline worker (`leadstream worker`, RocksDB tables, as `leadstream bench`
runs it) process them:

- ``sources``: on the five source topics, as producers send them; the worker passes each event
  on to its owner's partition of ``leads.internal.v1`` and scores it from there (two trips);
- ``internal``: the same events already on ``leads.internal.v1``, keyed by their owner, as the
  worker itself would have passed them on (one trip: what a worker would cost if the source trip
  were free).

For each run it prints the worker's CPU seconds per event loaded and the events per second,
both from the group's first commit to the last record committed. Runs alternate between the
two ways (``--rounds``), so a drift of the machine's load shows in both.

    .venv/bin/python -m stream.bench.hop_cost                  # --events 40000 --rounds 2
    LEADSTREAM_PRODUCER_IDEMPOTENCE=false .venv/bin/python -m stream.bench.hop_cost --mode sources
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from schemas import codec
from schemas.errors import DecodeError
from stream.bench.cpu import cpu_seconds
from stream.bench.data import build_traffic, produce
from stream.bench.run import (
    committed,
    create_changelogs,
    delete_topics,
    end_offsets,
    pipeline_worker,
)
from stream.kafka import clients, topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings
from stream.simulate.traffic import Delivery

MODES = ("sources", "internal")


def _cpu(pid: int) -> float:
    used = cpu_seconds(pid)
    if used is None:
        raise RuntimeError(f"no CPU time for process {pid}")
    return used


def as_internal(records: list[Delivery]) -> list[Delivery]:
    """The records' events as the worker passes them on (malformed ones left out)."""
    now = datetime.now(UTC)
    passed = []
    for delivery in records:
        try:
            event = codec.decode(delivery.value, now=now, topic=delivery.topic)
        except DecodeError:
            continue
        owner = (event.lead_id or event.anonymous_id or "").encode()
        passed.append(Delivery(topics.INTERNAL.name, owner, codec.encode(event)))
    return passed


async def run(mode: str, events: int, limit_s: float) -> dict[str, float]:
    token = uuid.uuid4().hex[:8]
    settings = Settings().model_copy(
        update={"app_id": f"hop-{token}", "topic_prefix": f"hop{token}."}
    )
    await ensure_topics(settings)
    await create_changelogs(settings, ["leads", "identities"])
    records = list(build_traffic(events).copies(events))
    if mode == "internal":
        records = as_internal(records)
    loaded, _ = await produce(settings, records)
    names = [settings.topic(spec.name) for spec in (*topics.SOURCES, topics.INTERNAL)]
    work = Path(tempfile.mkdtemp(prefix="leadstream-hop-"))
    worker = pipeline_worker(settings, work / "data", work / "worker.log")
    worker.start()
    admin = await clients.admin(settings)
    try:
        deadline = time.monotonic() + limit_s
        first: tuple[float, float] | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            if not worker.alive() or worker.proc is None:
                raise RuntimeError(f"the worker exited (log: {work / 'worker.log'})")
            ends = await end_offsets(settings, names)
            done = await committed(admin, settings.app_id)
            progress = sum(min(done.get(tp, 0), end) for tp, end in ends.items())
            if first is None and progress > 0:
                first = (time.monotonic(), _cpu(worker.proc.pid))
            elif first is not None and progress >= sum(ends.values()):
                seconds = time.monotonic() - first[0]
                cpu = _cpu(worker.proc.pid) - first[1]
                return {
                    "events": loaded,
                    "seconds": seconds,
                    "events_per_s": loaded / seconds,
                    "cpu_us_per_event": cpu / loaded * 1e6,
                }
        raise RuntimeError(f"not drained within {limit_s:.0f} s")
    finally:
        worker.stop()
        await admin.close()
        await delete_topics(settings, [settings.topic_prefix, settings.app_id])
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    modes = MODES if args.mode == "both" else (args.mode,)
    for round_ in range(1, args.rounds + 1):
        for mode in modes:
            figures = asyncio.run(run(mode, args.events, args.timeout))
            print(
                f"round {round_} {mode:8} {figures['events']:,} events in "
                f"{figures['seconds']:.1f} s: {figures['events_per_s']:,.0f} events/s, "
                f"worker CPU {figures['cpu_us_per_event']:,.0f} µs per event",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
