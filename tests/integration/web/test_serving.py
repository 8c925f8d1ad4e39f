"""A real worker whose Redis is down: scoring goes on, and the read model catches up later.

The worker starts with its Redis not running. A pixel hit followed by an identify of the same
visitor, and page views of known leads, are scored and published while the read API answers
503; once Redis starts, the projector catches up and the leaderboard shows every lead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import codec
from schemas.examples import make_event
from schemas.outputs import ScoreUpdated
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.web.collector import COOKIE_NAME

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
LEADS = [f"known-{n}" for n in range(4)]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = {
            **os.environ,
            "LEADSTREAM_LOCAL_REDIS_PORT": str(self.port),
            "LEADSTREAM_RUN_DIR": str(tmp_path / "run"),
        }

    def run(self, action: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "deploy/local/redis.sh"), action],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )


async def _scores(
    worker: Any, wanted: set[str], engaged: str, timeout: float = 90
) -> dict[str, ScoreUpdated]:
    """The latest score per lead, once every `wanted` lead has one and `engaged` has points."""
    consumer = AIOKafkaConsumer(
        worker.settings.topic(topics.SCORES.name),
        bootstrap_servers=worker.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: dict[str, ScoreUpdated] = {}
    try:
        async with asyncio.timeout(timeout):
            while not (wanted <= set(seen) and seen[engaged].engagement > 0):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        if record.value is not None:
                            decoded = codec.decode_score(record.value)
                            if isinstance(decoded, ScoreUpdated):
                                seen[decoded.lead_id] = decoded
    except TimeoutError:
        pytest.fail(f"scores: {seen}\n{worker.log.read_text()[-4000:]}")
    finally:
        await consumer.stop()
    return seen


async def test_scoring_goes_on_while_redis_is_down_and_the_read_model_catches_up(
    worker_launcher: Any, tmp_path: Path
) -> None:
    redis_server = LocalRedis(tmp_path)  # not running yet
    worker = worker_launcher(redis_server.url)
    await ensure_topics(worker.settings)
    worker.start()
    bearer = {"Authorization": f"Bearer {worker.token}"}
    try:
        async with aiohttp.ClientSession(base_url=worker.base) as session:
            # A visitor's pixel hit, then the identify that names them: the held page view is
            # released to the lead and scored (a browser's: aiohttp's own user agent would
            # mark the page view as a machine's, which scoring skips).
            async with session.get(
                "/collect/pixel.gif",
                params={"url": "https://acme.example/pricing", "eid": "px-1"},
                headers={"User-Agent": BROWSER},
            ) as response:
                assert response.status == 200
                aid = response.cookies[COOKIE_NAME].value
            identify = {"userId": "pixel-lead", "anonymousId": aid, "messageId": "id-px-1"}
            async with session.post("/v1/identify", json=identify, headers=bearer) as response:
                assert response.status == 202, await response.text()

            producer = AIOKafkaProducer(bootstrap_servers=worker.settings.kafka_bootstrap)
            await producer.start()
            try:
                for lead in LEADS:
                    event = make_event("page_viewed", event_id=f"pv-{lead}", lead_id=lead)
                    await producer.send(
                        worker.settings.topic(topics.CLICKSTREAM.name),
                        key=lead.encode(),
                        value=codec.encode(event),
                    )
                await producer.flush()
            finally:
                await producer.stop()

            scores = await _scores(worker, {*LEADS, "pixel-lead"}, engaged="pixel-lead")
            assert scores["pixel-lead"].engagement > 0  # the pixel's page view counted
            model = scores["pixel-lead"].model

            async with session.get("/leaderboard", params={"model": model}, headers=bearer) as r:
                assert r.status == 503, await r.text()

            redis_server.run("start")
            deadline = time.monotonic() + 90
            while True:
                async with session.get(
                    "/leaderboard", params={"model": model}, headers=bearer
                ) as response:
                    leads = (
                        {row["lead_id"] for row in (await response.json())["leads"]}
                        if response.status == 200
                        else set()
                    )
                if {*LEADS, "pixel-lead"} <= leads:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"read model has {leads}:\n{worker.log.read_text()[-4000:]}")
                await asyncio.sleep(0.5)
    finally:
        worker.stop()
        redis_server.run("stop")
