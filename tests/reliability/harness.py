"""Shared machinery of the reliability suite: sizes, the offline reference, outputs, lag, results.

Loaded by ``tests/reliability/conftest.py`` as ``reliability_harness``. The offline-reference
comparison is the one of ``tests/integration/worker/test_pipeline.py`` (loaded from that file, not
copied): the worker's final scores and stage changes must equal what the pure core computes from
the same events.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schemas import codec
from schemas.outputs import DeadLetter, ScoreUpdated, StageChanged
from stream.kafka import topics
from stream.settings import Settings
from stream.simulate.traffic import SimConfig, Simulation, generate

REPO = Path(__file__).resolve().parents[2]
MODE = "full" if os.environ.get("LEADSTREAM_RELIABILITY", "").lower() == "full" else "short"


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is in one mode (``LEADSTREAM_RELIABILITY=full`` or short)."""

    crash_leads: int
    crash_kills: int
    rebalance_leads: int
    broker_leads: int
    broker_down_s: float
    redis_leads: int
    redis_down_s: float
    hostile_bad: int
    hostile_leads: int
    soak_leads: int
    soak_s: float
    settle_s: float
    """Deadline for the worker to catch up at the end of a scenario."""


SIZES = {
    # the sizes: ~200k events and 5 kills, a 60 s Redis outage, 10k bad messages, 10 min
    "full": Sizes(
        crash_leads=3_700,
        crash_kills=5,
        rebalance_leads=600,
        broker_leads=600,
        broker_down_s=20,
        redis_leads=300,
        redis_down_s=60,
        hostile_bad=10_000,
        hostile_leads=300,
        soak_leads=150,
        soak_s=600,
        settle_s=1800,
    ),
    # CI: the same checks on fewer events, so the suite stays around ten minutes
    "short": Sizes(
        crash_leads=120,
        crash_kills=2,
        rebalance_leads=150,
        broker_leads=120,
        broker_down_s=10,
        redis_leads=100,
        redis_down_s=20,
        hostile_bad=3_000,
        hostile_leads=60,
        soak_leads=40,
        soak_s=120,
        settle_s=300,
    ),
}[MODE]


WORKER_LOGLEVEL = os.environ.get("LEADSTREAM_RELIABILITY_LOGLEVEL", "warning")
"""The workers' log level (``info`` shows Faust's rebalances and recovery in their logs)."""


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline = _load(
    "reliability_pipeline_reference", REPO / "tests/integration/worker/test_pipeline.py"
)
"""tests/integration/worker/test_pipeline.py: `model_text`, `produce`, `check_against_reference`,
`start_worker`
…"""
root = _load("reliability_root_conftest", REPO / "tests/conftest.py")
"""tests/conftest.py: `launch_worker` for a worker served for a whole module."""

SECRETS: set[str] = set()
"""Tokens and keys the suite's workers were given: no log line may hold one."""


# ----------------------------------------------------------------------------- scenario


def scenario(seed: int, leads: int, days: int = 40) -> Simulation:
    """Simulated traffic ending now (late, duplicate and malformed deliveries included)."""
    start = datetime.now(UTC) - timedelta(days=days, hours=1)
    return generate(SimConfig(seed=seed, leads=leads, days=days, start=start))


def pipeline_settings(kafka_bootstrap: str, unique: str, tmp: Path, **extra: Any) -> Settings:
    """Settings of a scoring worker under test (the reference test model, 4 partitions)."""
    models = tmp / "models.yaml"
    models.write_text(pipeline.model_text())
    return root.make_settings(
        tmp,
        kafka_bootstrap=kafka_bootstrap,
        app_id=f"ls-rel-{unique}",
        topic_prefix=f"r{unique}.",
        topic_partitions=4,
        models_path=models,
        timer_interval_s=3600,
        **extra,
    )


def start_worker(settings: Settings, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A `leadstream worker` process of `settings` (web server off), its output in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--loglevel", WORKER_LOGLEVEL],
            env={**pipeline.worker_env(settings), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    pipeline.stop_worker(worker)


# ----------------------------------------------------------------------------- outputs


@dataclass
class Outputs:
    """Everything the worker published, read as it comes."""

    scores: list[ScoreUpdated] = field(default_factory=list)
    changes: list[StageChanged] = field(default_factory=list)
    change_arrivals: list[float] = field(default_factory=list)
    """When each of ``changes`` was read (epoch seconds)."""
    letters: list[DeadLetter] = field(default_factory=list)
    last_record: float = field(default_factory=time.monotonic)

    def mentioned(self) -> set[str]:
        return {s.last_event_id for s in self.scores if s.last_event_id is not None}


async def read_outputs(settings: Settings, out: Outputs, stop: asyncio.Event) -> None:
    """Read the scores, stage-changes and dead-letter topics into `out` until `stop` is set."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    # partitions assigned rather than topics subscribed: a subscription fails at once when the
    # broker answering the first metadata request does not know a topic yet (a cluster's
    # brokers learn new topics one after the other)
    consumer.assign(
        [
            TopicPartition(settings.topic(spec.name), p)
            for spec in (topics.SCORES, topics.STAGE_CHANGES, topics.DEAD_LETTERS)
            for p in range(settings.topic_partitions)
        ]
    )
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for record in records:
                    out.last_record = time.monotonic()
                    if record.value is None:
                        continue
                    if record.topic.endswith(topics.SCORES.name):
                        score = codec.decode_score(record.value)
                        if isinstance(score, ScoreUpdated):
                            out.scores.append(score)
                    elif record.topic.endswith(topics.STAGE_CHANGES.name):
                        change = codec.decode_stage_change(record.value)
                        if isinstance(change, StageChanged):
                            out.changes.append(change)
                            out.change_arrivals.append(time.time())
                    else:
                        out.letters.append(codec.decode_dead_letter(record.value))
    finally:
        await consumer.stop()


async def group_lag(settings: Settings, group: str | None = None) -> int | None:
    """Records of the source and internal topics the worker group has not committed yet
    (``None``: the group has committed nothing yet)."""
    names = [settings.topic(spec.name) for spec in (*topics.SOURCES, topics.INTERNAL)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group or settings.app_id)
        partitions = [
            TopicPartition(name, p) for name in names for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    if not committed:
        return None
    lag = 0
    for tp, end in ends.items():
        done = committed.get(tp)
        lag += end - (done.offset if done is not None and done.offset >= 0 else 0)
    return lag


async def committed(settings: Settings) -> int:
    """Records of the source topics the worker group has committed (its progress)."""
    names = {settings.topic(spec.name) for spec in topics.SOURCES}
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    except KafkaError:  # no coordinator yet (a broker starting): nothing known committed
        return 0
    finally:
        await admin.close()
    return sum(o.offset for tp, o in offsets.items() if tp.topic in names and o.offset > 0)


async def settle(settings: Settings, out: Outputs, log: Path, *, quiet_s: float = 8) -> None:
    """Wait until the worker group committed every input and published nothing for `quiet_s`."""
    deadline = time.monotonic() + SIZES.settle_s
    while True:
        lag = await group_lag(settings)
        if lag == 0 and time.monotonic() - out.last_record > quiet_s:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the worker did not catch up (lag {lag}):\n" + log.read_text()[-3000:]
            )
        await asyncio.sleep(1)


# ----------------------------------------------------------------------------- counts


@dataclass
class Tally:
    """A scenario's counts, as the RELIABILITY.md table shows them."""

    scenario: str
    events_in: int = 0
    scored: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


async def tally(
    name: str, sim: Simulation, settings: Settings, out: Outputs, *, bad: int = 0
) -> Tally:
    """Counts of a scenario against the offline reference (computed before asserting it).

    ``lost``: expected stage changes never published plus applied events missing from a lead's
    final revision; ``duplicated``: records published more than once (same id and content)
    plus events applied more than once (a final revision above the reference's).
    """
    assert settings.models_path is not None
    from stream.scoring import parse_models

    models = parse_models(settings.models_path.read_text(), source="test models")
    distinct_scores = {(s.lead_id, s.model, s.revision) for s in out.scores}
    distinct_changes = {c.event_id for c in out.changes}
    letters = {(d.source_topic, d.partition, d.offset) for d in out.letters}
    # a revision published again with other content: a crash's redo applied the lead's events
    # in another order than the run it replaced
    contents = {(s.lead_id, s.model, s.revision, s.last_event_id, s.total) for s in out.scores}
    rewritten = len(contents) - len(distinct_scores)
    order = await pipeline.internal_order(settings)
    expected, expected_changes = pipeline.offline_reference(sim, models, order)
    latest = pipeline.latest_scores(out.scores)
    bots = {lead for lead, truth in sim.truth.items() if truth.persona.endswith("_bot")}
    short = extra = 0
    for key, want in expected.items():
        if key[0] in bots:
            continue
        got = latest.get(key)
        have = got.revision if got is not None else 0
        short += max(want.revision - have, 0)
        extra += max(have - want.revision, 0)
    got_changes = {(c.lead_id, c.model, c.to_stage, c.event_id) for c in out.changes}
    want_changes = {
        (c.lead_id, c.model, c.to_stage, c.event_id)
        for c in expected_changes
        if c.lead_id not in bots
    }
    return Tally(
        scenario=name,
        events_in=len(sim.deliveries) + bad,
        scored=len({e for e in out.mentioned()}),
        dead_lettered=len(letters),
        lost=short + len(want_changes - got_changes),
        duplicated=extra
        + len(out.scores)
        - len(distinct_scores)
        + len(out.changes)
        - len(distinct_changes),
        notes={
            "score_records": len(out.scores),
            "stage_changes": len(out.changes),
            "expected_stage_changes": len(want_changes),
            "missing_stage_changes": len(want_changes - got_changes),
            "rewritten_revisions": rewritten,
        },
    )


def check_duplicates_identical(out: Outputs) -> None:
    """A record published twice is the same record: same id, same content."""
    seen: dict[tuple[str, str, int], ScoreUpdated] = {}
    for score in out.scores:
        key = (score.lead_id, score.model, score.revision)
        first = seen.setdefault(key, score)
        assert first.model_dump() == score.model_dump(), (
            "two scores share a revision",
            key,
            first.model_dump(mode="json"),
            score.model_dump(mode="json"),
        )
    changes: dict[str, StageChanged] = {}
    for change in out.changes:
        first_change = changes.setdefault(str(change.event_id), change)
        assert first_change.model_dump() == change.model_dump(), ("two changes, one id", change)


async def check_reference(sim: Simulation, settings: Settings, out: Outputs) -> None:
    """The offline-reference equality of tests/integration/worker/test_pipeline.py."""
    check_duplicates_identical(out)
    assert settings.models_path is not None
    from stream.scoring import parse_models

    models = parse_models(settings.models_path.read_text(), source="test models")
    order = await pipeline.internal_order(settings)
    expected, _ = pipeline.offline_reference(sim, models, order)
    latest = pipeline.latest_scores(out.scores)
    assert set(latest) == set(expected), (
        "the leads and models scored differ: "
        f"only published {sorted(set(latest) - set(expected))[:10]}, "
        f"only in the reference {sorted(set(expected) - set(latest))[:10]}"
    )
    pipeline.check_against_reference(sim, settings, out.scores, out.changes, order)


async def check_accounts(sim: Simulation, settings: Settings) -> None:
    """The account records equal the pure core's (tests/integration/worker/test_pipeline.py,
    ``check_accounts``): each lead's final contribution is the reference's, the account records
    are the core's for the member updates as the accounts received them, and one sent again is
    the same record."""
    await pipeline.check_accounts(sim, settings, await pipeline.internal_order(settings))


def malformed_coordinates(sim: Simulation) -> int:
    return sim.counts()["malformed"]


# ----------------------------------------------------------------------------- results


def results_path() -> Path:
    return Path(os.environ.get("LEADSTREAM_RELIABILITY_RESULTS", REPO / ".run/reliability.jsonl"))


def record(result: Tally) -> None:
    """Append a scenario's counts to the results file (one JSON object per line)."""
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": MODE,
        **asdict(result),
    }
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
    print(f"\nreliability: {json.dumps(line)}", file=sys.stderr)


# ----------------------------------------------------------------------------- processes


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024
