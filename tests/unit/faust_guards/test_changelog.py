"""Table writes handed to the producer without Faust's send path
(stream.faust_guards.changelog), on Faust's own tables and RocksDB store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.events import Event
from faust.types import TP
from faust.types.tuples import Message

from stream import faust_guards
from stream.faust_guards import local_stores
from stream.faust_guards.changelog import ChangelogWriter
from stream.faust_guards.tables import writing_for
from stream.faust_guards.write_order import WriteOrder

TOPIC = "batched"


@pytest.fixture(autouse=True)
def _own_write_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide count of unconfirmed table writes, as it was, after each test (a
    refused message is never confirmed)."""
    monkeypatch.setattr(local_stores, "_unconfirmed", 0)


class Producer:
    """A started producer recording what it is handed; ``hold()`` makes sends wait."""

    def __init__(self) -> None:
        self.started = True
        self.buffer = SimpleNamespace(size=0)
        self.sent: list[tuple[Any, ...]] = []
        self.deliveries: list[asyncio.Future[Any]] = []
        self.gate: asyncio.Event | None = None

    def hold(self) -> None:
        self.gate = asyncio.Event()

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(args)
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery

    def deliver(self) -> None:
        for offset, delivery in enumerate(self.deliveries):
            if not delivery.done():
                delivery.set_result(SimpleNamespace(offset=offset))


def event_on(app: faust.App, partition: int) -> Event:
    message = Message(TOPIC, partition, 7, 0.0, 0, None, b"k", b"v", None)
    return Event(app, b"k", b"v", None, message)


def setup(
    tmp_path: Path,
) -> tuple[faust.App, Any, Producer, WriteOrder, ChangelogWriter, list[Any]]:
    faust_guards.install()
    app = faust.App("changelog-test", store="rocksdb://", datadir=tmp_path)
    table: Any = app.Table("leads", partitions=4, key_type=bytes, value_type=bytes)
    table.key_serializer = table.value_serializer = "raw"
    app.topic(TOPIC, partitions=4)
    producer = Producer()
    app.producer = producer  # type: ignore[assignment]
    failures: list[Any] = []
    order = WriteOrder()
    sent: list[dict[str, int]] = []
    writer = ChangelogWriter(app, order, failures.append, lambda counts: sent.append(dict(counts)))
    writer.reported = sent  # type: ignore[attr-defined]
    return app, table, producer, order, writer, failures


async def test_a_write_reaches_the_store_and_then_the_changelog_as_through_faust(
    tmp_path: Path,
) -> None:
    app, table, producer, order, writer, failures = setup(tmp_path)
    before = local_stores.unconfirmed()
    record: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    order.track(record)  # a record sent before the write, not delivered yet
    with writing_for(event_on(app, 2)):
        writer.set(table, b"lead-1", b'{"s":1}')
        assert table.get(b"lead-1") == b'{"s":1}'  # Faust reads it from the store at once
    assert producer.sent == []  # held behind the record
    record.set_result(None)
    await asyncio.sleep(0)
    changelog = table.changelog_topic.get_topic_name()
    assert producer.sent == [(changelog, b"lead-1", b'{"s":1}', 2, None, None)]
    await asyncio.sleep(0)
    assert writer.reported == [{changelog: 1}]  # type: ignore[attr-defined]  # the metric's
    assert local_stores.unconfirmed() == before + 1
    with writing_for(event_on(app, 2)):
        writer.set(table, b"lead-2", b'{"s":2}')
    producer.deliver()  # one produce response: offsets 0 and 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert local_stores.unconfirmed() == before
    assert table.data.persisted_offset(TP(changelog, 2)) == 1  # Faust's books of the store
    assert failures == []


async def test_writes_wait_in_order_while_the_producer_is_full(tmp_path: Path) -> None:
    app, table, producer, _, writer, failures = setup(tmp_path)
    producer.hold()
    with writing_for(event_on(app, 1)):
        for i in range(3):
            writer.set(table, b"lead-%d" % i, b"%d" % i)
        writer.delete(table, b"lead-0")
    drained = asyncio.ensure_future(writer.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    assert producer.gate is not None
    producer.gate.set()
    await drained
    assert [(key, value) for _, key, value, *_ in producer.sent] == [
        (b"lead-0", b"0"),
        (b"lead-1", b"1"),
        (b"lead-2", b"2"),
        (b"lead-0", None),  # the tombstone, last
    ]
    producer.deliver()
    await asyncio.sleep(0)
    assert failures == []


async def test_deleting_an_absent_key_sends_nothing(tmp_path: Path) -> None:
    app, table, producer, _, writer, _ = setup(tmp_path)
    with writing_for(event_on(app, 0)):
        writer.delete(table, b"absent")
        writer.set(table, b"lead-1", b"{}")
        writer.delete(table, b"lead-1")
        assert table.get(b"lead-1") is None
    assert [value for _, _, value, *_ in producer.sent] == [b"{}", None]


async def test_a_changelog_message_the_broker_refuses_stops_the_worker(tmp_path: Path) -> None:
    app, table, producer, _, writer, failures = setup(tmp_path)
    with writing_for(event_on(app, 3)):
        writer.set(table, b"lead-1", b"{}")
    error = RuntimeError("broker away")
    producer.deliveries[0].set_exception(error)
    await asyncio.sleep(0)
    assert failures == [error]


async def test_before_the_producer_starts_writes_take_faust_s_path(tmp_path: Path) -> None:
    app, table, producer, _, writer, _ = setup(tmp_path)
    producer.started = False
    sent: list[dict[str, Any]] = []
    table.changelog_topic.send_soon = lambda **kwargs: (
        sent.append(kwargs)
        or SimpleNamespace(message=SimpleNamespace(partition=kwargs["partition"]))
    )
    with writing_for(event_on(app, 1)):
        writer.set(table, b"lead-1", b"{}")
    assert producer.sent == []
    assert [(m["key"], m["value"], m["partition"]) for m in sent] == [(b"lead-1", b"{}", 1)]
