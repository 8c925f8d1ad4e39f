"""The metrics module: domain counters, the Faust sensor, scrape-time gauges, the exposition."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition
from factories import make_settings
from prometheus_client.parser import text_string_to_metric_families
from rocksdict import Rdict

from stream import metrics
from stream.app import create_app
from stream.web.read_api import histogram


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_domain_counters_appear_in_the_exposition() -> None:
    metrics.event_in("leads.email.v1", "email_opened")
    metrics.dead_letter("not_json")
    metrics.stage_change("b2b", None, "lead")
    metrics.scoring_latency(0.2)
    samples = _samples(metrics.exposition())
    assert (
        samples[
            ("leadstream_events_in_total", (("topic", "leads.email.v1"), ("type", "email_opened")))
        ]
        >= 1
    )
    assert samples[("leadstream_dead_letters_total", (("kind", "not_json"),))] >= 1
    key = (
        "leadstream_stage_changes_total",
        (("from_stage", "none"), ("model", "b2b"), ("to_stage", "lead")),
    )
    assert samples[key] >= 1
    assert samples[("leadstream_scoring_latency_seconds_count", ())] >= 1
    assert {name for name, _ in samples} <= metrics.METRIC_NAMES


def test_sensor_and_app_gauges() -> None:
    app = create_app(make_settings(projector_enabled=False, web_enabled=True))
    per_app = metrics.register(app)
    sensor = next(s for s in app.sensors if type(s).__name__ == "LeadstreamSensor")
    tp = SimpleNamespace(topic="leads.social.v1", partition=0)
    before = _samples(metrics.exposition()).get(
        ("leadstream_messages_in_total", (("topic", "leads.social.v1"),)), 0.0
    )
    sensor.on_message_in(tp, 1, None)
    sensor.on_send_completed(None, None, SimpleNamespace(topic="leads.scores.v1"))
    samples = _samples(metrics.exposition(per_app))
    assert samples[("leadstream_messages_in_total", (("topic", "leads.social.v1"),))] == before + 1
    assert samples[("leadstream_messages_out_total", (("topic", "leads.scores.v1"),))] >= 1
    assert samples[("leadstream_tables_recovered", ())] == 0  # not started: not ready
    assert any(name == "leadstream_table_keys" for name, _ in samples)


def test_consumer_lag_is_highwater_minus_committed() -> None:
    tps = [TopicPartition("t", p) for p in range(3)]
    consumer = SimpleNamespace(
        assignment=lambda: set(tps),
        highwater=lambda tp: {0: 10, 1: 5, 2: 7}[tp.partition],
        _committed_offset={tps[0]: 4, tps[1]: 5},  # partition 2: nothing committed yet
    )
    assert metrics.consumer_lag(SimpleNamespace(consumer=consumer)) == {"t": 6}


def test_histogram_buckets_cover_every_total() -> None:
    assert histogram([]) == []
    buckets = histogram([0.0, 5.0, 10.0, 100.0], buckets=4)
    assert [b["count"] for b in buckets] == [3, 0, 0, 1]
    assert buckets[0]["from"] == 0.0 and buckets[-1]["to"] == 100.0
    assert sum(b["count"] for b in histogram([-5.0, -5.0])) == 2


def test_store_memory_reads_rocksdb_own_figures(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "store"))
    try:
        for n in range(2_000):
            db[f"lead-{n}".encode()] = b"x" * 500
        table = SimpleNamespace(name="leads", data=SimpleNamespace(_dbs={0: db}))
        held = metrics.store_memory(table)
        assert held is not None
        assert set(held) == {"memtables", "block_cache", "table_readers"}
        assert held["memtables"] >= 2_000 * 500  # the writes sit in the memtable until a flush
    finally:
        db.close()
    memory_table = SimpleNamespace(name="leads", data={})
    assert metrics.store_memory(memory_table) is None


def test_machine_events_are_counted_from_the_engine_s_steps() -> None:
    from datetime import UTC, datetime

    from schemas.events import Traits
    from schemas.examples import make_event
    from stream.model_files import load_default_models
    from stream.worker.port import CoreEngine

    engine = CoreEngine(load_default_models())
    at = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    common = {"lead_id": "lead-m", "source": "sendgrid"}
    mail = {**common, "message_id": "msg-1"}
    step = engine.apply(
        None,
        make_event(
            "identify",
            **common,
            event_id="e1",
            occurred_at=at,
            traits=Traits(email="m@acme.example"),
        ),
    )
    events = [
        make_event("email_delivered", **mail, event_id="e2", occurred_at=at),
        make_event(
            "email_opened", **mail, event_id="e3", occurred_at=at.replace(microsecond=400_000)
        ),
        make_event(
            "email_opened",
            **mail,
            event_id="e4",
            occurred_at=at.replace(minute=30),
            machine="vendor flag: sg_machine_open",
        ),
    ]
    step = engine.apply_batch(step.state, events, step.live)
    assert dict(step.machine) == {"b2b": 2, "consumer": 2}
    for model_id, count in step.machine:
        metrics.machine_skipped(model_id, count)
    metrics.machine_marked("leads.email.v1", "vendor flag: sg_machine_open")
    samples = _samples(metrics.exposition())
    assert samples[("leadstream_machine_events_skipped_total", (("model", "b2b"),))] >= 2
    key = (
        "leadstream_machine_events_marked_total",
        (("reason", "vendor flag"), ("topic", "leads.email.v1")),
    )
    assert samples[key] >= 1
    assert {name for name, _ in samples} <= metrics.METRIC_NAMES


def test_the_live_evaluation_gauges() -> None:
    from stream.model_files import load_default_models
    from stream.readmodel.evaluation import Pair, summarize

    b2b = load_default_models().get("b2b")
    pairs = [
        Pair("a", "closed_won", 70.0, 10.0, 60.0, 1.0),
        Pair("b", "closed_lost", 20.0, 10.0, 10.0, 2.0),
        Pair("c", "sales_rejected", 55.0, 10.0, 45.0, 3.0),
    ]
    registry = metrics.evaluation_registry(
        [summarize("b2b", pairs, b2b), summarize("gone", [], None)]
    )
    samples = _samples(metrics.exposition(None, registry))
    live = (("model", "b2b"), ("shadow", "false"))
    assert samples[("leadstream_model_auc", live)] == 1.0
    assert samples[("leadstream_model_precision_at_mql", live)] == 0.5  # a and c, a good
    assert samples[("leadstream_model_mql_to_won_ratio", live)] == 0.5
    outcome = (("model", "b2b"), ("outcome", "closed_won"), ("shadow", "false"))
    assert samples[("leadstream_model_outcomes", outcome)] == 1.0
    assert not any(labels and dict(labels).get("model") == "gone" for _, labels in samples)
    assert {name for name, _ in samples} <= metrics.METRIC_NAMES


def test_account_counters_count_what_the_projector_reads_back() -> None:
    from schemas.examples import make_output
    from stream.readmodel.projector import count

    key = (
        "leadstream_account_stage_changes_total",
        (("from_stage", "engaged"), ("model", "default"), ("to_stage", "mqa")),
    )
    before = _samples(metrics.exposition()).get(key, 0.0)
    count(make_output("account_stage_changed"))  # engaged -> mqa under `default`
    metrics.account_member_message("sent", "leave", 3)
    samples = _samples(metrics.exposition())
    assert samples[key] == before + 1
    leave = ("leadstream_account_member_messages_total", (("kind", "leave"), ("side", "sent")))
    assert samples[leave] >= 3
    assert {name for name, _ in samples} <= metrics.METRIC_NAMES
