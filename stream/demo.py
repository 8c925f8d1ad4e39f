"""The one-command demo: local Kafka and Redis, a worker, traffic, a live summary.

``leadstream demo`` (what ``make demo`` runs) starts the local broker and Redis unless
``LEADSTREAM_KAFKA_BOOTSTRAP`` / ``LEADSTREAM_REDIS_URL`` point at running ones, starts a
worker process, streams events for a handful of leads into the source topics and prints what
comes out of the worker as it happens. Ctrl-C (or ``--duration``) stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import codec
from schemas.events import EventBase, Traits
from schemas.examples import make_event
from schemas.outputs import ScoreUpdated, StageChanged
from schemas.topics import topic_for
from stream import devinfra, topics
from stream.admin import ensure_topics
from stream.settings import Settings

LEADS = [f"lead-{n:03d}" for n in range(1, 201)]
INDUSTRIES = ["software", "fintech", "retail", "education", "marketing"]
TITLES = ["VP Marketing", "Head of Growth", "Analyst", "Student", "CTO", "Office Manager"]
ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("page_viewed", {"path": "/blog", "url": "https://acme.example/blog"}),
    ("page_viewed", {"path": "/product", "url": "https://acme.example/product"}),
    ("page_viewed", {"path": "/pricing", "url": "https://acme.example/pricing"}),
    ("file_downloaded", {}),
    ("video_viewed", {}),
    ("webinar_attended", {}),
    ("email_opened", {}),
    ("email_clicked", {}),
    ("social_shared", {}),
    ("demo_requested", {}),
]
WEIGHTS = [30, 20, 6, 6, 8, 3, 20, 6, 4, 1]


def demo_profile(rng: random.Random, lead_id: str) -> EventBase:
    traits = Traits(
        email=f"{lead_id}@{rng.choice(['acmecorp.com', 'globex.io', 'gmail.com'])}",
        industry=rng.choice(INDUSTRIES),
        company_size=rng.choice([5, 40, 120, 900]),
        job_title=rng.choice(TITLES),
        age=rng.randint(22, 60),
    )
    return make_event(
        "profile_updated",
        event_id=f"demo-profile-{lead_id}",
        lead_id=lead_id,
        anonymous_id=None,
        occurred_at=datetime.now(UTC),
        traits=traits,
        source="leadstream-demo",
    )


def demo_event(rng: random.Random) -> EventBase:
    lead_id = rng.choice(LEADS)
    event_type, fields = rng.choices(ACTIONS, weights=WEIGHTS)[0]
    return make_event(
        event_type,
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        lead_id=lead_id,
        anonymous_id=None,
        occurred_at=datetime.now(UTC),
        source="leadstream-demo",
        **fields,
    )


async def _send(producer: AIOKafkaProducer, settings: Settings, event: EventBase) -> None:
    await producer.send(
        settings.topic(topic_for(event)), key=codec.event_key(event), value=codec.encode(event)
    )


def _show(topic: str, value: bytes, totals: dict[str, float], stages: dict[str, str]) -> int:
    """Track a score record, or print a stage change; returns the stage changes seen (0/1)."""
    if topic.endswith(topics.SCORES.name):
        score = codec.decode_score(value)
        if isinstance(score, ScoreUpdated) and score.model == "b2b":
            totals[score.lead_id] = score.total
            stages[score.lead_id] = score.stage.value
        return 0
    change = codec.decode_stage_change(value)
    if not isinstance(change, StageChanged) or change.from_stage is None:
        return 0
    print(
        f"  stage change  {change.lead_id} [{change.model}] "
        f"{change.from_stage.value} -> {change.to_stage.value}: {change.reason}"
    )
    return 1


async def _stream(settings: Settings, events_per_round: int, deadline: float | None) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.SCORES.name),
        settings.topic(topics.STAGE_CHANGES.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="latest",
        group_id=None,
    )
    store = aioredis.from_url(settings.redis_url.get_secret_value())
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    rng = random.Random(7)
    totals: dict[str, float] = {}
    stages: dict[str, str] = {}
    sent = received = changes = 0
    started = time.monotonic()
    try:
        await store.ping()
        print(f"Redis answering at {settings.redis_url.get_secret_value()}")
        print("Streaming events for 200 leads; Ctrl-C stops.\n")
        for lead_id in LEADS:
            await _send(producer, settings, demo_profile(rng, lead_id))
            sent += 1
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for _ in range(events_per_round):
                await _send(producer, settings, demo_event(rng))
                sent += 1
            await producer.flush()
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    if record.value is not None:
                        received += 1
                        changes += _show(record.topic, record.value, totals, stages)
            elapsed = time.monotonic() - started
            top = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
            print(
                f"[{elapsed:6.1f}s] sent {sent:6d} ({sent / elapsed:6.1f} ev/s)  "
                f"outputs {received:6d}  stage changes {changes:4d}  top b2b: "
                + ", ".join(f"{lead} {total:.0f} ({stages[lead]})" for lead, total in top)
            )
            await store.set("leadstream:demo:processed", received)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await consumer.stop()
        await producer.stop()
        await store.aclose()
    return received


def _worker(env: Mapping[str, str], data_dir: str, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--data-dir", data_dir],
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the demo stops it, after the traffic has stopped
        )


def run(*, duration: float | None, events: int) -> int:
    """Run the demo; returns a process exit code."""
    env = dict(os.environ)
    plan = devinfra.plan_infra(env, docker_reachable=False, for_tests=False)
    session = devinfra.start_local(plan, env, fresh=False)
    env.update(session.env)
    env.setdefault("LEADSTREAM_APP_ID", "leadstream-demo")
    env.setdefault("LEADSTREAM_WEB_ENABLED", "false")
    settings = Settings(
        kafka_bootstrap=env[devinfra.KAFKA_ENV],
        redis_url=env[devinfra.REDIS_ENV],
        topic_prefix=env.get("LEADSTREAM_TOPIC_PREFIX", ""),
    )
    asyncio.run(ensure_topics(settings))
    worker = None
    with tempfile.TemporaryDirectory(prefix="leadstream-demo-") as data_dir:
        try:
            log_path = (
                Path(env.get("LEADSTREAM_RUN_DIR", devinfra.REPO_DIR / ".run")) / "demo-worker.log"
            )
            worker = _worker(env, data_dir, log_path)
            print(f"Worker started (pid {worker.pid}); its log: {log_path}")
            deadline = None if duration is None else time.monotonic() + duration
            received = asyncio.run(_stream(settings, events, deadline))
            print(f"\nDemo stopped: the worker published {received} score and stage records.")
            return 0 if received > 0 else 1
        except KeyboardInterrupt:
            print("\nStopping the demo.")
            return 0
        finally:
            if worker is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            session.stop()
            devinfra.release_lock(env)
