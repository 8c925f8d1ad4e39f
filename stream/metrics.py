"""Prometheus metrics: a Faust sensor, domain counters any module can call, and ``/metrics``.

Domain counters (call them from anywhere in the worker; they never raise and cost a dict lookup):

| call | metric | who calls it |
| --- | --- | --- |
| ``event_in(topic, type)`` | ``leadstream_events_in_total`` | processor, per decoded event |
| ``scoring_latency(seconds)`` | ``leadstream_scoring_latency_seconds`` | processor |
| ``dead_letter(kind)`` | ``leadstream_dead_letters_total`` | projector |
| ``stage_change(model, from, to)`` | ``leadstream_stage_changes_total`` | projector |
| ``account_stage_change(model, from, to)`` | ``..._account_stage_changes_total`` | projector |
| ``account_member_message(side, kind)`` | ``..._account_member_messages_total`` | accounts |
| ``tracked_link_event_lost(kind)`` | ``leadstream_tracked_link_events_lost_total`` | collector |
| ``messages_out(counts)`` | ``leadstream_messages_out_total`` | the processor's sender |

``scoring_latency`` is the time from an event's ``occurred_at`` to its score being sent.

Dead letters, stage changes and account stage changes are counted where they are read back from
their topics (the projector), once per record whatever wrote it; writers do not call those.
Account member messages (a lead's change to its contribution to its account; a batch's changes
to one account travel together in one ``account_members`` record, each counted) are counted where
a lead sends them (``side="sent"``) and where its account applies them (``side="applied"``), by
kind: ``update`` (the lead joined, or its contribution changed) or ``leave``. The accounts a worker
holds are the ``accounts`` table's keys (``leadstream_table_keys{table="accounts"}``).

The sensor (`LeadstreamSensor`, installed by `register`) counts Kafka messages in and out per topic
and table writes; the records the processor hands straight to the producer (its outputs, dead
letters and internal messages: ``faust_guards.sending``) never pass the sensors and are counted
out by ``messages_out``; at scrape time a collector bound to the app reports consumer lag per topic,
table sizes, the memory RocksDB holds for each table, and whether table recovery is done. The
projector sets its own lag gauges.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream.faust_guards import readers

__all__ = [
    "CONTENT_TYPE",
    "METRIC_NAMES",
    "REGISTRY",
    "AppCollector",
    "account_member_message",
    "account_stage_change",
    "dead_letter",
    "evaluation_registry",
    "event_in",
    "exposition",
    "machine_marked",
    "machine_skipped",
    "record_redelivered",
    "records_recovered",
    "register",
    "sample_names",
    "scoring_latency",
    "stage_change",
    "store_memory",
    "tracked_link_event_lost",
]

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""The worker's process-wide metrics (one worker per process)."""

EVENTS_IN = Counter(
    "leadstream_events_in",
    "Decoded inbound events, per source topic and event type.",
    ["topic", "type"],
    registry=REGISTRY,
)
MACHINE_MARKED = Counter(
    "leadstream_machine_events_marked",
    "Inbound events that came marked as a machine's (their `machine` field), per source topic "
    "and kind of reason (vendor flag, user agent, address, HEAD or prefetch request).",
    ["topic", "reason"],
    registry=REGISTRY,
)
MACHINE_SKIPPED = Counter(
    "leadstream_machine_events_skipped",
    "Events a model did not score because a machine made them (marked, or told by their "
    "timing), per model.",
    ["model"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "leadstream_dead_letters",
    "Dead letters read from the dead-letter topic, per error kind.",
    ["kind"],
    registry=REGISTRY,
)
STAGE_CHANGES = Counter(
    "leadstream_stage_changes",
    "Stage changes read from the stage-changes topic, per model and from/to stage.",
    ["model", "from_stage", "to_stage"],
    registry=REGISTRY,
)
ACCOUNT_STAGE_CHANGES = Counter(
    "leadstream_account_stage_changes",
    "Account stage changes read from the account stage-changes topic, per model and from/to stage.",
    ["model", "from_stage", "to_stage"],
    registry=REGISTRY,
)
ACCOUNT_MEMBER_MESSAGES = Counter(
    "leadstream_account_member_messages",
    "Account member messages (a lead's change to its contribution to its account): sent by "
    "the lead's partition, applied by the account's, per kind (update, leave).",
    ["side", "kind"],
    registry=REGISTRY,
)
RECORDS_REDELIVERED = Counter(
    "leadstream_records_redelivered",
    "Records the consumer delivered again after the processor handled them (skipped).",
    registry=REGISTRY,
)
RECORDS_RECOVERED = Counter(
    "leadstream_records_recovered",
    "Records that never reached the agent and were read from the broker directly and handled.",
    registry=REGISTRY,
)
SCORING_LATENCY = Histogram(
    "leadstream_scoring_latency_seconds",
    "From an event's occurred_at to its score being sent.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
MESSAGES_IN = Counter(
    "leadstream_messages_in",
    "Kafka messages received by the worker's Faust consumer, per topic.",
    ["topic"],
    registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    "leadstream_messages_out",
    "Kafka messages sent by the worker's producer, per topic.",
    ["topic"],
    registry=REGISTRY,
)
TABLE_WRITES = Counter(
    "leadstream_table_writes",
    "Writes (sets and deletes) to Faust tables, per table.",
    ["table"],
    registry=REGISTRY,
)
PROJECTOR_LAG = Gauge(
    "leadstream_projector_lag_messages",
    "Records of a topic not yet applied to the Redis read model (this worker's partitions).",
    ["topic"],
    registry=REGISTRY,
)
PROJECTOR_APPLIED = Counter(
    "leadstream_projector_records",
    "Records applied to the Redis read model, per topic.",
    ["topic"],
    registry=REGISTRY,
)
PROJECTOR_REDIS_ERRORS = Counter(
    "leadstream_projector_redis_errors",
    "Failed attempts to write a batch to Redis (each is retried with backoff).",
    registry=REGISTRY,
)
PROJECTOR_REDIS_UP = Gauge(
    "leadstream_projector_redis_up",
    "1 when the projector's last Redis write succeeded, 0 while it is retrying.",
    registry=REGISTRY,
)
PROJECTOR_LAST_APPLIED = Gauge(
    "leadstream_projector_last_applied_timestamp_seconds",
    "Wall-clock time of the projector's last successful Redis write (Unix seconds).",
    registry=REGISTRY,
)
TRACKED_LINK_EVENTS_LOST = Counter(
    "leadstream_tracked_link_events_lost",
    "Tracked-link clicks (redirected anyway) and opens (answered anyway) whose event Kafka "
    "did not take, per kind (click, open).",
    ["kind"],
    registry=REGISTRY,
)

CONSUMER_LAG_NAME: Final = "leadstream_consumer_lag_messages"
TABLE_KEYS_NAME: Final = "leadstream_table_keys"
STORE_MEMORY_NAME: Final = "leadstream_table_store_memory_bytes"
RECOVERED_NAME: Final = "leadstream_tables_recovered"


def sample_names(metric: Any) -> set[str]:
    """The series names a metric shows on ``/metrics`` (``_total``, ``_bucket``, ...)."""
    (family,) = metric.describe()
    name: str = family.name
    kind: str = family.type
    if kind == "counter":
        return {f"{name}_total", f"{name}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}


_EVALUATION_GAUGES: Final = (
    (
        "auc",
        "leadstream_model_auc",
        "AUC of the model's scores at CRM outcomes (good: accepted, "
        "opportunity, won; bad: rejected, lost, disqualified).",
    ),
    (
        "precision_at_mql",
        "leadstream_model_precision_at_mql",
        "Share of good outcomes among those scored at or above the model's MQL threshold.",
    ),
    (
        "mql_to_sql",
        "leadstream_model_mql_to_sql_ratio",
        "Share of the leads at or above the MQL threshold at their first outcome sales accepted.",
    ),
    (
        "mql_to_won",
        "leadstream_model_mql_to_won_ratio",
        "Share of the leads at or above the MQL threshold at their first outcome that were won.",
    ),
)

METRIC_NAMES: Final[frozenset[str]] = frozenset(
    {
        sample
        for metric in (
            EVENTS_IN,
            MACHINE_MARKED,
            MACHINE_SKIPPED,
            DEAD_LETTERS,
            STAGE_CHANGES,
            ACCOUNT_STAGE_CHANGES,
            ACCOUNT_MEMBER_MESSAGES,
            SCORING_LATENCY,
            RECORDS_REDELIVERED,
            RECORDS_RECOVERED,
            MESSAGES_IN,
            MESSAGES_OUT,
            TABLE_WRITES,
            PROJECTOR_LAG,
            PROJECTOR_APPLIED,
            PROJECTOR_REDIS_ERRORS,
            PROJECTOR_REDIS_UP,
            PROJECTOR_LAST_APPLIED,
            TRACKED_LINK_EVENTS_LOST,
        )
        for sample in sample_names(metric)
    }
    | {CONSUMER_LAG_NAME, TABLE_KEYS_NAME, STORE_MEMORY_NAME, RECOVERED_NAME}
    | {name for _, name, _ in _EVALUATION_GAUGES}
    | {"leadstream_model_outcomes"}
)
"""Every series name ``/metrics`` can show (the Grafana dashboard's queries use only these)."""


# ----------------------------------------------------------------------------- domain API


def event_in(topic: str, type_: str) -> None:
    """Count one decoded inbound event of `type_` from `topic` (the contract name)."""
    EVENTS_IN.labels(topic=topic, type=type_).inc()


def machine_marked(topic: str, reason: str) -> None:
    """Count one inbound event marked as a machine's; `reason` is its `machine` field (counted
    by its kind: the text before the first colon, or the whole reason)."""
    kind = reason.split(":", 1)[0].strip()[:48]
    MACHINE_MARKED.labels(topic=topic, reason=kind).inc()


def machine_skipped(model: str, count: int) -> None:
    """Count `count` events `model` did not score because a machine made them."""
    MACHINE_SKIPPED.labels(model=model).inc(count)


def dead_letter(kind: str) -> None:
    """Count one dead letter of `kind` (an ``ErrorKind`` value)."""
    DEAD_LETTERS.labels(kind=kind).inc()


def stage_change(model: str, from_stage: str | None, to_stage: str) -> None:
    """Count one stage change (``from_stage`` None: the lead's first stage, shown as ``none``)."""
    STAGE_CHANGES.labels(model=model, from_stage=from_stage or "none", to_stage=to_stage).inc()


def account_stage_change(model: str, from_stage: str | None, to_stage: str) -> None:
    """Count one account stage change (``from_stage`` None: the account's first stage, shown as
    ``none``)."""
    ACCOUNT_STAGE_CHANGES.labels(
        model=model, from_stage=from_stage or "none", to_stage=to_stage
    ).inc()


def account_member_message(side: str, kind: str, count: int = 1) -> None:
    """Count `count` account member messages: `side` ``sent`` or ``applied``, `kind` ``update``
    or ``leave``."""
    ACCOUNT_MEMBER_MESSAGES.labels(side=side, kind=kind).inc(count)


def messages_out(counts: Mapping[str, int]) -> None:
    """Count records the worker sent, ``counts`` by topic (one call per batch of sends)."""
    for topic, count in counts.items():
        MESSAGES_OUT.labels(topic=topic).inc(count)


def record_redelivered() -> None:
    """Count one record delivered again after it was handled (and skipped)."""
    RECORDS_REDELIVERED.inc()


def records_recovered(count: int) -> None:
    """Count records read from the broker because they never reached the agent."""
    RECORDS_RECOVERED.inc(count)


def tracked_link_event_lost(kind: str) -> None:
    """Count one tracked-link event (`kind`: ``click`` or ``open``) that could not be written."""
    TRACKED_LINK_EVENTS_LOST.labels(kind=kind).inc()


def scoring_latency(seconds: float) -> None:
    """Observe the time from an event's ``occurred_at`` to its score being sent."""
    SCORING_LATENCY.observe(max(seconds, 0.0))


# ----------------------------------------------------------------------------- Faust side


def _topic_of(tp: Any) -> str:
    return str(getattr(tp, "topic", "?"))


def _make_sensor_class() -> type:
    import faust  # noqa: PLC0415

    class LeadstreamSensor(faust.Sensor):  # type: ignore[misc]
        """Counts messages in/out per topic and table writes into the Prometheus registry."""

        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            MESSAGES_IN.labels(topic=_topic_of(tp)).inc()

        def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
            MESSAGES_OUT.labels(topic=str(getattr(metadata, "topic", "?"))).inc()

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            TABLE_WRITES.labels(table=str(table.name)).inc()

        def on_table_del(self, table: Any, key: Any) -> None:
            TABLE_WRITES.labels(table=str(table.name)).inc()

    return LeadstreamSensor


def _table_keys(table: Any) -> int | None:
    """Keys in a table's active partitions: RocksDB's estimate, or the exact count in memory."""
    store = table.data
    dbs = readers.active_databases(store)
    try:
        if dbs is None:
            return len(store)
        total = 0
        for db in dbs():
            total += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        return total
    except Exception:  # a metric must never break a scrape
        log.debug("metrics: could not size table %s", table.name, exc_info=True)
        return None


STORE_MEMORY_PROPERTIES: Final = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}
"""RocksDB's own figures for the memory a store holds, by kind (its resident-memory bounds:
``LEADSTREAM_ROCKSDB_WRITE_BUFFER_MB`` for memtables, ``LEADSTREAM_ROCKSDB_BLOCK_CACHE_MB`` for
the read cache)."""


def store_memory(table: Any) -> dict[str, int] | None:
    """Bytes RocksDB holds in memory for a table's open stores (every partition, standbys
    included), by kind; ``None`` for the memory store."""
    dbs = readers.open_databases(table.data)
    if dbs is None:
        return None
    totals = dict.fromkeys(STORE_MEMORY_PROPERTIES, 0)
    try:
        for db in list(dbs.values()):
            for kind, name in STORE_MEMORY_PROPERTIES.items():
                totals[kind] += int(db.property_int_value(name) or 0)
    except Exception:  # a metric must never break a scrape (a store closing meanwhile)
        log.debug("metrics: could not read the memory of table %s", table.name, exc_info=True)
        return None
    return totals


class AppCollector(Collector):
    """Scrape-time gauges read from a Faust app: consumer lag, table sizes, recovery."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            CONSUMER_LAG_NAME,
            "High watermark minus committed offset, per topic (this worker's partitions).",
            labels=["topic"],
        )
        for topic, value in sorted(consumer_lag(self.app).items()):
            lag.add_metric([topic], value)
        yield lag
        keys = GaugeMetricFamily(
            TABLE_KEYS_NAME, "Keys in a table (this worker's active partitions).", labels=["table"]
        )
        for name, table in sorted(self.app.tables.items()):
            size = _table_keys(table)
            if size is not None:
                keys.add_metric([str(name)], size)
        yield keys
        memory = GaugeMetricFamily(
            STORE_MEMORY_NAME,
            "Memory RocksDB holds for a table's stores on this worker, by kind "
            "(memtables, block_cache, table_readers).",
            labels=["table", "kind"],
        )
        for name, table in sorted(self.app.tables.items()):
            held = store_memory(table)
            for kind, value in (held or {}).items():
                memory.add_metric([str(name), kind], value)
        yield memory
        yield GaugeMetricFamily(
            RECOVERED_NAME,
            "1 once table recovery has completed (the worker is ready).",
            value=1 if is_ready(self.app) else 0,
        )


def consumer_lag(app: Any) -> dict[str, int]:
    """High watermark minus committed offset, summed per topic over the assigned partitions
    that have a committed offset."""
    lags: dict[str, int] = {}
    try:
        consumer = app.consumer
        committed = readers.committed_offsets(consumer)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = committed.get(tp)  # the next offset to read (Faust's committed position)
            if done is None:  # nothing committed yet (or a changelog read only for recovery)
                continue
            lags[tp.topic] = lags.get(tp.topic, 0) + max(int(highwater) - int(done), 0)
    except Exception:  # not started yet, or mid-rebalance
        log.debug("metrics: consumer lag unavailable", exc_info=True)
    return lags


def is_ready(app: Any) -> bool:
    """Whether the app's table recovery has completed."""
    try:
        return bool(app.tables.recovery.completed.is_set())
    except Exception:
        return False


def register(app: Any) -> CollectorRegistry:
    """Install the sensor on `app`; the registry of its scrape-time gauges."""
    app.monitor  # noqa: B018  (Faust builds its monitor lazily; ours sits beside it)
    app.sensors.add(_make_sensor_class()())
    per_app = CollectorRegistry(auto_describe=False)
    per_app.register(AppCollector(app))
    return per_app


def exposition(per_app: CollectorRegistry | None = None, *extra: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of the process metrics, the app's gauges and `extra`."""
    body = generate_latest(REGISTRY)
    if per_app is not None:
        body += generate_latest(per_app)
    for registry in extra:
        body += generate_latest(registry)
    return body


def evaluation_registry(evaluations: Iterable[Any]) -> CollectorRegistry:
    """Gauges of the live model evaluation (`stream.readmodel.evaluation.ModelEvaluation`s): the
    same on every worker, since they are read from Redis (aggregate with `max`, not `sum`)."""
    registry = CollectorRegistry(auto_describe=False)
    families = {
        key: GaugeMetricFamily(name, doc, labels=["model", "shadow"])
        for key, name, doc in _EVALUATION_GAUGES
    }
    outcomes = GaugeMetricFamily(
        "leadstream_model_outcomes",
        "CRM outcomes the live evaluation keeps for the model, per outcome type.",
        labels=["model", "shadow", "outcome"],
    )
    for item in evaluations:
        shadow = "true" if item.shadow else "false"
        for key, family in families.items():
            value = getattr(item, key)
            if value is not None:
                family.add_metric([item.model, shadow], float(value))
        for outcome, count in item.by_outcome.items():
            outcomes.add_metric([item.model, shadow, outcome], float(count))

    class _Snapshot(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            yield from families.values()
            yield outcomes

    registry.register(_Snapshot())
    return registry
