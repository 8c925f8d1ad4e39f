"""For the connector tests: connector processes, reading their topics back, waiting.

``tests/conftest.py`` registers this file as the module ``connect_kit``; the fixtures that use
it are in ``tests/integration/connect/conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from schemas import codec
from schemas.outputs import ConnectorDeadLetter
from stream.kafka import topics
from stream.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"connector-test-key-0123456789ab").decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_until(
    check: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tail}")
        await asyncio.sleep(0.05)


class ConnectorProcess:
    """``leadstream connect webhook`` in its own process, with its /metrics port."""

    def __init__(self, settings: Settings, url: str, log: Path, **env: str) -> None:
        self.metrics_port = free_port()
        self.log = log
        self.env = {
            **os.environ,
            "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "LEADSTREAM_APP_ID": settings.app_id,
            "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "LEADSTREAM_SESSION_TIMEOUT_S": "6",
            "LEADSTREAM_CONNECT_METRICS_PORT": str(self.metrics_port),
            "LEADSTREAM_CONNECT_WEBHOOK_SECRET": SECRET,
            "LEADSTREAM_CONNECT_BACKOFF_MAX_S": "0.5",
            "LEADSTREAM_CONNECT_COMMIT_INTERVAL_S": "0.2",
            **env,
        }
        self.args = [sys.executable, "-m", "stream.cli", "connect", "webhook", "--url", url]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def metrics(self) -> dict[str, float]:
        """Every sample of the process's /metrics (name{labels} → value); empty if it does not
        answer yet."""
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as answer:
                text = answer.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return out

    def rss_mb(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


async def read_dead_letters(settings: Settings) -> list[ConnectorDeadLetter]:
    """Every record on the connector dead-letter topic."""
    topic = settings.topic(topics.CONNECTOR_DEAD_LETTERS.name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        letters: list[ConnectorDeadLetter] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                letters += [codec.decode_connector_dead_letter(r.value) for r in records]
        return letters
    finally:
        await consumer.stop()


async def committed(
    settings: Settings, group: str, spec: topics.TopicSpec = topics.STAGE_CHANGES
) -> dict[int, int | None]:
    """The group's committed offset per partition of the stage-changes topic (or `spec`)."""
    topic = settings.topic(spec.name)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(topic, p))
            for p in range(settings.topic_partitions)
        }
    finally:
        await consumer.stop()


async def end_offsets(
    settings: Settings, spec: topics.TopicSpec = topics.STAGE_CHANGES
) -> dict[int, int]:
    topic = settings.topic(spec.name)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def all_committed(
    settings: Settings, group: str, spec: topics.TopicSpec = topics.STAGE_CHANGES
) -> bool:
    """Whether `group` committed every record of the stage-changes topic (or `spec`; an empty
    partition needs no commit)."""
    ends = await end_offsets(settings, spec)
    done = await committed(settings, group, spec)
    return all(done[p] == end for p, end in ends.items() if end > 0)
