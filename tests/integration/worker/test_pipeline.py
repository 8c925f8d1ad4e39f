"""The whole pipeline on the real broker equals the pure core computed offline.

A simulated scenario (200 leads, over 10k events on all five source topics, with out-of-order,
duplicate, anonymous-then-identified and malformed deliveries) is produced to Kafka and scored by
a real worker process. The outputs on ``leads.scores.v1`` and ``leads.stage-changes.v1`` must
equal what ``stream.scoring`` computes offline from the same events: same final scores (within
1e-6) and the same stage changes, with the same deterministic event ids.

Events of one lead arrive through several topics, so the order in which they reach the lead is
the worker's: the order of its internal topic (``internal_order``), which the reference replays.
Everything else (which events count, their points, decay, identity resolution, stages) the
reference recomputes from the raw events, keeping the state between events in its stored form
as the worker does. The test model has no minimum change and no caps, so each model's latest
record carries the revision of every change. Bots are the one exception: once disqualified they
publish nothing, so for them only the outcome is compared.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError

from schemas import codec
from schemas.events import EventBase
from schemas.outputs import ScoreUpdated, StageChanged
from schemas.stages import Stage
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.offline.history import stored
from stream.scoring import LeadState, ModelSet, apply_all, parse_models
from stream.settings import Settings
from stream.simulate.traffic import Delivery, SimConfig, Simulation, generate

pytestmark = pytest.mark.integration

DAYS = 40


def model_text() -> str:
    """The default models without caps and with every score change published."""
    text = resources.files("stream.scoring").joinpath("default_models.yaml").read_text()
    data = yaml.safe_load(text)
    for model in data["models"]:
        for rule in model.get("engagement", []):
            rule.pop("cap", None)
        model.setdefault("outputs", {})["min_change"] = 0
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def scenario() -> Simulation:
    start = datetime.now(UTC) - timedelta(days=DAYS, hours=1)
    simulation = generate(SimConfig(seed=11, leads=200, days=DAYS, start=start))
    assert len(simulation.events) >= 10_000
    assert {d.topic for d in simulation.deliveries} == {t.name for t in topics.SOURCES}
    kinds = simulation.counts()
    assert kinds["late"] > 0 and kinds["duplicate"] > 0 and kinds["malformed"] > 0
    assert simulation.aliases
    return simulation


@pytest.fixture
def settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    models = tmp_path / "models.yaml"
    models.write_text(model_text())
    return settings_factory(topic_partitions=4, models_path=models, timer_interval_s=3600)


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADSTREAM_TOPIC_REPLICATION": str(settings.topic_replication),
        "LEADSTREAM_STANDBY_REPLICAS": str(settings.standby_replicas),
        "LEADSTREAM_DATA_DIR": str(settings.data_dir),
        "LEADSTREAM_WEB_ENABLED": "false",
        "LEADSTREAM_MODELS_PATH": str(settings.models_path),
        "LEADSTREAM_TIMER_INTERVAL_S": str(settings.timer_interval_s),
        "LEADSTREAM_COLLECTOR_ENABLED": "false",
        "LEADSTREAM_PROCESSING_GUARANTEE": settings.processing_guarantee,
    }


async def produce(settings: Settings, deliveries: list[Delivery]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20
    )
    await producer.start()
    try:
        for delivery in deliveries:
            await producer.send(
                settings.topic(delivery.topic), key=delivery.key, value=delivery.value
            )
        await producer.flush()
    finally:
        await producer.stop()


async def collect(
    settings: Settings, malformed: int, log: Path
) -> tuple[list[ScoreUpdated], list[StageChanged], int]:
    consumer = AIOKafkaConsumer(
        settings.topic(topics.SCORES.name),
        settings.topic(topics.STAGE_CHANGES.name),
        settings.topic(topics.DEAD_LETTERS.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )
    await consumer.start()
    scores: list[ScoreUpdated] = []
    changes: list[StageChanged] = []
    letters = 0
    quiet = 0.0
    try:
        async with asyncio.timeout(420):
            while letters < malformed or quiet < 10:
                batch = await consumer.getmany(timeout_ms=1000)
                records = [r for rs in batch.values() for r in rs]
                quiet = quiet + 1 if not records else 0
                for record in records:
                    if record.value is None:
                        continue
                    if record.topic.endswith(topics.SCORES.name):
                        score = codec.decode_score(record.value)
                        if isinstance(score, ScoreUpdated):
                            scores.append(score)
                    elif record.topic.endswith(topics.STAGE_CHANGES.name):
                        change = codec.decode_stage_change(record.value)
                        if isinstance(change, StageChanged):
                            changes.append(change)
                    else:
                        letters += 1
    except TimeoutError:
        pytest.fail(
            f"outputs did not settle: {len(scores)} scores, {letters}/{malformed} dead letters\n"
            + log.read_text()[-3000:]
        )
    finally:
        await consumer.stop()
    return scores, changes, letters


async def group_members(settings: Settings) -> int:
    """How many workers are members of the processor's consumer group now (a broker that has
    not yet made a group coordinator, fresh from a start, is asked again for up to 30 s)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for attempt in itertools.count():
            try:
                described = await admin.describe_consumer_groups([settings.app_id])
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                if attempt >= 60:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    groups = described[0].groups if hasattr(described[0], "groups") else described
    return max(len(group[-1]) for group in groups)


async def internal_order(settings: Settings) -> dict[str, list[str]]:
    """Per lead, the order in which the worker applied its events: its internal topic's order.

    The worker scores a lead's events as they come through its partition of the internal topic
    (from every source topic, released from an anonymous id, sent again after a crash), so the
    reference replays them in that order, copies included: the state's memory of recent ids
    makes a copy a no-op for the worker and the reference alike (and a copy that comes back
    after the memory moved on is applied again by both).
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
    )
    await consumer.start()
    order: dict[str, list[str]] = defaultdict(list)
    try:
        name = settings.topic(topics.INTERNAL.name)
        parts = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.offset >= ends[tp] or record.value is None:
                        continue
                    message = codec.decode_internal(record.value)
                    if (
                        isinstance(message, EventBase)
                        and message.lead_id is not None
                        and record.key == message.lead_id.encode()
                    ):
                        order[message.lead_id].append(message.event_id)
    finally:
        await consumer.stop()
    return dict(order)


def latest_scores(scores: list[ScoreUpdated]) -> dict[tuple[str, str], ScoreUpdated]:
    latest: dict[tuple[str, str], ScoreUpdated] = {}
    for score in scores:
        key = (score.lead_id, score.model)
        if key not in latest or score.revision > latest[key].revision:
            latest[key] = score
    return latest


def offline_reference(
    simulation: Simulation, models: ModelSet, order: dict[str, list[str]]
) -> tuple[dict[tuple[str, str], ScoreUpdated], list[StageChanged]]:
    events_by_id: dict[str, EventBase] = {}
    owner: dict[str, str] = {}
    for event in simulation.events:
        lead = simulation.person_of(event)
        events_by_id[event.event_id] = event.model_copy(update={"lead_id": lead})
        owner[event.event_id] = lead
    by_lead: dict[str, list[str]] = defaultdict(list)
    for event_id, lead in owner.items():
        by_lead[lead].append(event_id)
    latest: dict[tuple[str, str], ScoreUpdated] = {}
    changes: list[StageChanged] = []
    for lead, ids in by_lead.items():
        applied = order.get(lead, [])
        done = set(applied)
        rest = [i for i in ids if i not in done]
        state: LeadState | None = None
        for event_id in [*applied, *rest]:
            step = apply_all(state, events_by_id[event_id], models=models, lead_id=lead)
            state = None if step.state is None else stored(step.state, models)
            for output in step.outputs:
                if isinstance(output, StageChanged):
                    changes.append(output)
                elif isinstance(output, ScoreUpdated):
                    latest[(lead, output.model)] = output
    return latest, changes


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "warning"],
            env=worker_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def check_against_reference(
    scenario: Simulation,
    settings: Settings,
    scores: list[ScoreUpdated],
    changes: list[StageChanged],
    order: dict[str, list[str]],
) -> None:
    """The worker's outputs equal the reference computed offline from the same events, applied
    to each lead in ``order`` (``internal_order``)."""
    assert settings.models_path is not None
    models = parse_models(settings.models_path.read_text(), source="test models")
    expected, expected_changes = offline_reference(scenario, models, order)
    latest = latest_scores(scores)

    def unseen(lead: str) -> str:
        """The lead's events the worker's records never mention, for a failure message."""
        seen = set(order.get(lead, []))
        missing = [
            (event.type, event.event_id, event.occurred_at.isoformat())
            for event in scenario.events
            if scenario.person_of(event) == lead and event.event_id not in seen
        ]
        return f"events of {lead} no record mentions: {missing}"

    assert set(latest) == set(expected), "the leads and models scored differ"
    bots = {lead for lead, truth in scenario.truth.items() if truth.persona.endswith("_bot")}
    assert bots
    for key, score in latest.items():
        want = expected[key]
        assert score.stage == want.stage, (key, unseen(key[0]))
        if key[0] in bots:
            # Disqualified bots publish nothing more, so the order in which their later
            # events reached the worker cannot be read back: only the outcome is compared.
            continue
        assert (score.grade, score.revision) == (want.grade, want.revision), (
            key,
            unseen(key[0]),
        )
        assert score.fit == pytest.approx(want.fit, rel=1e-6, abs=1e-6), key
        assert score.engagement == pytest.approx(want.engagement, rel=1e-6, abs=1e-6), key
        assert score.total == pytest.approx(want.total, rel=1e-6, abs=1e-6), key
        assert score.as_of == want.as_of, key
    assert len(latest) >= 2 * len(scenario.truth) - 5

    def change_set(records: list[Any]) -> set[tuple[str, str, str | None, str, str]]:
        return {
            (c.lead_id, c.model, c.from_stage, c.to_stage, str(c.event_id))
            for c in records
            if c.lead_id not in bots
        }

    got = change_set(changes)
    # a record delivered twice carries the same id; two different changes never share one
    distinct = {(c.event_id, c.lead_id, c.model, c.from_stage, c.to_stage) for c in changes}
    assert len(distinct) == len({c.event_id for c in changes}), "one id per stage change"
    assert got == change_set(expected_changes)
    assert {c.to_stage for c in changes if c.lead_id in bots} >= {Stage.DISQUALIFIED}
    assert any(c.to_stage.value in {"mql", "sql"} for c in changes)


async def test_outputs_equal_the_offline_reference(
    scenario: Simulation, settings: Settings, tmp_path: Path
) -> None:
    await _equals_the_reference(scenario, settings, tmp_path)


async def test_exactly_once_outputs_equal_the_offline_reference(
    scenario: Simulation, settings: Settings, tmp_path: Path
) -> None:
    """The same scenario with ``LEADSTREAM_PROCESSING_GUARANTEE=exactly_once``; the state is
    written in Kafka transactions. Faust 0.15 sends in a transaction only to topics its consumer
    knows (changelogs, the internal topic), so the score, stage-change and dead-letter records
    are sent outside them: consumers still deduplicate by event id (README, Guarantees)."""
    eos = settings.model_copy(update={"processing_guarantee": "exactly_once"})
    await _equals_the_reference(scenario, eos, tmp_path)
    # a transaction's commit marker takes an offset: more offsets than committed records means
    # the changelog was written in transactions
    changelog = f"{eos.app_id}-leads-changelog"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=eos.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        parts = [TopicPartition(changelog, p) for p in range(eos.topic_partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        records = 0
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            batch = await consumer.getmany(timeout_ms=1000)
            records += sum(len(items) for items in batch.values())
    finally:
        await consumer.stop()
    assert records > 0
    assert sum(ends.values()) > records, "the state was not written in transactions"


async def _equals_the_reference(scenario: Simulation, settings: Settings, tmp_path: Path) -> None:
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        await produce(settings, scenario.deliveries)
        malformed = scenario.counts()["malformed"]
        scores, changes, letters = await collect(settings, malformed, log)
    finally:
        stop_worker(worker)
    assert letters == malformed
    check_against_reference(scenario, settings, scores, changes, await internal_order(settings))


async def test_a_second_worker_joining_mid_stream_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    """Partitions move to a second worker half-way; the outputs are still the reference."""
    start = datetime.now(UTC) - timedelta(days=21, hours=1)
    scenario = generate(SimConfig(seed=12, leads=120, days=20, start=start))
    await ensure_topics(settings)
    log = tmp_path / "workers.log"
    half = len(scenario.deliveries) // 2
    first = start_worker(settings, log)
    second = None
    try:
        await produce(settings, scenario.deliveries[:half])
        second_settings = settings.model_copy(update={"data_dir": tmp_path / "data-2"})
        second = start_worker(second_settings, log)
        await produce(settings, scenario.deliveries[half:])
        malformed = scenario.counts()["malformed"]
        scores, changes, letters = await collect(settings, malformed, log)
        members = await group_members(settings)
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
    assert letters >= malformed  # a dead letter may be sent again after a partition moved
    assert members == 2, "the second worker never joined the group"
    check_against_reference(scenario, settings, scores, changes, await internal_order(settings))
