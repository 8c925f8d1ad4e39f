"""`leadstream worker` as a real process against the real broker, with a RocksDB table."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas import codec
from schemas.errors import ErrorKind
from schemas.events import EVENT_TYPES
from schemas.examples import make_event
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings

pytestmark = pytest.mark.integration

LEADS = [f"lead-{n}" for n in range(6)]


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "info"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        finally:
            self.proc = None


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(topic_partitions=4)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    env = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADSTREAM_DATA_DIR": str(settings.data_dir),
        "LEADSTREAM_WEB_ENABLED": "false",
    }
    handle = Worker(env, tmp_path / "worker.log")
    yield handle
    if handle.proc is not None:
        handle.proc.kill()
        handle.proc.wait()


def _event(lead_id: str, n: int) -> bytes:
    return codec.encode(
        make_event(
            "page_viewed",
            event_id=f"{lead_id}-{n}",
            lead_id=lead_id,
            anonymous_id=None,
            path="/blog",
            occurred_at=datetime.now(UTC) - timedelta(minutes=10 - n % 10),
        )
    )


async def _produce(
    settings: Settings, messages: list[tuple[topics.TopicSpec, bytes, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for spec, key, value in messages:
            await producer.send(settings.topic(spec.name), key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def _read_until(
    settings: Settings, spec: topics.TopicSpec, done: object, timeout: float, log: Path
) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(
        settings.topic(spec.name),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(timeout):
            while not done(seen):  # type: ignore[operator]
                batch = await consumer.getmany(timeout_ms=500)
                seen += [orjson.loads(r.value) for rs in batch.values() for r in rs]
    except TimeoutError:
        pytest.fail(
            f"timed out reading {spec.name}: got {seen!r}\nworker log:\n{log.read_text()[-4000:]}"
        )
    finally:
        await consumer.stop()
    return seen


def _latest(
    records: list[dict[str, object]], model: str = "b2b"
) -> dict[object, dict[str, object]]:
    """The latest score record per lead under ``model``."""
    out: dict[object, dict[str, object]] = {}
    for record in records:
        if record.get("type") == "score_updated" and record["model"] == model:
            out[record["lead_id"]] = record
    return out


def _visits(records: list[dict[str, object]]) -> dict[object, float]:
    return {lead: float(str(r["engagement"])) for lead, r in _latest(records).items()}


async def test_worker_scores_in_rocksdb_and_keeps_state_across_restart(
    settings: Settings, worker: Worker
) -> None:
    await ensure_topics(settings)
    worker.start()
    messages = [
        (topics.CLICKSTREAM, lead.encode(), _event(lead, n)) for n in range(3) for lead in LEADS
    ]
    malformed = [b"{not json", b'{"type": "page_viewed"}']
    messages += [(topics.CLICKSTREAM, b"bad", raw) for raw in malformed]
    await _produce(settings, messages)

    # three visits at +2 each (the default b2b model), decayed by minutes: just under 6
    scores = await _read_until(
        settings,
        topics.SCORES,
        lambda s: len(_visits(s)) == len(LEADS) and min(_visits(s).values()) > 5.9,
        120,
        worker.log,
    )
    assert all(5.9 < value <= 6.0 for value in _visits(scores).values())
    letters = await _read_until(
        settings, topics.DEAD_LETTERS, lambda s: len(s) >= 2, 30, worker.log
    )
    decoded = [codec.decode_dead_letter(orjson.dumps(d)) for d in letters]
    assert sorted(d.original for d in decoded) == sorted(malformed)
    assert {d.source_topic for d in decoded} == {settings.topic(topics.CLICKSTREAM.name)}
    assert {d.error_kind for d in decoded} == {ErrorKind.NOT_JSON, ErrorKind.SCHEMA_VIOLATION}

    assert worker.stop() == 0, worker.log.read_text()[-4000:]
    stores = list(settings.data_dir.rglob("leads-*.db"))
    assert stores, f"no RocksDB store under {settings.data_dir}"

    # Restarted, the worker continues from the table's state, not from zero.
    worker.start()
    await _produce(
        settings, [(topics.CLICKSTREAM, lead.encode(), _event(lead, 99)) for lead in LEADS]
    )
    scores = await _read_until(
        settings,
        topics.SCORES,
        lambda s: len(_visits(s)) == len(LEADS) and min(_visits(s).values()) > 7.9,
        120,
        worker.log,
    )
    assert all(7.9 < value <= 8.0 for value in _visits(scores).values())
    revisions = {lead: r["revision"] for lead, r in _latest(scores).items()}
    assert all(int(str(rev)) >= 4 for rev in revisions.values()), revisions
    assert worker.stop() == 0


def _leads_of_partition(settings: Settings, partition: int, count: int) -> list[str]:
    every = list(range(settings.topic_partitions))
    found = (f"bulk-{n}" for n in range(10_000))
    return [
        lead for lead in found if DefaultPartitioner()(lead.encode(), every, every) == partition
    ][:count]


async def test_events_records_carry_a_partitions_events_scored_lead_by_lead_in_order(
    settings: Settings, worker: Worker
) -> None:
    """Several leads of one partition in one events record of the internal topic: each lead is
    scored on its events in the record's order; an event the contract refuses is dead-lettered
    alone. The events the worker reads from its source topics travel the same way."""
    await ensure_topics(settings)
    leads = _leads_of_partition(settings, 2, 3)
    broken = b'{"type":"page_viewed","event_id":"no-time","lead_id":"%s"}' % leads[0].encode()
    values = [_event(lead, n) for n in range(3) for lead in leads]
    values.insert(4, broken)
    internal = settings.topic(topics.INTERNAL.name)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            internal, codec.encode_events(values), key=leads[0].encode(), partition=2
        )
    finally:
        await producer.stop()
    worker.start()

    def last_ids(records: list[dict[str, object]]) -> dict[object, object]:
        return {lead: r["last_event_id"] for lead, r in _latest(records).items()}

    scores = await _read_until(
        settings,
        topics.SCORES,
        lambda s: last_ids(s) == {lead: f"{lead}-2" for lead in leads},
        120,
        worker.log,
    )
    assert all(5.9 < value <= 6.0 for value in _visits(scores).values())  # three visits each
    letters = await _read_until(
        settings, topics.DEAD_LETTERS, lambda s: len(s) >= 1, 30, worker.log
    )
    decoded = [codec.decode_dead_letter(orjson.dumps(d)) for d in letters]
    assert [(d.source_topic, d.error_kind, d.field) for d in decoded] == [
        (internal, ErrorKind.SCHEMA_VIOLATION, "occurred_at")
    ]
    assert orjson.loads(decoded[0].original) == orjson.loads(broken)

    await _produce(
        settings,
        [(topics.CLICKSTREAM, lead.encode(), _event(lead, n)) for n in (3, 4) for lead in leads],
    )
    await _read_until(
        settings,
        topics.SCORES,
        lambda s: last_ids(s) == {lead: f"{lead}-4" for lead in leads},
        120,
        worker.log,
    )
    records = await _read_until(
        settings,
        topics.INTERNAL,
        lambda s: sum(len(r.get("events", ())) for r in s) >= 3 * 3 + 3 * 2,  # type: ignore[arg-type]
        30,
        worker.log,
    )
    assert not [r for r in records if r["type"] in EVENT_TYPES]  # none in a record of its own
    passed = [e["event_id"] for r in records for e in r.get("events", ())]  # type: ignore[attr-defined]
    for lead in leads:
        mine = [i for i in passed if str(i).startswith(f"{lead}-")]
        assert mine == [f"{lead}-{n}" for n in range(5)]  # the record written above, then these
    assert worker.stop() == 0, worker.log.read_text()[-4000:]


_FAULTY_WORKER = """
import sys

from stream.cli import main
from stream.worker import processor


async def fault(self, events):
    raise RuntimeError("injected fault in the processing agent")


processor.LeadProcessor.handle_batch = fault
sys.exit(main(["worker", "--loglevel", "info"]))
"""


async def test_a_crash_of_the_processing_agent_stops_the_worker_with_a_failure(
    settings: Settings, worker: Worker
) -> None:
    """Faust's default restarts a crashed agent inside the process; the worker stops instead
    (exit status 1), for its supervisor to start it again from its committed offsets."""
    await ensure_topics(settings)
    with worker.log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _FAULTY_WORKER], env=worker.env, stdout=out, stderr=out
        )
    try:
        await _produce(settings, [(topics.CLICKSTREAM, b"lead-0", _event("lead-0", 1))])
        for _ in range(240):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(
                "the worker kept running after its agent crashed:\n"
                + worker.log.read_text()[-3000:]
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = worker.log.read_text()
    assert proc.returncode == 1, log[-3000:]
    assert "the processing agent crashed (RuntimeError('injected fault" in log
    assert "Restarting dead" not in log


# aiokafka checks the CRC of every record batch it fetches and raises CorruptRecordException on
# one that does not match; the broker refuses such a batch when it is produced, so the worker
# below takes every batch for corrupt instead (aiokafka's pure-Python records, whose check can
# be replaced): the fetch loop raises aiokafka's own error through Faust's own code.
_CORRUPT_FETCH_WORKER = """
import sys

from aiokafka.record import default_records

default_records._DefaultRecordBatchPy.validate_crc = lambda self: False

from stream.cli import main

sys.exit(main(["worker", "--loglevel", "info"]))
"""


async def _wait_for_exit(proc: subprocess.Popen[bytes], log: Path, what: str) -> int:
    for _ in range(240):
        code = proc.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.5)
    pytest.fail(f"the worker kept running after {what}:\n" + log.read_text()[-3000:])


async def test_a_crash_of_the_kafka_fetch_loop_stops_the_worker_with_a_failure(
    settings: Settings, worker: Worker
) -> None:
    """A worker whose fetch loop (Faust's ``Fetcher``) crashed consumes nothing: it stops, with
    exit status 1 and a line naming the service and the error, for its supervisor to restart
    it."""
    await ensure_topics(settings)
    env = {**worker.env, "AIOKAFKA_NO_EXTENSIONS": "1"}
    with worker.log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CORRUPT_FETCH_WORKER], env=env, stdout=out, stderr=out
        )
    try:
        await _produce(settings, [(topics.CLICKSTREAM, b"lead-0", _event("lead-0", 1))])
        code = await _wait_for_exit(proc, worker.log, "its fetch loop crashed")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = worker.log.read_text()
    assert code == 1, log[-3000:]
    assert (
        "Faust's Fetcher (the Kafka fetch loop) crashed (CorruptRecordException(\"Invalid CRC - "
        f"TopicPartition(topic='{settings.topic(topics.CLICKSTREAM.name)}'"
    ) in log, log[-3000:]
    assert "): the worker stops" in log
    assert "did not stop within" not in log  # Faust's own stop ended it


async def test_a_worker_stopped_by_sigterm_exits_cleanly(
    settings: Settings, worker: Worker
) -> None:
    await ensure_topics(settings)
    worker.start()
    for _ in range(240):
        if "[^Worker]: Ready" in worker.log.read_text():
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("the worker did not start:\n" + worker.log.read_text()[-3000:])
    await _produce(settings, [(topics.CLICKSTREAM, b"lead-0", _event("lead-0", 1))])
    await _read_until(settings, topics.SCORES, lambda s: len(s) >= 1, 120, worker.log)
    assert worker.stop() == 0, worker.log.read_text()[-4000:]
    assert "crashed (" not in worker.log.read_text()
