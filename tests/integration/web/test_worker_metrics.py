"""A real worker's `/metrics`: the records it sent per topic, and the account metrics (member
messages sent and applied, the accounts the worker holds and the account stage changes it
published)."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import Traits
from schemas.examples import make_event
from stream.kafka import clients, topics

pytestmark = pytest.mark.integration


def _samples(worker: Any) -> dict[str, float]:
    """`/metrics` as {series with its labels: value}."""
    with urllib.request.urlopen(worker.base + "/metrics", timeout=10) as answer:
        body = answer.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def _sum(samples: dict[str, float], prefix: str) -> float:
    return sum(value for series, value in samples.items() if series.startswith(prefix))


async def test_two_people_at_one_company_show_as_account_metrics(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    """Two people at one company roll up to its account: the member messages their leads sent
    and the account applied, the account the worker holds, and the account's first stage
    change, published by the worker and read back by its projector."""
    account = f"metrics-{unique}.com"  # a reserved name (.example) would name no company
    now = datetime.now(UTC)
    await produce_events(
        served_worker.settings,
        [
            make_event(
                "profile_updated",
                event_id=f"{unique}-{n}",
                occurred_at=now - timedelta(minutes=5),
                traits=Traits(email=f"{name}@{account}", company_size=400, job_title=title),
                lead_id=f"{name}-{unique}",
                anonymous_id=None,
            )
            for n, (name, title) in enumerate((("cto", "CTO"), ("dev", "Software Engineer")))
        ],
    )
    sent = 'leadstream_account_member_messages_total{kind="update",side="sent"}'
    applied = 'leadstream_account_member_messages_total{kind="update",side="applied"}'
    first_stage = 'leadstream_account_stage_changes_total{from_stage="none",'
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        samples = _samples(served_worker)
        seen = (samples.get(sent, 0.0), samples.get(applied, 0.0), _sum(samples, first_stage))
        if seen[0] >= 2 and seen[1] >= 2 and seen[2] >= 1:
            break
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.5)
    assert samples['leadstream_table_keys{table="accounts"}'] == 1
    assert _sum(samples, 'leadstream_account_member_messages_total{kind="leave"') == 0


async def _records_per_topic(settings: Any) -> dict[str, int]:
    """Records on each of the worker's topics (its prefix's and its tables' changelogs): the sum
    of the partitions' end offsets, which only grow (no transactions, so no control records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [
            name
            for name in await admin.list_topics()
            if name.startswith((settings.topic_prefix, f"{settings.app_id}-"))
        ]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    parts = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    consumer = await clients.consumer(settings, group_id=None)
    try:
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    counts = dict.fromkeys(names, 0)
    for tp, end in ends.items():
        counts[tp.topic] += end
    return counts


async def test_messages_out_counts_every_record_the_worker_sent(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    """``leadstream_messages_out_total`` equals, topic by topic, the records on the worker's
    topics: the internal topic, scores, stage changes and dead letters (sent straight to the
    producer) as well as the tables' changelogs (sent through Faust)."""
    settings = served_worker.settings
    now = datetime.now(UTC)
    await produce_events(
        settings,
        [
            make_event(
                kind,
                event_id=f"{unique}-out-{n}",
                occurred_at=now - timedelta(minutes=10 - n),
                lead_id=f"out-{n % 3}-{unique}",
                anonymous_id=None,
            )
            for n, kind in enumerate(["page_viewed", "form_submitted", "demo_requested"] * 3)
        ],
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:  # a record that does not decode: the worker sends a dead letter
        await producer.send_and_wait(
            settings.topic(topics.CLICKSTREAM.name), key=b"out-bad", value=b"{not json"
        )
    finally:
        await producer.stop()
    sources = {settings.topic(spec.name) for spec in topics.SOURCES}
    written = {
        settings.topic(spec.name)
        for spec in (topics.INTERNAL, topics.SCORES, topics.STAGE_CHANGES, topics.DEAD_LETTERS)
    } | {f"{settings.app_id}-leads-changelog"}
    prefix = "leadstream_messages_out_total{topic="
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        samples = _samples(served_worker)
        counted = {
            series.removeprefix(prefix)[1:-2]: value
            for series, value in samples.items()
            if series.startswith(prefix)
        }
        on_topics = {
            name: count
            for name, count in (await _records_per_topic(settings)).items()
            if name not in sources
        }
        if (
            all(on_topics.get(name, 0) > 0 for name in written)
            and set(counted) <= set(on_topics)
            and all(counted.get(name, 0) == count for name, count in on_topics.items())
        ):
            break
        assert asyncio.get_running_loop().time() < deadline, (counted, on_topics)
        await asyncio.sleep(0.5)
    assert not sources & set(counted)  # the test wrote those, not the worker
