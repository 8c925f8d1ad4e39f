"""`leadstream replay`: history rescored under a new model version; the live outputs untouched."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import codec
from schemas.events import Traits
from schemas.examples import make_event
from schemas.outputs import ScoreUpdated, StageChanged
from stream.kafka import topics
from stream.kafka.admin import describe_topics
from stream.model_files import DEFAULT_MODELS
from stream.offline.replay import (
    REPLAY_ACCOUNT_SCORES,
    REPLAY_ACCOUNT_STAGE_CHANGES,
    REPLAY_SCORES,
    REPLAY_STAGE_CHANGES,
)

pytestmark = pytest.mark.integration

DEFAULT_FILE = Path(__file__).resolve().parents[3] / "stream" / "scoring" / DEFAULT_MODELS
NEW_VERSION = "2025-07-01"


def _history(unique: str) -> list[Any]:
    now = datetime.now(UTC)
    warm, anon = f"warm-{unique}", f"anon-{unique}"
    known: dict[str, Any] = {"lead_id": warm, "anonymous_id": None}
    return [
        make_event(
            "profile_updated",
            event_id=f"{warm}-p",
            occurred_at=now - timedelta(minutes=9),
            traits=Traits(
                email=f"cto@acme-{unique}.com",
                industry="software",
                company_size=400,
                job_title="CTO",
                age=41,
            ),
            **known,
        ),
        make_event(
            "webinar_attended",
            event_id=f"{warm}-w",
            occurred_at=now - timedelta(minutes=8),
            **known,
        ),
        make_event(
            "page_viewed",
            event_id=f"{anon}-v",
            occurred_at=now - timedelta(minutes=7),
            lead_id=None,
            anonymous_id=anon,
            path="/pricing",
        ),
        make_event(
            "identify",
            event_id=f"{anon}-i",
            occurred_at=now - timedelta(minutes=6),
            lead_id=f"visitor-{unique}",
            anonymous_id=anon,
        ),
    ]


async def _read_all(settings: Any, *names: str) -> list[tuple[str, bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(state.name, p)
            for state in await describe_topics(settings, [topics.TopicSpec(n) for n in names])
            for p in range(state.partitions or 0)
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        out = []
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                out += [(tp.topic, r.key, r.value) for r in records if r.offset < end[tp]]
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return sorted(out, key=lambda r: (r[0], r[1] or b"", r[2] or b""))
    finally:
        await consumer.stop()


def _replay(worker: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", *args],
        env={**os.environ, **worker.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_replay_publishes_the_new_version_and_leaves_the_live_one_alone(
    worker_launcher: Any, unique: str, tmp_path: Path, produce_events: Any
) -> None:
    worker = worker_launcher()
    settings = worker.settings
    worker.start()
    await produce_events(settings, _history(unique))
    warm, visitor = f"warm-{unique}", f"visitor-{unique}"
    live: list[tuple[str, bytes | None, bytes | None]] = []
    for _ in range(120):
        live = await _read_all(settings, topics.SCORES.name, topics.STAGE_CHANGES.name)
        scored = {codec.decode_score(v).lead_id for t, _, v in live if v and "scores" in t}
        if {warm, visitor} <= scored:
            break
        await asyncio.sleep(0.5)
    worker.stop()  # no timer output may land between the two snapshots
    live = await _read_all(settings, topics.SCORES.name, topics.STAGE_CHANGES.name)
    live_changes = [codec.decode_stage_change(v) for t, _, v in live if v and "stage" in t]
    assert {c.model_version for c in live_changes} == {"2025-06-01"}
    assert not any(c.lead_id == warm and c.to_stage.value == "mql" for c in live_changes)

    # The live version again: refused, nothing published.
    same = _replay(worker, "--model", str(DEFAULT_FILE))
    assert same.returncode == 3, same.stderr
    assert "a replay must carry a new version" in same.stderr

    # b2b: MQL at 30 instead of 50, so the warm lead (fit 26 + webinar 10) becomes an MQL.
    text = DEFAULT_FILE.read_text().replace('version: "2025-06-01"', f'version: "{NEW_VERSION}"')
    text = text.replace(
        "mql: {promote_at: 50, demote_below: 30,", "mql: {promote_at: 30, demote_below: 20,"
    )
    new_file = tmp_path / "new.yaml"
    new_file.write_text(text)
    result = _replay(worker, "--model", str(new_file), "--from", "earliest")
    assert result.returncode == 0, result.stderr
    assert f"to {settings.topic(REPLAY_SCORES.name)}" in result.stdout
    assert "read " in result.stderr and "published " in result.stderr  # progress

    replayed = await _read_all(settings, REPLAY_SCORES.name, REPLAY_STAGE_CHANGES.name)
    scores = [codec.decode_score(v) for t, _, v in replayed if v and "scores" in t]
    changes = [codec.decode_stage_change(v) for t, _, v in replayed if v and "stage" in t]
    assert all(isinstance(s, ScoreUpdated) for s in scores)
    assert all(isinstance(c, StageChanged) for c in changes)
    assert {r.model_version for r in [*scores, *changes]} == {NEW_VERSION}
    assert {(s.lead_id, s.model) for s in scores} >= {(warm, "b2b"), (visitor, "b2b")}
    keys = {k for t, k, _ in replayed if "scores" in t}
    assert codec.score_key(warm, "b2b") in keys
    assert any(
        c.lead_id == warm and c.model == "b2b" and c.to_stage.value == "mql" and "30" in c.reason
        for c in changes
    ), changes

    assert await _read_all(settings, topics.SCORES.name, topics.STAGE_CHANGES.name) == live

    # the warm lead's company account, rescored too
    assert "1 accounts" in result.stdout, result.stdout
    accounts = await _read_all(
        settings, REPLAY_ACCOUNT_SCORES.name, REPLAY_ACCOUNT_STAGE_CHANGES.name
    )
    account_scores = [
        codec.decode_account_score(v) for t, _, v in accounts if v and "account-scores" in t
    ]
    assert [(a.account_id, a.members, a.roles) for a in account_scores] == [
        (f"acme-{unique}.com", 1, ("decision_maker",))
    ]
    assert {k for t, k, _ in accounts} == {f"acme-{unique}.com".encode()}

    # --from a time after the history: nothing to rescore.
    later = _replay(worker, "--model", str(new_file), "--from", "2999-01-01T00:00:00Z")
    assert later.returncode == 0, later.stderr
    assert later.stdout.startswith("replayed 0 events"), later.stdout
