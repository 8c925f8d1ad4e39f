"""A worker with its web server in a subprocess, on the real broker and Redis, for the tests of
the collector's endpoints; and reading what it wrote to a source topic."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from factories import make_settings

from stream.kafka import topics
from stream.settings import Settings

Records = list[tuple[bytes, dict[str, Any]]]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class WebWorker:
    """A running worker: its settings, where its web server answers, its log."""

    settings: Settings
    base_url: str
    log: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-4000:]


@contextmanager
def web_worker(
    kafka_bootstrap: str, redis_url: str, tmp: Path, env: Mapping[str, str]
) -> Iterator[WebWorker]:
    """Start `leadstream worker` with its web server (and `env` on top of the test settings),
    wait until it answers `/healthz`, and stop it with SIGTERM afterwards."""
    port = free_port()
    settings = make_settings(
        tmp, kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, web_enabled=True, web_port=port
    )
    full = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADSTREAM_REDIS_URL": redis_url,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADSTREAM_DATA_DIR": str(settings.data_dir),
        "LEADSTREAM_STORE": "memory",
        "LEADSTREAM_WEB_ENABLED": "true",
        "LEADSTREAM_WEB_HOST": "127.0.0.1",
        "LEADSTREAM_WEB_PORT": str(port),
        **env,
    }
    full.pop("LEADSTREAM_AUTH_DISABLED", None)
    log = tmp / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "info"],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = WebWorker(settings, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(worker.url("/healthz"), timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker's web server did not answer:\n{worker.log_tail()}")
            time.sleep(0.3)
        yield worker
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def read_topic(
    worker: WebWorker,
    spec: topics.TopicSpec,
    done: Callable[[Records], bool],
    timeout: float = 30,
) -> Records:
    """(key, value) records of a source topic, from the start, until `done` holds."""
    consumer = AIOKafkaConsumer(
        worker.settings.topic(spec.name),
        bootstrap_servers=worker.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: Records = []
    try:
        async with asyncio.timeout(timeout):
            while not done(seen):
                batch = await consumer.getmany(timeout_ms=500)
                seen += [(r.key, orjson.loads(r.value)) for rs in batch.values() for r in rs]
    except TimeoutError:
        pytest.fail(f"timed out reading {spec.name}: got {seen!r}\n{worker.log_tail()}")
    finally:
        await consumer.stop()
    return seen


def with_ids(*ids: str) -> Callable[[Records], bool]:
    """`done` for `read_topic`: every one of `ids` has arrived."""
    return lambda seen: set(ids) <= {value["event_id"] for _, value in seen}
