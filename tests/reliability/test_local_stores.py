"""A worker keeps its local table stores after a clean stop and restores them from the
changelogs after a kill (its local stores may then hold writes the changelogs never got).

Real worker processes on the real broker: scored, stopped with SIGTERM (the stores are marked
clean and kept), restarted and killed with SIGKILL (no mark: the next start removes them), and
restarted again. After each restart a new event of a lead continues that lead's revisions, so
its state came back either way.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import reliability_harness as h
from aiokafka import AIOKafkaConsumer

from schemas import codec
from schemas.events import PageViewed
from schemas.outputs import ScoreUpdated
from schemas.topics import topic_for
from stream.faust_guards.local_stores import MARKER
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings
from stream.simulate.traffic import Delivery

pytestmark = pytest.mark.integration

REMOVED = "did not stop cleanly: its"
"""What a worker logs when it removes the local stores of a run that did not stop cleanly."""


MODEL = "b2b"
"""The model whose revisions the test follows (one of the default file's)."""


async def _score_of(settings: Settings, event_id: str, timeout: float = 180) -> ScoreUpdated:
    """The first score record of ``MODEL`` published for ``event_id``."""
    consumer = AIOKafkaConsumer(
        settings.topic(topics.SCORES.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        score = None if record.value is None else codec.decode_score(record.value)
                        if (
                            isinstance(score, ScoreUpdated)
                            and score.model == MODEL
                            and score.last_event_id == event_id
                        ):
                            return score
    finally:
        await consumer.stop()


async def _view(settings: Settings, template: PageViewed, lead: str, n: int) -> str:
    """Send a new page view of ``lead``; returns its event id."""
    event = template.model_copy(
        update={"event_id": f"restart-{n}-{lead}", "occurred_at": datetime.now(UTC)}
    )
    await h.pipeline.produce(
        settings, [Delivery(topic_for(event), lead.encode(), codec.encode(event))]
    )
    return event.event_id


def _store_dirs(tabledir: Path) -> dict[str, int]:
    """The table stores of the worker, by name, with their directories' inode numbers."""
    return {path.name: path.stat().st_ino for path in tabledir.glob("*.db")}


async def test_local_stores_are_kept_after_a_clean_stop_and_restored_after_a_kill(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = h.pipeline_settings(kafka_bootstrap, unique, tmp_path)
    sim = h.scenario(seed=5, leads=20, days=10)
    views = [e for e in sim.events if isinstance(e, PageViewed) and e.lead_id is not None]
    template = views[-1]
    lead = template.lead_id
    assert lead is not None
    await ensure_topics(settings)
    await h.pipeline.produce(settings, sim.deliveries)
    tables = settings.data_dir / "v1" / "tables"
    log = tmp_path / "worker.log"

    worker = h.start_worker(settings, log)
    scores, _, _ = await h.pipeline.collect(settings, sim.counts()["malformed"], log)
    before = max(s.revision for s in scores if (s.lead_id, s.model) == (lead, MODEL))
    h.stop_worker(worker)  # SIGTERM: every table write confirmed, the stores marked clean
    assert worker.returncode == 0, log.read_text()[-3000:]
    assert (tables / MARKER).exists(), log.read_text()[-3000:]
    kept = _store_dirs(tables)
    assert any(name.startswith("leads-") for name in kept)

    worker = h.start_worker(settings, log)
    first = await _score_of(settings, await _view(settings, template, lead, 1))
    assert first.revision == before + 1  # the kept stores hold the lead's state
    assert not (tables / MARKER).exists()  # consumed at start: this run has not stopped yet
    assert _store_dirs(tables) == kept
    assert REMOVED not in log.read_text()
    worker.kill()  # SIGKILL: nothing marked
    worker.wait()
    assert not (tables / MARKER).exists()

    worker = h.start_worker(settings, log)
    try:
        second = await _score_of(settings, await _view(settings, template, lead, 2))
        text = log.read_text()
        assert text.count(REMOVED) == 1, text[-3000:]
        assert second.revision == first.revision + 1  # restored from the changelog
        rebuilt = _store_dirs(tables)
        assert rebuilt and all(rebuilt.get(name) != inode for name, inode in kept.items())
    finally:
        h.stop_worker(worker)
    assert (tables / MARKER).exists()
