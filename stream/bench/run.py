"""Run the benchmark: every measurement in one run, on one broker, on the same data.

Order (each step uses what the previous left behind):

1. Traffic: a simulation copied up to N records, loaded into the source topics of run ``A``.
2. Throughput on run ``A``'s topics: (a) the raw aiokafka loop, (b) the bare Faust agent,
   (c) the naive one-write-per-event agent, (c') the Quix Streams peer when it is installed
   (``stream.bench.quix_peer``), (d) the full pipeline worker (RocksDB tables), and (d') the
   same worker with accounts off (``LEADSTREAM_ACCOUNTS_ENABLED=false``) on the same records
   loaded again into run ``C``'s topics, after the state size and before recovery: the cost of
   the account path is the difference of the two rows.
   Workers are timed from the first offset their consumer group commits to the moment
   every source record is committed (and the internal topic is drained), polled every 0.25 s.
   Over the same interval the CPU time of the measured process (the bench itself for the raw
   loop) and of the broker (when it is a local process, ``stream.bench.cpu``) is read, and
   reported per record.
3. Latency: the pipeline worker of (d), idle and caught up, gets fresh leads' events at fixed
   offered loads (shares of (d)'s measured rate); each event's send time is matched with the
   score and stage-change records that name it (``last_event_id`` / ``triggering_event_id``)
   when this process consumes them.
4. State size: the ``leads`` changelog read back (value bytes, decoded ``LeadState`` memory
   measured with tracemalloc on a sample) and the worker's RocksDB directory after a clean stop.
5. Recovery: the changelog is filled up to M leads with copies of the run's real lead states
   under new ids; a worker with an empty data directory starts (a lost machine), then is killed
   and restarted on its own directory (a crashed process: its stores are restored from the
   changelogs, see ``stream.faust_guards.local_stores``), then stopped and restarted (its stores
   kept). Recovery time: from launching the process to the outputs of one probe event per partition.
6. Scaling: the same N records loaded into run ``B``'s topics, processed by two workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from stream import native
from stream.bench import baselines
from stream.bench.cpu import SELF, Broker, CpuMeter, find_broker
from stream.bench.data import Traffic, build_traffic, keys_per_partition, produce
from stream.kafka import clients, topics
from stream.kafka.admin import changelog_topic as table_changelog
from stream.kafka.admin import ensure_topics
from stream.settings import Settings
from stream.simulate.traffic import Delivery

Log = Callable[[str], None]

QUIX_ROW = "quix peer"
QUIX_SKIPPED = f"{QUIX_ROW}: skipped (pip install '.[bench]')"


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how much."""

    events: int = 100_000
    state_leads: int = 1_000_000
    partitions: int = 8
    loads: tuple[float, ...] = (0.25, 0.5, 0.75)
    latency_rates: tuple[float, ...] = ()
    """Offered rates (records/s) for the latency phases instead of ``loads``' shares of the
    pipeline's measured rate: runs on a shared machine, whose maxima differ, then compare the
    same offered rate."""
    latency_seconds: float = 20.0
    two_workers: bool = True
    recovery: bool = True
    restart_recovery: bool = True
    """Also restart the recovered worker on its own data directory (after a kill, a stop)."""
    standby_recovery: bool = True
    quick: bool = False
    work_dir: Path = Path(".run/bench")
    timeout: float = 900.0

    @classmethod
    def quick_mode(cls, work_dir: Path) -> BenchConfig:
        return cls(
            # enough records that each Faust run spans several two-second commit intervals (it
            # is timed from its first commit to its last)
            events=20_000,
            state_leads=10_000,
            loads=(0.5,),
            latency_seconds=5.0,
            quick=True,
            work_dir=work_dir,
            timeout=180.0,
        )


@dataclass
class Results:
    """Everything measured; ``to_json`` is what ``--json`` writes."""

    config: dict[str, Any]
    machine: dict[str, Any]
    throughput: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    recovery: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    scaling: dict[str, Any] = field(default_factory=dict)
    not_measured: list[str] = field(default_factory=list)

    def rate(self, name: str) -> float | None:
        for row in self.throughput:
            if row["name"] == name:
                return float(row["events_per_s"])
        return None

    def ratios(self) -> dict[str, float | None]:
        full, bare, naive = self.rate("pipeline"), self.rate("bare"), self.rate("naive")
        quix, batched = self.rate(QUIX_ROW), self.rate("batched")
        plain = self.rate("pipeline, accounts off")
        return {
            "pipeline/bare": None if not (full and bare) else round(full / bare, 3),
            "pipeline/naive": None if not (full and naive) else round(full / naive, 3),
            "pipeline/batched": None if not (full and batched) else round(full / batched, 3),
            f"pipeline/{QUIX_ROW}": None if not (full and quix) else round(full / quix, 3),
            "batched/bare": None if not (batched and bare) else round(batched / bare, 3),
            "pipeline/pipeline without accounts": None
            if not (full and plain)
            else round(full / plain, 3),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "machine": self.machine,
            "throughput": self.throughput,
            "ratios": self.ratios(),
            "latency": self.latency,
            "recovery": self.recovery,
            "state": self.state,
            "scaling": self.scaling,
            "not_measured": self.not_measured,
        }


# ------------------------------------------------------------------------------ processes


class WorkerProcess:
    """A worker subprocess (the pipeline or a baseline) with its own log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.send_signal(signal.SIGKILL)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


def _env(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **extra,
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADSTREAM_DATA_DIR": str(data_dir),
        "LEADSTREAM_STORE": "rocksdb",
        "LEADSTREAM_WEB_ENABLED": "false",
        "LEADSTREAM_COLLECTOR_ENABLED": "false",
        "LEADSTREAM_PROJECTOR_ENABLED": "false",
        "LEADSTREAM_STANDBY_REPLICAS": str(settings.standby_replicas),
    }


def pipeline_worker(
    settings: Settings,
    data_dir: Path,
    log: Path,
    loglevel: str = "warning",
    *,
    accounts: bool = True,
) -> WorkerProcess:
    argv = [sys.executable, "-m", "stream.cli", "worker", "--loglevel", loglevel]
    extra = {} if accounts else {"LEADSTREAM_ACCOUNTS_ENABLED": "false"}
    return WorkerProcess(argv, _env(settings, data_dir, **extra), log)


def baseline_worker(settings: Settings, kind: str, data_dir: Path, log: Path) -> WorkerProcess:
    argv = [sys.executable, "-m", "stream.bench.baselines", kind]
    return WorkerProcess(argv, _env(settings, data_dir), log)


def quix_worker(settings: Settings, data_dir: Path, log: Path) -> WorkerProcess:
    argv = [sys.executable, "-m", "stream.bench.quix_peer"]
    return WorkerProcess(argv, _env(settings, data_dir), log)


# ------------------------------------------------------------------------------ Kafka helpers


async def end_offsets(settings: Settings, names: Iterable[str]) -> dict[TopicPartition, int]:
    async with clients.consumer(settings, group_id=None) as consumer:
        parts = [TopicPartition(n, p) for n in names for p in range(settings.topic_partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts)
        return ends


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # the group's coordinator is not known yet
        return {}
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def create_topics(settings: Settings, names: Iterable[str], *, compact: bool = False) -> None:
    admin = await clients.admin(settings)
    configs = {"cleanup.policy": "compact"} if compact else {}
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=n,
                num_partitions=settings.topic_partitions,
                replication_factor=1,
                topic_configs=configs,
            )
            for n in names
            if n not in existing
        ]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def delete_topics(settings: Settings, prefixes: Iterable[str]) -> None:
    admin = await clients.admin(settings)
    try:
        names = [n for n in await admin.list_topics() if any(n.startswith(p) for p in prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def drain(
    settings: Settings,
    worker_alive: Callable[[], bool],
    limit_s: float,
    *,
    internal: bool,
    meter: CpuMeter | None = None,
) -> tuple[int, float]:
    """Wait until the group has committed every source record; (events timed, seconds).

    Timed from the first poll that sees a commit to the first poll that sees all of them
    (and, for the pipeline, the internal topic drained too); ``meter`` reads the CPU time
    used by its processes over the same interval.
    """
    sources = [settings.topic(spec.name) for spec in topics.SOURCES]
    ends = await end_offsets(settings, sources)
    total = sum(ends.values())
    internal_topic = settings.topic(topics.INTERNAL.name)
    admin = await clients.admin(settings)
    try:
        deadline = time.monotonic() + limit_s
        first: tuple[float, int] | None = None
        while time.monotonic() < deadline:
            if not worker_alive():
                raise RuntimeError("the worker exited during the run")
            done = await committed(admin, settings.app_id)
            now = time.perf_counter()
            source_done = sum(o for tp, o in done.items() if tp in ends)
            if first is None and source_done > 0:
                first = (now, source_done)
                if meter is not None:
                    meter.start()
            if source_done >= total:
                if internal:
                    internal_ends = await end_offsets(settings, [internal_topic])
                    if any(done.get(tp, 0) < end for tp, end in internal_ends.items()):
                        await asyncio.sleep(0.25)
                        continue
                assert first is not None
                if meter is not None:
                    meter.stop()
                return total - first[1], now - first[0]
            await asyncio.sleep(0.25)
        raise TimeoutError(f"not drained in {limit_s:.0f} s")
    finally:
        await admin.close()


# ------------------------------------------------------------------------------ latency


def _standby_lines(log: Path) -> int:
    """How often a worker's log says its standby replicas caught up."""
    if not log.exists():
        return 0
    return log.read_text(errors="replace").count("standby replicas ready:")


def _ids(value: bytes) -> tuple[str, str] | None:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not doc.get("lead_id") or not doc.get("event_id"):
        return None
    return str(doc["lead_id"]), str(doc["event_id"])


def _percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def pct(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "n": len(ordered),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * ordered[-1], 1),
        "mean_ms": round(1000 * statistics.fmean(ordered), 1),
    }


_EVENTS_RECORD = b'{"type":"events"'

SEGMENTS = ("to_internal", "internal_to_output", "output_to_read")
"""Where an event's wait for its stage change goes, from the records' own timestamps (the
time each was produced, on this machine's clock): sent → passed on to ``leads.internal.v1``
(the source trip: fetch, batch window, decode, send), → the stage change produced (the
internal trip), → read by the bench's consumer (delivery and the reader's fetch)."""


class _Receiver:
    """Matches output records to the send time of the event they name, and the internal
    records the worker passed the event on in, to split each wait into `SEGMENTS`."""

    def __init__(self, consumer: AIOKafkaConsumer, stage_topic: str, internal_topic: str) -> None:
        self.consumer = consumer
        self.stage_topic = stage_topic
        self.internal_topic = internal_topic
        self.sent_at: dict[tuple[str, str], float] = {}
        self.samples: dict[bool, list[float]] = {False: [], True: []}
        self.seen: dict[bool, set[tuple[str, str]]] = {False: set(), True: set()}
        self.passed_at: dict[tuple[str, str], float] = {}
        self.stage_times: list[tuple[tuple[str, str], float, float, float]] = []
        """(event, sent, stage change produced, read) of every matched stage change."""
        self.sending = True

    async def run(self) -> None:
        last_batch = time.monotonic()
        while self.sending or time.monotonic() - last_batch < 2.0:
            batch = await self.consumer.getmany(timeout_ms=20)
            now = time.time()
            if batch:
                last_batch = time.monotonic()
            for tp, items in batch.items():
                if tp.topic == self.internal_topic:
                    for item in items:
                        self.passed(item.value, item.timestamp / 1000)
                    continue
                stage = tp.topic == self.stage_topic
                for item in items:
                    if item.value is not None:
                        self.record(stage, orjson.loads(item.value), now, item.timestamp / 1000)

    def passed(self, value: bytes | None, at: float) -> None:
        """An internal record: the first time each event it carries was passed on."""
        if not value:
            return
        if value.startswith(_EVENTS_RECORD):
            docs = orjson.loads(value).get("events") or []
        else:
            docs = [orjson.loads(value)]
        for doc in docs:
            if isinstance(doc, dict) and doc.get("lead_id") and doc.get("event_id"):
                self.passed_at.setdefault((str(doc["lead_id"]), str(doc["event_id"])), at)

    def record(self, stage: bool, doc: dict[str, Any], now: float, produced: float = 0.0) -> None:
        key = (doc.get("lead_id"), doc.get("triggering_event_id" if stage else "last_event_id"))
        at = self.sent_at.get(key)  # type: ignore[arg-type]
        if at is not None and key not in self.seen[stage]:
            self.seen[stage].add(key)  # type: ignore[arg-type]
            self.samples[stage].append(now - at)
            if stage:
                self.stage_times.append((key, at, produced, now))  # type: ignore[arg-type]

    def segments(self) -> dict[str, dict[str, float | int]]:
        """Percentiles of each of `SEGMENTS` over the stage changes whose event's internal
        record was read (negative spans, from millisecond timestamps, count as 0)."""
        spans: dict[str, list[float]] = {name: [] for name in SEGMENTS}
        for key, sent, produced, read in self.stage_times:
            passed = self.passed_at.get(key)
            if passed is None:
                continue
            for name, span in zip(
                SEGMENTS, (passed - sent, produced - passed, read - produced), strict=True
            ):
                spans[name].append(max(0.0, span))
        return {name: _percentiles(values) for name, values in spans.items()}


async def latency_at(
    settings: Settings, records: list[Delivery], rate: float, seconds: float
) -> dict[str, Any]:
    """Send ``records`` at ``rate`` per second; event → score / stage change latencies."""
    wanted = records[: max(1, int(rate * seconds))]
    ids = [_ids(d.value) for d in wanted]
    internal = settings.topic(topics.INTERNAL.name)
    out_topics = [settings.topic(topics.SCORES.name), settings.topic(topics.STAGE_CHANGES.name)]
    consumer = await clients.consumer(settings, group_id=None, fetch_max_wait_ms=5)
    producer = await clients.producer(settings, acks=1, linger_ms=1)
    receiver = _Receiver(consumer, out_topics[1], internal)
    try:
        parts = [
            TopicPartition(n, p)
            for n in [*out_topics, internal]
            for p in range(settings.topic_partitions)
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        receiving = asyncio.create_task(receiver.run())
        started = time.perf_counter()
        i = 0
        while i < len(wanted):
            due = min(len(wanted), int((time.perf_counter() - started) * rate) + 1)
            while i < due:
                delivery = wanted[i]
                key = ids[i]
                if key is not None:
                    receiver.sent_at.setdefault(key, time.time())
                await producer.send(
                    settings.topic(delivery.topic), key=delivery.key, value=delivery.value
                )
                i += 1
            await asyncio.sleep(0.002)
        await producer.flush()
        elapsed = time.perf_counter() - started
        receiver.sending = False
        await asyncio.wait_for(receiving, timeout=120)
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "offered_per_s": round(rate),
        "sent": len(wanted),
        "send_seconds": round(elapsed, 2),
        "event_to_score": _percentiles(receiver.samples[False]),
        "event_to_stage_change": _percentiles(receiver.samples[True]),
        "stage_change_segments": receiver.segments(),
    }


# ------------------------------------------------------------------------------ state


def changelog_topic(settings: Settings, table: str = "leads") -> str:
    return table_changelog(settings, table)


async def create_changelogs(settings: Settings, tables: Iterable[str]) -> None:
    """Create the tables' changelog topics before a worker starts (as Faust would, but
    before its first write: a worker that writes before its consumer knows the changelog's
    partitions fails with ``PartitionsMismatch``)."""
    await create_topics(settings, [changelog_topic(settings, t) for t in tables], compact=True)


async def read_changelog(settings: Settings) -> dict[bytes, bytes]:
    """The latest value of every key of the ``leads`` table's changelog."""
    name = changelog_topic(settings)
    consumer = await clients.consumer(
        settings,
        group_id=None,
        # see stream.readmodel.projector.rebuild: a reset may land late
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    latest: dict[bytes, bytes] = {}
    try:
        parts = [TopicPartition(name, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        deadline = time.monotonic() + 600
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: not read to its end offsets in 600 s")
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for items in batch.values():
                for item in items:
                    if item.key is None:
                        continue
                    if item.value is None:
                        latest.pop(item.key, None)
                    else:
                        latest[item.key] = item.value
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return latest


def state_sizes(values: list[bytes], models_path: Path | None) -> dict[str, Any]:
    """Stored bytes and decoded-object memory per lead (a sample of up to 2,000 leads)."""
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import LeadState  # noqa: PLC0415

    models = load_model_file(models_path) if models_path else load_default_models()
    sample = [orjson.loads(v) for v in values[:2000]]
    documents = [doc["s"] for doc in sample if isinstance(doc, dict) and doc.get("s")]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    decoded = [LeadState.from_dict(doc, models) for doc in documents]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del decoded
    n_models = len(models.ids)
    value_bytes = statistics.fmean(len(v) for v in values) if values else 0.0
    in_memory = (after - before) / len(documents) if documents else 0.0
    return {
        "leads": len(values),
        "models": n_models,
        "changelog_value_bytes_per_lead": round(value_bytes),
        "changelog_value_bytes_per_lead_per_model": round(value_bytes / n_models),
        "decoded_state_bytes_per_lead": round(in_memory),
        "decoded_state_bytes_per_lead_per_model": round(in_memory / n_models),
    }


def disk_bytes(data_dir: Path, table: str = "leads") -> int:
    """Bytes of the table's RocksDB directories under a worker's data directory."""
    total = 0
    for path in data_dir.rglob("*"):
        if path.is_file() and any(part.startswith(f"{table}-") for part in path.parts):
            total += path.stat().st_size
    return total


async def fill_changelog(
    settings: Settings, states: dict[bytes, bytes], target: int
) -> tuple[int, float]:
    """Add copies of ``states`` under new lead ids until the table holds ``target`` leads."""
    originals = list(states.items())
    missing = max(0, target - len(originals))

    def records() -> Iterator[Delivery]:
        name = changelog_topic(settings)
        for i in range(missing):
            key, value = originals[i % len(originals)]
            new_key = key.replace(b"lead-", f"lead-r{i:x}x".encode(), 1)
            yield Delivery(name, new_key, value)

    return await produce(settings, records(), rename_topic=False)


async def wait_probes(
    settings: Settings, probe_ids: list[str], started_at: float, limit_s: float
) -> float:
    """Seconds from ``started_at`` (monotonic) until every probe lead has an output."""
    out_topics = [settings.topic(topics.SCORES.name), settings.topic(topics.STAGE_CHANGES.name)]
    consumer = await clients.consumer(
        settings, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=20
    )
    waiting = set(probe_ids)
    try:
        parts = [TopicPartition(n, p) for n in out_topics for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + limit_s
        while waiting and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for items in batch.values():
                for item in items:
                    if item.value is not None and b'"lead_id":"lead-probe' in item.value:
                        waiting.discard(orjson.loads(item.value).get("lead_id"))
        if waiting:
            raise TimeoutError(f"{len(waiting)} probes without output after {limit_s:.0f} s")
        return time.monotonic() - started_at
    finally:
        await consumer.stop()


def probe_records(
    traffic: Traffic, settings: Settings, tag: str
) -> tuple[list[str], list[Delivery]]:
    """A ``profile_updated`` event for a new lead on every partition."""
    template = next(
        d for d in traffic.base if d.key is not None and b'"type":"profile_updated"' in d.value
    )
    assert template.key is not None
    ids = keys_per_partition(f"lead-probe{tag}-", settings.topic_partitions)
    original_event = str(orjson.loads(template.value)["event_id"]).encode()
    records = [
        Delivery(
            template.topic,
            lead.encode(),
            template.value.replace(template.key, lead.encode()).replace(
                original_event, str(uuid.uuid4()).encode()
            ),
        )
        for lead in ids
    ]
    return ids, records


# ------------------------------------------------------------------------------ the run


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "scoring_core": native.BUILD.describe(),
    }


async def run(config: BenchConfig, base: Settings, log: Log) -> Results:
    """Every measurement of ``config``; topics and data are deleted afterwards."""
    bench = _Bench(config, base, log)
    try:
        await bench.run()
    except BaseException:
        log(f"failed; worker logs kept in {bench.work}")
        raise
    else:
        shutil.rmtree(bench.work, ignore_errors=True)
    finally:
        for worker in bench.workers:
            worker.stop(kill=True)
        with contextlib.suppress(Exception):
            await delete_topics(base, [f"bench{bench.token}", f"bench-{bench.token}"])
    return bench.results


class _Bench:
    """One benchmark run: its names, workers, traffic and results."""

    def __init__(self, config: BenchConfig, base: Settings, log: Log) -> None:
        self.config = config
        self.base = base
        self.log = log
        self.token = uuid.uuid4().hex[:8]
        self.work = config.work_dir / self.token
        self.work.mkdir(parents=True, exist_ok=True)
        self.workers: list[WorkerProcess] = []
        self.results = Results(
            config={
                "events": config.events,
                "state_leads": config.state_leads,
                "partitions": config.partitions,
                "loads": list(config.loads),
                "latency_rates": list(config.latency_rates),
                "latency_seconds": config.latency_seconds,
                "quick": config.quick,
            },
            machine=machine(),
        )
        self.traffic: Traffic | None = None
        self.records: list[Delivery] = []
        self.broker: Broker = find_broker(base.kafka_bootstrap)
        if self.broker.pid is None:
            self.results.not_measured.append(f"broker CPU: {self.broker.reason}")
        self.results.machine["broker_pid"] = self.broker.pid

    def settings_for(self, run_name: str, app: str) -> Settings:
        return self.base.model_copy(
            update={
                "app_id": f"bench-{self.token}-{app}",
                "topic_prefix": f"bench{self.token}{run_name}.",
                "topic_partitions": self.config.partitions,
            }
        )

    def spawn(self, worker: WorkerProcess) -> WorkerProcess:
        self.workers.append(worker)
        worker.start()
        return worker

    def meter(self, workers: Iterable[WorkerProcess]) -> CpuMeter:
        """CPU of ``workers`` (their pids read when the timed interval starts) and the broker."""
        procs = list(workers)
        return CpuMeter(lambda: [w.pid for w in procs if w.pid is not None], self.broker.pid)

    def row(self, name: str, what: str, count: int, secs: float, meter: CpuMeter) -> None:
        rate = count / secs if secs > 0 else 0.0
        cpu = meter.row(count)
        self.results.throughput.append(
            {
                "name": name,
                "what": what,
                "events": count,
                "seconds": round(secs, 2),
                "events_per_s": round(rate),
                **cpu,
            }
        )
        self.log(
            f"{name}: {count:,} records in {secs:.1f} s = {rate:,.0f}/s; CPU µs/record: "
            f"worker {_cell(cpu['worker_cpu_us_per_record'])}, "
            f"broker {_cell(cpu['broker_cpu_us_per_record'])}"
        )

    async def run(self) -> None:
        started = time.perf_counter()
        config = self.config
        self.log(f"{native.BUILD.describe()}; building traffic for {config.events:,} records")
        self.traffic = build_traffic(config.events)
        self.records = list(self.traffic.copies(config.events))
        run_a = self.settings_for("a", "raw")
        await ensure_topics(run_a)
        sent, seconds = await produce(run_a, self.records)
        self.log(f"loaded {sent:,} records in {seconds:.1f} s ({sent / seconds:,.0f}/s)")
        await self.baselines(run_a)
        full = self.settings_for("a", "full")
        worker = await self.pipeline(full)
        await self.latency(full, worker)
        worker.stop()
        states = await self.state(full)
        await self.pipeline_without_accounts()
        if config.recovery and states:
            total = await self.recovery(full, states)
            if config.standby_recovery:
                await self.standby_recovery(full, total)
        if config.two_workers:
            await self.two_workers()
        self.results.config["wall_seconds"] = round(time.perf_counter() - started, 1)

    async def baselines(self, run_a: Settings) -> None:
        """(a) the raw loop, (b) the bare agent, (c) the naive agent, on run A's topics."""
        await create_topics(run_a, [baselines.output_topic(run_a, "raw")])
        meter = CpuMeter(lambda: [SELF], self.broker.pid)
        count, secs = await baselines.raw_loop(run_a, len(self.records), self.config.timeout, meter)
        self.row("raw", "aiokafka consume → decode → produce, no state", count, secs, meter)
        for kind, what in (
            ("bare", "Faust agent: decode → produce, no state"),
            ("naive", "Faust agent: decode → 1 table write → produce, per event"),
            ("batched", "Faust agent with the guards: decode → produce, in batches"),
        ):
            settings = self.settings_for("a", kind)
            await create_topics(settings, [baselines.output_topic(settings, kind)])
            await create_changelogs(settings, ["bench-counts"])
            worker = self.spawn(
                baseline_worker(settings, kind, self.work / kind, self.work / f"{kind}.log")
            )
            meter = self.meter([worker])
            count, secs = await drain(
                settings, worker.alive, self.config.timeout, internal=False, meter=meter
            )
            worker.stop()
            self.row(kind, what, count, secs, meter)
        await self.quix_peer()

    async def quix_peer(self) -> None:
        """The Quix Streams peer (``stream.bench.quix_peer``) on run A's topics, if installed."""
        from stream.bench import quix_peer  # noqa: PLC0415  (imports Quix only to run it)

        if not quix_peer.available():
            self.log(QUIX_SKIPPED)
            self.results.config["quix_peer"] = "skipped: Quix Streams is not installed"
            return
        settings = self.settings_for("a", "quix")
        data_dir = self.work / "quix"
        peer = quix_peer.peer_settings(settings, data_dir / "quix")
        self.results.config["quix_peer"] = peer
        self.log(f"{QUIX_ROW} settings: {peer}")
        await create_topics(settings, [quix_peer.output_topic(settings)])
        worker = self.spawn(quix_worker(settings, data_dir, self.work / "quix.log"))
        meter = self.meter([worker])
        count, secs = await drain(
            settings, worker.alive, self.config.timeout, internal=False, meter=meter
        )
        worker.stop()
        what = "Quix Streams app: decode → decayed score in its RocksDB state → produce, per event"
        self.row(QUIX_ROW, what, count, secs, meter)
        outputs = await end_offsets(settings, [quix_peer.output_topic(settings)])
        self.results.throughput[-1]["outputs"] = sum(outputs.values())

    async def pipeline(self, full: Settings) -> WorkerProcess:
        """(d) the pipeline worker on run A's topics; left running for the latency runs."""
        await create_changelogs(full, ["leads", "identities", "accounts"])
        worker = self.spawn(pipeline_worker(full, self.work / "full", self.work / "full.log"))
        meter = self.meter([worker])
        count, secs = await drain(
            full, worker.alive, self.config.timeout, internal=True, meter=meter
        )
        self.row(
            "pipeline",
            "leadstream worker: decode, internal topic, identity, 2 models, accounts, state, "
            "outputs",
            count,
            secs,
            meter,
        )
        accounts = await end_offsets(full, [full.topic(topics.ACCOUNT_SCORES.name)])
        self.results.throughput[-1]["account_score_records"] = sum(accounts.values())
        return worker

    async def pipeline_without_accounts(self) -> None:
        """(d') the pipeline worker with accounts off, on run C's topics: the same records,
        loaded again (run A's internal topic holds the first pipeline worker's messages)."""
        settings = self.settings_for("c", "noacct")
        await ensure_topics(settings)
        await create_changelogs(settings, ["leads", "identities"])
        sent, seconds = await produce(settings, self.records)
        self.log(f"loaded {sent:,} records for the worker without accounts in {seconds:.1f} s")
        worker = self.spawn(
            pipeline_worker(
                settings, self.work / "noacct", self.work / "noacct.log", accounts=False
            )
        )
        meter = self.meter([worker])
        count, secs = await drain(
            settings, worker.alive, self.config.timeout, internal=True, meter=meter
        )
        worker.stop()
        self.row(
            "pipeline, accounts off",
            "the same worker with LEADSTREAM_ACCOUNTS_ENABLED=false",
            count,
            secs,
            meter,
        )

    async def latency(self, full: Settings, worker: WorkerProcess) -> None:
        """Event → output latency at shares of the pipeline's measured rate, and the worker's
        CPU per record and share of one core while it is offered that rate."""
        assert self.traffic is not None
        max_rate = self.results.rate("pipeline") or 1.0
        rates = self.config.latency_rates or tuple(max_rate * s for s in self.config.loads)
        for i, rate in enumerate(rates):
            share = rate / max_rate
            count = int(rate * self.config.latency_seconds) + 1
            fresh = list(self.traffic.copies(count, tag=f"l{i}"))
            meter = self.meter([worker])
            meter.start()
            measured = await latency_at(full, fresh, rate, self.config.latency_seconds)
            meter.stop()
            measured.update(meter.row(measured["sent"]))
            busy = meter.worker_seconds
            measured["worker_busy"] = (
                None
                if busy is None or not measured["send_seconds"]
                else round(busy / measured["send_seconds"], 2)
            )
            measured["share_of_max"] = round(share, 3)
            measured["fixed_rate"] = bool(self.config.latency_rates)
            self.results.latency.append(measured)
            self.log(f"latency at {share:.0%} ({rate:,.0f}/s): {measured['event_to_stage_change']}")

    async def state(self, full: Settings) -> dict[bytes, bytes]:
        """Bytes per lead: changelog values, decoded objects, RocksDB after a clean stop."""
        states = await read_changelog(full)
        result = state_sizes(list(states.values()), full.models_path)
        on_disk = disk_bytes(self.work / "full")
        leads = max(1, len(states))
        result["rocksdb_bytes_per_lead_after_run"] = round(on_disk / leads)
        result["rocksdb_bytes_per_lead_per_model_after_run"] = round(
            on_disk / leads / result["models"]
        )
        self.results.state = result
        self.log(f"state: {result}")
        return states

    async def recovery(self, full: Settings, states: dict[bytes, bytes]) -> int:
        """A worker coming back with M leads: on an empty disk, then on its own data directory
        after a SIGKILL (its stores are not trusted: restored from the changelogs) and after a
        clean stop (its stores kept). Returns M."""
        assert self.traffic is not None
        sent, seconds = await fill_changelog(full, states, self.config.state_leads)
        total = len(states) + sent
        self.log(f"changelog filled to {total:,} leads in {seconds:.1f} s")
        self.results.state["leads_for_recovery"] = total
        cases = [("empty data directory (lost machine)", False)]
        if self.config.restart_recovery:
            cases.append(("own data directory after SIGKILL (crashed process)", True))
            cases.append(("own data directory after SIGTERM (restart)", False))
        data_dir = self.work / "recovered"
        worker: WorkerProcess | None = None
        for i, (case, kill_before) in enumerate(cases):
            if worker is not None:
                worker.stop(kill=kill_before)
            ids, probes = probe_records(self.traffic, full, f"r{i}")
            worker = self.spawn(pipeline_worker(full, data_dir, self.work / f"recovery{i}.log"))
            await produce(full, probes)
            secs = await wait_probes(full, ids, worker.started_at, self.config.timeout)
            self.results.recovery.append(
                {"case": case, "leads": total, "standby": False, "seconds": round(secs, 2)}
            )
            self.log(f"recovery, {case}: {secs:.1f} s for {total:,} leads")
        if worker is not None:
            worker.stop()
        on_disk = disk_bytes(data_dir)
        models = self.results.state["models"]
        self.results.state["rocksdb_bytes_per_lead_after_recovery"] = round(on_disk / total)
        self.results.state["rocksdb_bytes_per_lead_per_model_after_recovery"] = round(
            on_disk / total / models
        )
        return total

    async def standby_recovery(self, full: Settings, total: int) -> None:
        """Two workers keeping one standby replica of each table; one of them stopped, then
        lost (SIGKILL): seconds from the loss until every partition answers again. A lost
        worker's partitions move only once the group gives up on it (the session timeout)."""
        assert self.traffic is not None
        settings = full.model_copy(update={"standby_replicas": 1})
        dirs = [self.work / "recovered", self.work / "standby"]

        def worker(i: int) -> WorkerProcess:
            log = self.work / f"standby{i}.log"
            return self.spawn(pipeline_worker(settings, dirs[i], log, loglevel="info"))

        pair = [worker(0), worker(1)]
        seen = [0, 0]
        cases = [
            ("standby replica, the other worker stopped (leaves the group)", False),
            (
                "standby replica, the other worker lost (SIGKILL; includes the "
                f"{settings.session_timeout_s:g} s session timeout)",
                True,
            ),
        ]
        for i, (case, kill) in enumerate(cases):
            patience = self.standby_patience(first=i == 0)
            ready_in = await self.wait_standbys(pair, seen, patience)
            if ready_in is None:
                self.log(f"standby replicas not announced ready in {patience:.0f} s; measuring")
            else:
                self.log(f"standby replicas ready {ready_in:.1f} s after the workers (re)started")
            ids, probes = probe_records(self.traffic, settings, f"s{i}")
            began = time.monotonic()
            pair[0].stop(kill=kill)
            await produce(settings, probes)
            secs = await wait_probes(settings, ids, began, self.config.timeout)
            self.results.recovery.append(
                {
                    "case": case,
                    "leads": total,
                    "standby": True,
                    "seconds": round(secs, 2),
                    "standby_ready_announced": ready_in is not None,
                }
            )
            self.log(f"recovery, {case}: {secs:.1f} s for {total:,} leads")
            if i + 1 < len(cases):
                seen = [_standby_lines(w.log) for w in pair]
                pair[0] = worker(0)
        for w in pair:
            w.stop()

    def standby_patience(self, *, first: bool) -> float:
        """How long to wait for standby replicas to be announced ready: 120 s, plus twice the
        empty-disk recovery when the workers start (a worker's replicas then read about as
        much as a full restore; a worker restarted after a clean stop keeps its stores)."""
        restores = [r["seconds"] for r in self.results.recovery if not r["standby"]]
        extra = 2 * restores[0] if first and restores else 0.0
        return min(self.config.timeout, 120.0 + extra)

    async def wait_standbys(
        self, pair: list[WorkerProcess], seen: list[int], patience: float
    ) -> float | None:
        """Seconds until every worker of ``pair`` logged its standby replicas ready more often
        than ``seen`` (once per assignment); ``None`` if that did not happen within
        ``patience`` seconds (a rebalance that gave a worker no standby partitions says
        nothing)."""
        started = max(w.started_at for w in pair)
        deadline = time.monotonic() + patience
        while any(_standby_lines(w.log) <= n for w, n in zip(pair, seen, strict=True)):
            if not all(w.alive() for w in pair):
                raise RuntimeError(f"a worker stopped; see {pair[0].log} and {pair[1].log}")
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def two_workers(self) -> None:
        """The same records on run B's topics, two pipeline workers in one group."""
        run_b = self.settings_for("b", "full2")
        await ensure_topics(run_b)
        await create_changelogs(run_b, ["leads", "identities", "accounts"])
        sent, seconds = await produce(run_b, self.records)
        self.log(f"loaded {sent:,} records for two workers in {seconds:.1f} s")
        pair = [
            pipeline_worker(run_b, self.work / f"two{i}", self.work / f"two{i}.log")
            for i in range(2)
        ]
        for w in pair:
            self.spawn(w)
        meter = self.meter(pair)
        count, secs = await drain(
            run_b,
            lambda: all(w.alive() for w in pair),
            self.config.timeout,
            internal=True,
            meter=meter,
        )
        for w in pair:
            w.stop()
        self.row("pipeline x2", "two leadstream workers, same group", count, secs, meter)
        one, two = self.results.rate("pipeline"), self.results.rate("pipeline x2")
        self.results.scaling = {
            "one_worker_per_s": one,
            "two_workers_per_s": two,
            "ratio": None if not (one and two) else round(two / one, 3),
        }


# ------------------------------------------------------------------------------ output


def _segment_lines(latency: list[dict[str, Any]]) -> list[str]:
    """The latency runs' stage-change waits split into `SEGMENTS`, as a Markdown table."""
    segmented = [r for r in latency if r.get("stage_change_segments")]
    if not segmented:
        return []
    lines = [
        "",
        "| offered load | stage changes: sent → passed on p50 / p99 ms "
        "| passed on → stage change produced | produced → read |",
        "| --- | --- | --- | --- |",
    ]
    for r in segmented:
        spans = []
        for name in SEGMENTS:
            p = r["stage_change_segments"].get(name) or {}
            spans.append("no samples" if not p.get("n") else f"{p['p50_ms']} / {p['p99_ms']}")
        lines.append(f"| {r['offered_per_s']:,}/s | {spans[0]} | {spans[1]} | {spans[2]} |")
    return lines


def table(results: Results) -> str:
    """The results as Markdown tables (what the command prints)."""
    lines = [
        "| run | what | records | s | records/s | worker CPU µs/record | broker CPU µs/record |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results.throughput:
        lines.append(
            f"| {r['name']} | {r['what']} | {r['events']:,} | {r['seconds']} "
            f"| {r['events_per_s']:,} | {_cell(r.get('worker_cpu_us_per_record'))} "
            f"| {_cell(r.get('broker_cpu_us_per_record'))} |"
        )
    ratios = results.ratios()
    lines += ["", "| ratio | value |", "| --- | ---: |"]
    for name, value in ratios.items():
        lines.append(f"| {name} | {value if value is not None else 'n/a'} |")
    if results.scaling:
        lines.append(f"| pipeline x2 / pipeline | {results.scaling.get('ratio')} |")
    if results.latency:
        lines += [
            "",
            "| offered load | sent | event → score p50 / p95 / p99 ms (n) "
            "| event → stage change p50 / p95 / p99 ms (n) | worker CPU µs/record (cores) |",
            "| --- | ---: | --- | --- | ---: |",
        ]
        for r in results.latency:
            cells = []
            for key in ("event_to_score", "event_to_stage_change"):
                p = r[key]
                cells.append(
                    "no samples"
                    if not p.get("n")
                    else f"{p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']} ({p['n']:,})"
                )
            busy = r.get("worker_busy")
            cores = "n/a" if busy is None else f"{busy:.2f}"
            cpu = f"{_cell(r.get('worker_cpu_us_per_record'))} ({cores})"
            load = (
                f"{r['offered_per_s']:,}/s ({r['share_of_max']:.0%} of the maximum)"
                if r.get("fixed_rate")
                else f"{r['share_of_max']:.0%} = {r['offered_per_s']:,}/s"
            )
            lines.append(f"| {load} | {r['sent']:,} | {cells[0]} | {cells[1]} | {cpu} |")
        lines += _segment_lines(results.latency)
    if results.recovery:
        lines += ["", "| recovery | leads | s |", "| --- | ---: | ---: |"]
        for r in results.recovery:
            note = "" if r.get("standby_ready_announced", True) else " (replicas not seen ready)"
            lines.append(f"| {r['case']}{note} | {r['leads']:,} | {r['seconds']} |")
    if results.state:
        lines += ["", "| state | bytes |", "| --- | ---: |"]
        for key, value in results.state.items():
            lines.append(f"| {key} | {value:,} |")
    for missing in results.not_measured:
        lines.append(f"\nNot measured: {missing}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def write_json(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results.to_json(), option=orjson.OPT_INDENT_2) + b"\n")


def main_json(results: Results) -> str:
    return json.dumps(results.to_json(), indent=2)
