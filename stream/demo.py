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

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream import devinfra, topics
from stream.admin import ensure_topics
from stream.settings import Settings

LEADS = [f"lead-{n:03d}" for n in range(1, 21)]
EVENT_TYPES = {
    topics.CLICKSTREAM: ["page_viewed", "cta_clicked", "file_downloaded"],
    topics.EMAIL: ["email_opened", "email_clicked"],
    topics.SOCIAL: ["social_liked", "social_shared"],
}


def demo_event(rng: random.Random) -> tuple[topics.TopicSpec, str, bytes]:
    spec = rng.choice(list(EVENT_TYPES))
    lead_id = rng.choice(LEADS)
    body = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "type": rng.choice(EVENT_TYPES[spec]),
        "lead_id": lead_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "leadstream-demo",
    }
    return spec, lead_id, orjson.dumps(body)


async def _stream(settings: Settings, events_per_round: int, deadline: float | None) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.ACTIVITY_COUNTS.name),
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
    latest: dict[str, int] = {}
    sent = received = 0
    started = time.monotonic()
    try:
        await store.ping()
        print(f"Redis answering at {settings.redis_url.get_secret_value()}")
        print("Streaming events; Ctrl-C stops.\n")
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            for _ in range(events_per_round):
                spec, lead_id, body = demo_event(rng)
                await producer.send(settings.topic(spec.name), key=lead_id.encode(), value=body)
                sent += 1
            await producer.flush()
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    payload = orjson.loads(record.value)
                    latest[payload["lead_id"]] = payload["events"]
                    received += 1
            await store.set("leadstream:demo:processed", received)
            elapsed = time.monotonic() - started
            top = sorted(latest.items(), key=lambda kv: -kv[1])[:5]
            print(
                f"[{elapsed:6.1f}s] sent {sent:6d}  processed {received:6d} "
                f"({received / elapsed:7.1f} ev/s)  top: "
                + ", ".join(f"{lead}={count}" for lead, count in top)
            )
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
            print(f"\nDemo stopped: the worker processed {received} events.")
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
