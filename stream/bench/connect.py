"""`leadstream bench connect`: stage changes delivered per second to a local webhook receiver.

A backlog of stage changes is loaded into a fresh stage-changes topic; a receiver process
(`stream.bench.receiver`) answers every POST after a fixed delay (50 ms by default); a webhook
connector (the delivery core in this process) delivers the backlog from the beginning. The
figures: changes delivered per second from the first delivery to the last, calls and requests
made, the receiver's count of distinct ids, and the connector process's CPU time per change.
The topics are deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas import codec
from schemas.outputs import ScoreSnapshot, StageChanged
from schemas.stages import Stage
from stream.connect.core import Connector, DeliveryPolicy, Report
from stream.connect.webhook import WebhookDestination, make_endpoint
from stream.kafka import clients, topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings

__all__ = [
    "ConnectBenchConfig",
    "Delivery",
    "bench_topics",
    "cpu_seconds",
    "deliver_backlog",
    "free_port",
    "get_json",
    "produce_changes",
    "run",
    "sample_changes",
    "serving",
    "table",
]

PATH: tuple[Stage, ...] = (
    Stage.SUBSCRIBER,
    Stage.LEAD,
    Stage.MQL,
    Stage.SQL,
    Stage.OPPORTUNITY,
    Stage.CUSTOMER,
)
"""The stages a sample lead goes through, in order (then round again)."""
BENCH_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""The signing secret of the local receiver (which does not check it)."""


def sample_changes(
    count: int,
    leads: int,
    *,
    start: datetime | None = None,
    prefix: str = "lead",
    domain: str | None = None,
) -> list[StageChanged]:
    """`count` stage changes spread over `leads` leads, each lead walking `PATH` in order, one
    second apart per lead (so each lead's changes have distinct, increasing times and ids).
    Lead ids are ``{prefix}-{n}``, or the address ``{prefix}-{n}@{domain}`` given a domain."""
    t0 = start or datetime.now(UTC)
    at = f"@{domain}" if domain else ""
    changes = []
    for n in range(count):
        lead, step = n % leads, n // leads
        changes.append(
            StageChanged.build(
                lead_id=f"{prefix}-{lead}{at}",
                model="default",
                model_version="bench",
                from_stage=PATH[(step - 1) % len(PATH)] if step else None,
                to_stage=PATH[step % len(PATH)],
                reason=f"step {step}",
                triggering_event_id=f"evt-{lead}-{step}",
                score=ScoreSnapshot(
                    fit=10.0, engagement=float(step), total=10.0 + step, grade="B2"
                ),
                occurred_at=t0 + timedelta(seconds=step),
            )
        )
    return changes


async def produce_changes(settings: Settings, records: Sequence[Any]) -> None:
    """Write stage changes (or any records with a `lead_id`) to the stage-changes topic, keyed
    by lead, in order."""
    topic = settings.topic(topics.STAGE_CHANGES.name)
    async with clients.producer(settings, role="bench", acks="all", linger_ms=5) as producer:
        await clients.send_batch(
            producer,
            ((topic, r.lead_id.encode(), codec.encode(r)) for r in records),
        )


@dataclass(frozen=True)
class ConnectBenchConfig:
    changes: int = 20_000
    leads: int = 5_000
    delay_ms: float = 50.0
    concurrency: int = 32
    max_in_flight: int = 5_000

    @classmethod
    def quick_mode(cls) -> ConnectBenchConfig:
        return cls(changes=4_000, leads=2_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310  # a local http URL
        return orjson.loads(answer.read())


@contextlib.asynccontextmanager
async def serving(
    argv: Sequence[str], ready_url: str, *, env: Mapping[str, str] | None = None
) -> AsyncIterator[None]:
    """Run `argv` (a local server) as a process of its own until the block ends; wait until
    `ready_url` answers first."""
    process = await asyncio.create_subprocess_exec(*argv, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{argv[2]} exited with status {process.returncode}")
            try:
                await asyncio.to_thread(get_json, ready_url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[2]} did not answer at {ready_url}") from None
                await asyncio.sleep(0.1)
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)


@contextlib.asynccontextmanager
async def bench_topics(base: Settings, name: str) -> AsyncIterator[Settings]:
    """Settings with a fresh app id and topic prefix, their stage-changes and dead-letter topics
    created; the topics are deleted when the block ends."""
    run_id = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={"app_id": f"bench-{name}-{run_id}", "topic_prefix": f"bench-{name}-{run_id}."}
    )
    specs = [topics.STAGE_CHANGES, topics.CONNECTOR_DEAD_LETTERS]
    await ensure_topics(settings, specs)
    try:
        yield settings
    finally:
        with contextlib.suppress(Exception):
            async with clients.admin(settings, request_timeout_ms=15000) as admin:
                await admin.delete_topics([settings.topic(s.name) for s in specs])


@dataclass(frozen=True)
class Delivery:
    """A connector's run over a backlog, timed from its first delivery to its last settled
    change (`time.monotonic()`), and the CPU time the process spent meanwhile."""

    report: Report
    first_delivered: float
    last_done: float
    cpu_s: float

    @property
    def seconds(self) -> float:
        return self.last_done - self.first_delivered


async def deliver_backlog(connector: Connector, count: int) -> Delivery:
    """Run `connector` until `count` changes are delivered or dead-lettered, then stop it."""
    task = asyncio.create_task(connector.run())
    cpu0 = cpu_seconds()
    first: float | None = None
    report = connector.report
    while report.delivered + report.dead_lettered < count:
        if task.done():
            await task
            raise RuntimeError("the connector stopped early")
        if first is None and report.delivered:
            first = time.monotonic()
        await asyncio.sleep(0.01)
    last = time.monotonic()
    cpu = cpu_seconds() - cpu0
    connector.stop()
    await task
    return Delivery(report, first or last, last, cpu)


async def run(
    config: ConnectBenchConfig, base: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """Load the backlog, deliver it, return the figures."""
    port = free_port()
    receiver = [sys.executable, "-m", "stream.bench.receiver", "--port", str(port)]
    receiver += ["--delay-ms", str(config.delay_ms)]
    async with (
        bench_topics(base, "connect") as settings,
        serving(receiver, f"http://127.0.0.1:{port}/stats"),
    ):
        log(f"loading {config.changes:,} stage changes over {config.leads:,} leads")
        await produce_changes(settings, sample_changes(config.changes, config.leads))
        destination = WebhookDestination(
            [make_endpoint(f"http://127.0.0.1:{port}/hooks", BENCH_SECRET)],
        )
        policy = replace(
            DeliveryPolicy.from_settings(settings),
            concurrency=config.concurrency,
            max_in_flight=config.max_in_flight,
            rate_per_s=1e9,
            burst=1_000_000,
        )
        try:
            done = await deliver_backlog(Connector(settings, destination, policy), config.changes)
        finally:
            await destination.aclose()
        stats = await asyncio.to_thread(get_json, f"http://127.0.0.1:{port}/stats")
        report, seconds = done.report, done.seconds
        return {
            "changes": config.changes,
            "leads": config.leads,
            "receiver_delay_ms": config.delay_ms,
            "concurrency": config.concurrency,
            "max_batch": destination.max_batch,
            "delivered": report.delivered,
            "dead_lettered": report.dead_lettered,
            "retried": report.retried,
            "calls": report.calls,
            "seconds": round(seconds, 3),
            "delivered_per_s": round(report.delivered / seconds, 1) if seconds else None,
            "receiver_requests": stats["requests"],
            "receiver_distinct_ids": stats["distinct"],
            "connector_cpu_us_per_change": round(1e6 * done.cpu_s / max(report.delivered, 1), 1),
        }


def cpu_seconds() -> float:
    """CPU time of this process so far (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in results.items()]
    lines.append(f"\n(cpu count: {os.cpu_count()})")
    return "\n".join(lines)
