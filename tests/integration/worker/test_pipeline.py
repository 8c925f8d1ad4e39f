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

Accounts (``check_accounts``): every lead's final contribution to its account is the one the
reference computes from the lead's final state, and the account records on
``leads.account-scores.v1`` and ``leads.account-stage-changes.v1`` are the ones the pure core
computes from the member updates in the order the accounts' partitions of the internal topic
recorded them (members of one account come from many partitions, so, as for a lead's events,
the order is the worker's and the content the reference's).
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from schemas.internal import AccountMember, AccountMembers, Events, Tick
from schemas.outputs import AccountScoreUpdated, AccountStageChanged, ScoreUpdated, StageChanged
from schemas.stages import AccountStage, Stage
from schemas.topics import topic_for as topics_for
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.offline.history import stored
from stream.scoring import LeadState, ModelSet, apply_all, parse_models
from stream.scoring.account_history import replay_members, score_accounts
from stream.scoring.accounts import Member, member_of
from stream.settings import Settings
from stream.simulate.traffic import Delivery, SimConfig, Simulation, generate
from stream.worker.accounts import changes_of

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
    """Send ``deliveries`` to their topics; raise if the broker did not take one of them (the
    scenarios count what they sent, so a record lost on the way in must fail here, not show as
    a record the worker lost). Idempotent: a request retried after its broker went away mid-way
    (the cluster scenarios restart brokers under traffic) is not written twice, so the topics
    hold each delivery once, as the scenarios count them (a malformed one written twice would
    be dead-lettered twice)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.topic(delivery.topic), key=delivery.key, value=delivery.value
            )
            for delivery in deliveries
        ]
        await producer.flush()
        await asyncio.gather(*sent)
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
    order: dict[str, list[str]] = defaultdict(list)
    for record in await _read_all(settings, [topics.INTERNAL.name]):
        message = codec.decode_internal(record.value)
        if isinstance(message, Events):  # a batch's events of the partition, in order
            for event in message.events:
                assert event.lead_id is not None
                order[event.lead_id].append(event.event_id)
        elif (
            isinstance(message, EventBase)
            and message.lead_id is not None
            and record.key == message.lead_id.encode()
        ):
            order[message.lead_id].append(message.event_id)
    return dict(order)


def latest_scores(scores: list[ScoreUpdated]) -> dict[tuple[str, str], ScoreUpdated]:
    latest: dict[tuple[str, str], ScoreUpdated] = {}
    for score in scores:
        key = (score.lead_id, score.model)
        if key not in latest or score.revision > latest[key].revision:
            latest[key] = score
    return latest


def offline_reference(
    simulation: Simulation,
    models: ModelSet,
    order: dict[str, list[str]],
    states: dict[str, LeadState | None] | None = None,
) -> tuple[dict[tuple[str, str], ScoreUpdated], list[StageChanged]]:
    """Each lead's latest score per model and every stage change (``states``, when given, is
    filled with each lead's final state)."""
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
        if states is not None:
            states[lead] = state
    return latest, changes


async def _read_all(settings: Settings, names: list[str]) -> list[Any]:
    """Every record of the topics ``names`` (their partitions in order), up to their ends."""
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
    records: list[Any] = []
    try:
        parts = [
            TopicPartition(settings.topic(name), p)
            for name in names
            for p in range(settings.topic_partitions)
        ]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records += [
                    r for r in batch.get(tp, []) if r.offset < ends[tp] and r.value is not None
                ]
    finally:
        await consumer.stop()
    return records


async def account_order(
    settings: Settings,
) -> list[tuple[str, str | None, Member | None, int, datetime]]:
    """The member updates and timer ticks the accounts' partitions of the internal topic
    recorded, in order (``stream.scoring.account_history.replay_members``)."""
    recorded: list[tuple[str, str | None, Member | None, int, datetime]] = []
    for record in await _read_all(settings, [topics.INTERNAL.name]):
        message = codec.decode_internal(record.value)
        if isinstance(message, Tick) and message.kind == "account":
            recorded.append((message.key, None, None, 0, message.at))
        elif isinstance(message, AccountMembers | AccountMember):
            assert record.key == message.account_id.encode()
            for change in changes_of(message):
                member = None if change.member is None else Member.from_dict(change.member)
                recorded.append(
                    (message.account_id, change.lead_id, member, change.version, change.occurred_at)
                )
    return recorded


async def account_outputs(
    settings: Settings,
) -> tuple[list[AccountScoreUpdated], list[AccountStageChanged]]:
    records = await _read_all(
        settings, [topics.ACCOUNT_SCORES.name, topics.ACCOUNT_STAGE_CHANGES.name]
    )
    scores = [
        codec.decode_account_score(r.value)
        for r in records
        if r.topic.endswith(topics.ACCOUNT_SCORES.name)
    ]
    changes = [
        codec.decode_account_stage_change(r.value)
        for r in records
        if r.topic.endswith(topics.ACCOUNT_STAGE_CHANGES.name)
    ]
    return scores, changes


def assert_same_members(
    got: dict[str, dict[str, Member]], want: dict[str, dict[str, Member]]
) -> None:
    """The same members in the same accounts, with the same contributions: engagement and fit
    within 1e-9 (the worker scores a lead's events in batches and keeps its state in memory
    between them, the reference reads it back after every event: the sums differ in the last
    digits), everything else exactly."""
    assert {a: sorted(m) for a, m in got.items()} == {a: sorted(m) for a, m in want.items()}
    for account_id, members in got.items():
        for lead, member in members.items():
            other = want[account_id][lead]
            assert dataclasses.replace(member, terms=(), steady=0.0, fit=0.0) == (
                dataclasses.replace(other, terms=(), steady=0.0, fit=0.0)
            ), (account_id, lead)
            assert [k for k, _ in member.terms] == [k for k, _ in other.terms], (account_id, lead)
            numbers = [s for _, s in member.terms] + [member.steady, member.fit]
            expected = [s for _, s in other.terms] + [other.steady, other.fit]
            assert numbers == pytest.approx(expected, rel=1e-9, abs=1e-9), (account_id, lead)


async def check_accounts(
    scenario: Simulation, settings: Settings, order: dict[str, list[str]]
) -> None:
    """The worker's account records equal the pure core's (see the module docstring)."""
    assert settings.models_path is not None
    models = parse_models(settings.models_path.read_text(), source="test models")
    states: dict[str, LeadState | None] = {}
    offline_reference(scenario, models, order, states)
    recorded = await account_order(settings)
    replayed = replay_members(recorded, models)
    # the lead's side: its final contribution is the reference's, in the account it names
    want_members: dict[str, dict[str, Member]] = defaultdict(dict)
    for lead, state in states.items():
        found = member_of(state, models)
        if found is not None:
            want_members[found[0]][lead] = found[1]
    got_members = {a: s.members for a, s in replayed.accounts.items() if s.members}
    assert len(want_members) >= 10, "too few accounts to test"
    assert_same_members(got_members, dict(want_members))
    # the account's side: the records published are the core's from those updates
    scores, changes = await account_outputs(settings)
    # a record published twice (sent again after a crash) is the same record
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for score in scores:
        dump = score.model_dump()
        assert first.setdefault((score.account_id, score.revision), dump) == dump
    first_change: dict[Any, dict[str, Any]] = {}
    for change in changes:
        dump = change.model_dump()
        assert first_change.setdefault(change.event_id, dump) == dump
    latest: dict[str, AccountScoreUpdated] = {}
    for score in scores:
        if score.account_id not in latest or score.revision > latest[score.account_id].revision:
            latest[score.account_id] = score
    want_latest: dict[str, AccountScoreUpdated] = {}
    for account_id, record in replayed.outputs:
        if isinstance(record, AccountScoreUpdated):
            want_latest[account_id] = record
    assert {a: r.model_dump() for a, r in latest.items()} == {
        a: r.model_dump() for a, r in want_latest.items()
    }
    want_changes = [r for _, r in replayed.outputs if isinstance(r, AccountStageChanged)]
    assert first_change == {c.event_id: c.model_dump() for c in want_changes}
    assert len(first_change) == len(want_changes)


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
    order = await internal_order(settings)
    check_against_reference(scenario, settings, scores, changes, order)
    await check_accounts(scenario, settings, order)


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
    order = await internal_order(settings)
    check_against_reference(scenario, settings, scores, changes, order)
    await check_accounts(scenario, settings, order)


def _account_phases(now: datetime) -> list[list[EventBase]]:
    """Members of two accounts join, leave for a personal address, move through a CRM account
    id, merge across accounts and are erased, one phase after another."""
    from schemas.events import Traits
    from schemas.examples import make_event

    n = itertools.count()

    def ev(kind: str, lead: str, minutes: int, **fields: Any) -> EventBase:
        if kind in {"page_viewed", "form_submitted"}:
            fields.setdefault("anonymous_id", None)
        return make_event(
            kind,
            event_id=f"acct-{next(n)}",
            lead_id=lead,
            occurred_at=now + timedelta(minutes=minutes),
            **fields,
        )

    def who(lead: str, minutes: int, email: str, title: str) -> EventBase:
        traits = Traits(email=email, job_title=title, industry="saas", company_size=900)
        return ev("profile_updated", lead, minutes, traits=traits)

    joins = [
        who("a", 0, "ann@initech.io", "VP Engineering"),
        who("b", 0, "bob@initech.io", "Data Engineer"),
        who("c", 0, "cy@initech.io", "Marketing Analyst"),
        who("d", 0, "di@globex.com", "Director of IT"),
        *(ev("demo_requested", lead, 1) for lead in "abcd"),
        *(ev("webinar_attended", lead, 2) for lead in "abcd"),
        *(ev("trial_requested", lead, 2) for lead in "abcd"),
    ]
    return [
        joins,
        [who("c", 3, "cy@gmail.com", "Marketing Analyst")],  # leaves for a personal address
        [ev("sales_accepted", "b", 4, account_id="globex.com")],  # moves to globex
        [ev("leads_merged", "a", 5, merged_lead_id="d")],  # d (globex) merged into a (initech)
        [ev("lead_erased", "a", 6)],  # a's contribution leaves initech
    ]


async def _settled(settings: Settings) -> None:
    """Wait until the internal and account topics stop growing for a few seconds."""
    names = [topics.INTERNAL.name, topics.ACCOUNT_SCORES.name, topics.ACCOUNT_STAGE_CHANGES.name]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = [
            TopicPartition(settings.topic(name), p)
            for name in names
            for p in range(settings.topic_partitions)
        ]
        last, quiet = None, 0
        async with asyncio.timeout(120):
            while quiet < 4:
                ends = await consumer.end_offsets(parts)
                quiet = quiet + 1 if ends == last else 0
                last = ends
                await asyncio.sleep(1)
    finally:
        await consumer.stop()


async def test_account_members_moving_merging_and_erased_equal_the_reference(
    settings: Settings, tmp_path: Path
) -> None:
    """A small history on the real broker: each lead's final contribution is the reference's
    (members that left, moved, were merged or erased are gone from their old account), and
    the account records are the core's for the member updates as the accounts received them."""
    assert settings.models_path is not None
    models = parse_models(settings.models_path.read_text(), source="test models")
    phases = _account_phases(datetime.now(UTC) - timedelta(hours=1))
    history = [event for phase in phases for event in phase]
    await ensure_topics(settings)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        for phase in phases:
            deliveries = [
                Delivery(topics_for(event), (event.lead_id or "").encode(), codec.encode(event))
                for event in phase
            ]
            await produce(settings, deliveries)
            await _settled(settings)
    finally:
        stop_worker(worker)
    reference = score_accounts(history, models)
    replayed = replay_members(await account_order(settings), models)
    assert_same_members(
        {a: s.members for a, s in replayed.accounts.items()},
        {a: s.members for a, s in reference.accounts.items()},
    )
    assert sorted(replayed.accounts["globex.com"].members) == ["b"]
    assert replayed.accounts["initech.io"].members == {}
    scores, changes = await account_outputs(settings)
    want = {a: r.model_dump() for a, r in replayed.outputs if isinstance(r, AccountScoreUpdated)}
    assert {s.account_id: s.model_dump() for s in scores} == want
    assert {c.event_id: c.model_dump() for c in changes} == {
        r.event_id: r.model_dump()
        for _, r in replayed.outputs
        if isinstance(r, AccountStageChanged)
    }
    assert AccountStage.MQA in {c.to_stage for c in changes}
    last = {s.account_id: s for s in scores}
    assert last["initech.io"].members == 0 and last["globex.com"].members == 1
