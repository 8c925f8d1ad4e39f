"""Table writes for a batch of events (stream.faust_guards.tables), on Faust's own tables."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.events import Event
from faust.streams import current_event
from faust.types.tuples import Message

from stream.faust_guards.tables import read, writing_for

TOPIC = "batched"


def event_on(app: faust.App, partition: int) -> Event:
    """An event of ``TOPIC``'s ``partition``, as Faust's stream hands it out."""
    message = Message(TOPIC, partition, 7, 0.0, 0, None, b"k", b"v", None)
    return Event(app, b"k", b"v", None, message)


def table_of(app: faust.App) -> tuple[Any, list[dict[str, Any]]]:
    """A raw table of ``app`` whose changelog messages are recorded instead of produced."""
    table: Any = app.Table("leads", partitions=4, key_type=bytes, value_type=bytes)
    table.key_serializer = table.value_serializer = "raw"
    app.topic(TOPIC, partitions=4)  # the source topic, co-partitioned with the table
    sent: list[dict[str, Any]] = []

    def send_soon(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return SimpleNamespace(message=SimpleNamespace(partition=kwargs["partition"]))

    table.changelog_topic.send_soon = send_soon  # what would leave the process
    return table, sent


def test_a_write_outside_stream_iteration_is_refused_by_faust() -> None:
    table, _ = table_of(faust.App("tables-test", store="memory://"))
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table[b"lead-1"] = b"{}"


def test_writes_in_the_block_go_to_the_events_partition_and_the_block_leaves_no_event() -> None:
    app = faust.App("tables-test", store="memory://")
    table, sent = table_of(app)
    with writing_for(event_on(app, 3)):
        table[b"lead-1"] = b'{"s": 1}'
        assert table[b"lead-1"] == b'{"s": 1}'
    with writing_for(event_on(app, 1)):
        table[b"lead-2"] = b'{"s": 2}'
        with writing_for(event_on(app, 2)):  # nested: the inner event, then the outer again
            table[b"lead-3"] = b'{"s": 3}'
        table[b"lead-4"] = b'{"s": 4}'
    assert [(m["key"], m["partition"]) for m in sent] == [
        (b"lead-1", 3),
        (b"lead-2", 1),
        (b"lead-3", 2),
        (b"lead-4", 1),
    ]
    assert current_event() is None
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table[b"lead-5"] = b"{}"


def test_rocksdb_stores_a_write_in_the_events_partition(tmp_path: Path) -> None:
    app = faust.App("tables-test", store="rocksdb://", datadir=str(tmp_path))
    table, sent = table_of(app)
    with writing_for(event_on(app, 2)):
        table[b"lead-1"] = b'{"s": 1}'
    assert sent[0]["partition"] == 2
    assert [path.name for path in tmp_path.rglob("*.db")] == ["leads-2.db"]
    assert table[b"lead-1"] == b'{"s": 1}'  # found again without an event (any partition)


def test_read_gives_what_faust_gives_for_the_keys_of_the_events_partition(tmp_path: Path) -> None:
    app = faust.App("tables-read", store="rocksdb://", datadir=tmp_path)
    table, _ = table_of(app)
    with writing_for(event_on(app, 2)):
        table[b"lead-1"] = b'{"s":1}'
        table[b"lead-2"] = b""
        for key in (b"lead-1", b"lead-2", b"absent"):
            assert read(table, key) == table.get(key)
        assert read(table, b"lead-1") == b'{"s":1}'
        assert read(table, b"absent") is None
        del table[b"lead-1"]
        assert read(table, b"lead-1") is None


def test_read_looks_only_in_the_events_partition_as_faust_does(tmp_path: Path) -> None:
    app = faust.App("tables-read-other", store="rocksdb://", datadir=tmp_path)
    table, _ = table_of(app)
    with writing_for(event_on(app, 1)):
        table[b"lead-1"] = b"{}"
    with writing_for(event_on(app, 3)):
        assert read(table, b"lead-1") is None
        assert table.get(b"lead-1") is None


def test_read_is_faust_s_get_without_an_event_or_on_the_memory_store(tmp_path: Path) -> None:
    app = faust.App("tables-read-fallback", store="rocksdb://", datadir=tmp_path)
    table, _ = table_of(app)
    with writing_for(event_on(app, 0)):
        table[b"lead-1"] = b"{}"
    assert current_event() is None
    assert read(table, b"lead-1") == b"{}"  # Faust's get: every partition's store
    memory = faust.App("tables-read-memory", store="memory://")
    in_memory, _ = table_of(memory)
    with writing_for(event_on(memory, 0)):
        in_memory[b"lead-1"] = b"{}"
        assert read(in_memory, b"lead-1") == b"{}"
