"""The Redis read model and its projector against the real Redis and Kafka.

Covers the revision guard (a replay never moves a lead back or counts it twice), stage counts
following a lead between stages, erasure, the stage-history cap and counters, a Redis restart in
the middle of a stream (the restarted Redis is empty: the projector notices and replays), and
``leadstream redis rebuild``.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiokafka import AIOKafkaProducer

from schemas import codec
from schemas.errors import ErrorKind
from schemas.examples import make_output
from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    DeadLetter,
    LeadErasedRecord,
    ScoreUpdated,
    StageChanged,
)
from schemas.stages import Stage
from stream import metrics
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.readmodel.model import HISTORY_MAX, Erase, ReadModel
from stream.readmodel.projector import Projector, rebuild
from stream.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
PROJECTED = [topics.SCORES, topics.STAGE_CHANGES, topics.DEAD_LETTERS]


def score(lead: str, revision: int, stage: Stage, total: float, model: str = "b2b") -> ScoreUpdated:
    record = make_output(
        "score_updated",
        lead_id=lead,
        model=model,
        revision=revision,
        stage=stage,
        total=total,
        fit=total / 2,
        engagement=total / 2,
        as_of=T0 + timedelta(minutes=revision),
    )
    assert isinstance(record, ScoreUpdated)
    return record


def change(lead: str, from_stage: Stage | None, to_stage: Stage, minute: int) -> StageChanged:
    record = make_output(
        "stage_changed",
        lead_id=lead,
        model="b2b",
        from_stage=from_stage,
        to_stage=to_stage,
        occurred_at=T0 + timedelta(minutes=minute),
    )
    assert isinstance(record, StageChanged)
    return record


@pytest.fixture
async def read_model(redis_url: str, unique: str) -> AsyncIterator[ReadModel]:
    model = ReadModel(redis.asyncio.Redis.from_url(redis_url), prefix=f"test-{unique}:rm")
    yield model
    await model.clear()
    await model.close()


async def test_scores_are_guarded_by_revision_and_move_stage_counts(read_model: ReadModel) -> None:
    first = await read_model.apply([score("a", 1, Stage.LEAD, 10), score("b", 1, Stage.LEAD, 20)])
    assert first.changed == [1, 1]
    assert not first.had_marker  # a fresh read model
    await read_model.apply([score("a", 2, Stage.MQL, 55)])
    assert await read_model.stage_counts("b2b") == {"lead": 1, "mql": 1}

    # A replay of older or equal revisions changes nothing and counts nothing twice.
    replay = await read_model.apply(
        [score("a", 1, Stage.LEAD, 10), score("a", 2, Stage.MQL, 55), score("b", 1, Stage.LEAD, 20)]
    )
    assert replay.had_marker and replay.changed == [0, 0, 0]
    assert await read_model.stage_counts("b2b") == {"lead": 1, "mql": 1}
    board = await read_model.leaderboard("b2b")
    assert [(r["lead_id"], r["total"], r["stage"], r["revision"]) for r in board] == [
        ("a", 55.0, "mql", 2),
        ("b", 20.0, "lead", 1),
    ]
    assert [r["lead_id"] for r in await read_model.leaderboard("b2b", stage="lead")] == ["b"]
    assert [r["lead_id"] for r in await read_model.leaderboard("b2b", stage="mql")] == ["a"]
    assert await read_model.models() == ["b2b"]

    # Erasure (record or tombstone) removes the lead everywhere.
    await read_model.apply([change("a", Stage.LEAD, Stage.MQL, 2)])
    erased = make_output("lead_erased", lead_id="a", model="b2b")
    assert isinstance(erased, LeadErasedRecord)
    await read_model.apply([erased, Erase(lead_id="b", model="b2b")])
    assert await read_model.stage_counts("b2b") == {}
    assert await read_model.leaderboard("b2b") == []
    assert await read_model.score("b2b", "a") is None
    assert await read_model.history("a") == []


async def test_stage_history_is_capped_and_counters_skip_replays(read_model: ReadModel) -> None:
    changes = [
        change("a", Stage.LEAD if n % 2 else Stage.MQL, Stage.MQL if n % 2 else Stage.LEAD, n)
        for n in range(HISTORY_MAX + 5)
    ]
    await read_model.apply(changes)
    await read_model.apply(changes[:10])  # a replay
    history = await read_model.history("a")
    assert len(history) == HISTORY_MAX
    assert history[-1]["occurred_at"] == changes[-1].occurred_at.isoformat()
    counted = await read_model.transitions("b2b")
    assert sum(counted.values()) == len(changes)
    letter = make_output("dead_letter")
    assert isinstance(letter, DeadLetter)
    await read_model.apply([letter, letter])
    assert await read_model.dead_letters() == {letter.error_kind.value: 1}


# ----------------------------------------------------------------------------- projector


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    """A redis-server of this test's own (no persistence), started and stopped by the script."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "LEADSTREAM_LOCAL_REDIS_PORT": str(self.port),
            "LEADSTREAM_RUN_DIR": str(tmp_path / "run"),
        }
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def run(self, action: str) -> None:
        subprocess.run(
            ["bash", str(ROOT / "deploy/local/redis.sh"), action],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def local_redis(tmp_path: Path, redis_url: str) -> Iterator[LocalRedis]:
    server = LocalRedis(tmp_path)
    server.run("start")
    yield server
    server.run("stop")


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


async def _produce(settings: Settings, records: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            if isinstance(record, ScoreUpdated | LeadErasedRecord):
                topic = topics.SCORES
                key = codec.score_key(record.lead_id, record.model)
            elif isinstance(record, DeadLetter):
                topic, key = topics.DEAD_LETTERS, b"x"
            else:
                topic, key = topics.STAGE_CHANGES, record.lead_id.encode()
            await producer.send(settings.topic(topic.name), key=key, value=codec.encode(record))
        await producer.flush()
    finally:
        await producer.stop()


async def _eventually(check: Any, timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110  (polls another process)
            await asyncio.sleep(0.2)


async def test_projector_survives_a_redis_restart_and_replays_into_the_empty_redis(
    settings: Settings, local_redis: LocalRedis
) -> None:
    await ensure_topics(settings, PROJECTED)
    model = ReadModel(redis.asyncio.Redis.from_url(local_redis.url), prefix="rm")
    projector = Projector(settings, model, sleep=lambda s: asyncio.sleep(min(s, 0.5)))
    leads = [f"lead-{n}" for n in range(20)]
    await _produce(settings, [score(lead, 1, Stage.LEAD, n) for n, lead in enumerate(leads)])
    await projector.start()
    task = asyncio.create_task(projector.run())
    try:
        await _eventually(lambda: _counts_are(model, {"lead": 20}))

        local_redis.run("stop")
        # While Redis is down: five leads become MQLs, one is erased, a stage change is reported.
        moved = [score(lead, 2, Stage.MQL, 80 + n) for n, lead in enumerate(leads[:5])]
        erased = make_output("lead_erased", lead_id=leads[19], model="b2b")
        await _produce(settings, [*moved, erased, change(leads[0], Stage.LEAD, Stage.MQL, 2)])
        await _eventually(lambda: _is_true(not projector.redis_up), 30)
        assert metrics.REGISTRY.get_sample_value("leadstream_projector_redis_up") == 0

        local_redis.run("start")  # empty: no persistence
        await _eventually(lambda: _counts_are(model, {"lead": 14, "mql": 5}))
        assert projector.redis_up
        top = await model.leaderboard("b2b", limit=3)
        assert [r["lead_id"] for r in top] == [leads[4], leads[3], leads[2]]
        assert await model.score("b2b", leads[19]) is None
        assert [h["to_stage"] for h in await model.history(leads[0])] == ["mql"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await projector.stop()

    # A rebuild from the topics gives the same read model.
    before = {r["lead_id"]: r for r in await model.leaderboard("b2b", limit=100)}
    out = io.StringIO()
    stats = await rebuild(settings, read_model=model, out=out)
    assert stats.records > 0
    assert "100%" in out.getvalue()
    assert {r["lead_id"]: r for r in await model.leaderboard("b2b", limit=100)} == before
    assert await model.stage_counts("b2b") == {"lead": 14, "mql": 5}
    await model.close()


async def _counts_are(model: ReadModel, expected: dict[str, int]) -> bool:
    try:
        return await model.stage_counts("b2b") == expected
    except OSError:
        return False
    except Exception as exc:  # redis' ConnectionError while it restarts
        if "connect" in str(exc).lower() or "closed" in str(exc).lower():
            return False
        raise


async def _is_true(value: bool) -> bool:
    return value


async def test_dead_letters_are_counted_by_kind(settings: Settings, redis_url: str) -> None:
    await ensure_topics(settings, PROJECTED)
    model = ReadModel(redis.asyncio.Redis.from_url(redis_url), prefix=f"{settings.app_id}:rm")
    letters = [
        make_output("dead_letter", offset=n, error_kind=kind)
        for n, kind in enumerate(
            [ErrorKind.NOT_JSON, ErrorKind.NOT_JSON, ErrorKind.SCHEMA_VIOLATION]
        )
    ]
    await _produce(settings, letters)
    projector = Projector(settings, model)
    await projector.start()
    try:
        async with asyncio.timeout(60):
            while await model.dead_letters() != {"not_json": 2, "schema_violation": 1}:
                await projector.step(timeout_ms=200)
    finally:
        await projector.stop()
        await model.clear()
        await model.close()


def _cli(settings: Settings, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_REDIS_URL": redis_url,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "redis", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_redis_rebuild_command(settings: Settings, redis_url: str) -> None:
    await ensure_topics(settings, PROJECTED)
    await _produce(settings, [score(f"r-{n}", 1, Stage.MQL, n) for n in range(5)])
    done = await asyncio.to_thread(_cli, settings, redis_url)
    assert done.returncode == 0, done.stderr
    assert "100%" in done.stderr and "from 5 record(s)" in done.stderr
    model = ReadModel(redis.asyncio.Redis.from_url(redis_url), prefix=f"{settings.app_id}:rm")
    try:
        assert await model.stage_counts("b2b") == {"mql": 5}
    finally:
        await model.clear()
        await model.close()
    unreachable = await asyncio.to_thread(_cli, settings, f"redis://127.0.0.1:{_free_port()}/0")
    assert unreachable.returncode == 4, unreachable.stderr


def account(account_id: str, revision: int, score: float, members: int = 2) -> AccountScoreUpdated:
    record = make_output(
        "account_score_updated",
        account_id=account_id,
        revision=revision,
        score=score,
        members=members,
    )
    assert isinstance(record, AccountScoreUpdated)
    return record


async def test_account_scores_are_guarded_by_revision(read_model: ReadModel) -> None:
    applied = await read_model.apply(
        [account("acme.com", 1, 40.0), account("globex.com", 1, 90.0), account("acme.com", 3, 120)]
    )
    assert applied.changed == [1, 1, 1]
    replay = await read_model.apply([account("acme.com", 2, 10.0), account("acme.com", 3, 120)])
    assert replay.changed == [0, 0]
    top = await read_model.top_accounts()
    assert [(a["account_id"], a["score"], a["revision"]) for a in top] == [
        ("acme.com", 120.0, 3),
        ("globex.com", 90.0, 1),
    ]
    change = make_output("account_stage_changed", account_id="acme.com")
    assert isinstance(change, AccountStageChanged)
    await read_model.apply([change, change])  # a copy is stored once
    found = await read_model.account("acme.com")
    assert found is not None and found["revision"] == 3
    assert [c["event_id"] for c in found["stage_changes"]] == [str(change.event_id)]
    # an account whose last member left stays readable but leaves the top accounts
    await read_model.apply([account("globex.com", 2, 0.0, members=0)])
    assert [a["account_id"] for a in await read_model.top_accounts()] == ["acme.com"]
    assert (await read_model.account("globex.com") or {})["members"] == 0
    assert await read_model.account("nobody.example") is None
