"""The decay timer on a real worker: a quiet MQL is recycled with no new event."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import codec
from schemas.examples import make_event
from schemas.outputs import StageChanged
from schemas.stages import Stage
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings

pytestmark = pytest.mark.integration

HALF_LIFE_S = 20
TIMER_S = 2.0
MODEL = f"""
format: 1
models:
  - id: quick
    version: "1"
    decay: {{web: {HALF_LIFE_S}s}}
    engagement:
      - {{id: webinar, event: webinar_attended, points: 60, group: web}}
    stages:
      initial: lead
      mql: {{promote_at: 50, demote_below: 30, basis: total}}
    grades:
      fit: [15, 8, 0]
      engagement: [100, 30, 10]
    spam:
      burst: {{max_events: 12, within: 10s}}
"""


async def test_a_quiet_mql_is_recycled_by_the_timer(
    kafka_bootstrap: str,
    unique: str,
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(MODEL)
    settings = settings_factory(models_path=models, timer_interval_s=TIMER_S)
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    env: dict[str, Any] = {
        "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": "2",
        "LEADSTREAM_DATA_DIR": str(settings.data_dir),
        "LEADSTREAM_WEB_ENABLED": "false",
        "LEADSTREAM_MODELS_PATH": str(models),
        "LEADSTREAM_TIMER_INTERVAL_S": str(TIMER_S),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stream.cli", "worker", stdout=out, stderr=out
        )
    consumer = AIOKafkaConsumer(
        settings.topic(topics.STAGE_CHANGES.name),
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        event = make_event(
            "webinar_attended",
            event_id=f"w-{unique}",
            lead_id="quiet-lead",
            anonymous_id=None,
            occurred_at=datetime.now(UTC),
        )
        await producer.send_and_wait(
            settings.topic(topics.CLICKSTREAM.name), key=b"quiet-lead", value=codec.encode(event)
        )
        # 60 points fall below 30 after exactly one half-life
        crossing = event.occurred_at.timestamp() + HALF_LIFE_S
        changes: list[StageChanged] = []
        recycled_seen_at = None
        async with asyncio.timeout(120):
            while recycled_seen_at is None:
                batch = await consumer.getmany(timeout_ms=500)
                for record in (r for rs in batch.values() for r in rs):
                    change = codec.decode_stage_change(record.value)
                    assert isinstance(change, StageChanged)
                    changes.append(change)
                    if change.to_stage is Stage.RECYCLED:
                        recycled_seen_at = time.time()
    finally:
        await producer.stop()
        await consumer.stop()
        if worker.returncode is None:
            worker.terminate()
            await worker.wait()

    assert [c.to_stage for c in changes] == [Stage.LEAD, Stage.MQL, Stage.RECYCLED], log.read_text()
    recycled = changes[-1]
    assert recycled.triggering_event_id is None or recycled.triggering_event_id == event.event_id
    # stamped at the crossing time (the first whole second at or after it), and published
    # within one timer interval of it (plus the time a tick takes through the internal topic)
    stamped = recycled.occurred_at.timestamp()
    assert stamped == math.floor(stamped) and -0.01 < stamped - crossing < 1.01
    assert recycled_seen_at - crossing < TIMER_S + 5
