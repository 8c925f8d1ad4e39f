"""Every faust-streaming symbol the guards patch or read exists as the guards expect it.

The guards (``stream.faust_guards``) replace Faust methods with functions of the same parameters
and read attributes Faust keeps private. A Faust release that renames or reshapes any of them
fails here, before a guard silently stops guarding. The methods are checked in the source of
the classes the guards patch (so whether a guard is installed does not matter); the attributes
on real objects built by a Faust app (nothing is started).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher as KafkaFetcher
from faust.stores.rocksdb import RocksDBOptions, Store
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.topics import Topic
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.consumer import Fetcher as FaustFetcher
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Producer as KafkaProducer
from faust.transport.producer import Producer, ProducerBuffer
from faust.types.tuples import ConsumerMessage
from intervaltree import IntervalTree

from stream.faust_guards import readers


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(inspect.unwrap(function)).parameters)


def defined(owner: type, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """``owner.name`` as Faust's source defines it (unchanged by a guard installed meanwhile)."""
    (cls,) = ast.parse(textwrap.dedent(inspect.getsource(owner))).body
    assert isinstance(cls, ast.ClassDef)
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    pytest.fail(f"{owner.__module__}.{owner.__name__} defines no {name}")


@pytest.mark.parametrize(
    ("owner", "name", "expected", "is_coroutine"),
    [
        (Consumer, "ack", ["self", "message"], False),
        (Consumer, "perform_seek", ["self"], True),
        (Consumer, "getmany", ["self", "timeout"], True),
        (Consumer, "_new_offset", ["self", "tp"], False),
        (ProducerBuffer, "_send_pending", ["self", "fut"], True),
        (ProducerBuffer, "flush", ["self"], True),
        (
            Collection,
            "send_changelog",
            ["self", "partition", "key", "value", "key_serializer", "value_serializer"],
            False,
        ),
        (Collection, "_on_changelog_sent", ["self", "fut"], False),
        (Producer, "send_soon", ["self", "fut"], False),
        (Producer, "flush", ["self"], True),
        (AIOKafkaConsumerThread, "_create_worker_consumer", ["self", "transport"], False),
        (KafkaProducer, "_settings_extra", ["self"], False),
        (Recovery, "_set_recovery_ended", ["self"], False),
        (Recovery, "flush_buffers", ["self"], False),
        (Recovery, "_build_offsets", ["self", "consumer", "tps", "destination", "title"], True),
        (Recovery, "on_recovery_completed", ["self", "generation_id"], True),
        (
            AIOKafkaConsumerThread,
            "_fetch_records",
            ["self", "consumer", "active_partitions", "timeout", "max_records"],
            True,
        ),
        (Topic, "_get_producer", ["self"], True),
        (Topic, "_compile_decode", ["self"], False),
        (Conductor, "_build_handler", ["self", "tp", "channels"], False),
    ],
)
def test_a_patched_method_keeps_its_parameters(
    owner: type, name: str, expected: list[str], is_coroutine: bool
) -> None:
    function = defined(owner, name)
    arguments = function.args
    assert [a.arg for a in arguments.posonlyargs + arguments.args] == expected
    assert not arguments.kwonlyargs and not arguments.vararg and not arguments.kwarg
    assert isinstance(function, ast.AsyncFunctionDef) is is_coroutine
    assert callable(getattr(owner, name))


def test_rocksdb_options_open_takes_a_path_and_read_only() -> None:
    # ``guard_rocksdb_unlogged_writes`` wraps it and sets the write options of what it returns
    opened = defined(RocksDBOptions, "open")
    assert [a.arg for a in opened.args.args] == ["self", "path"]
    assert [a.arg for a in opened.args.kwonlyargs] == ["read_only"]
    assert isinstance(opened, ast.FunctionDef)


def test_consumer_getmany_is_an_async_generator() -> None:
    getmany = defined(Consumer, "getmany")
    assert isinstance(getmany, ast.AsyncFunctionDef)
    assert any(isinstance(node, ast.Yield) for node in ast.walk(getmany))


def test_the_producer_of_an_app_is_a_faust_producer() -> None:
    # ``hold_flush`` wraps ``app.producer.flush``; ``hold_changelog`` calls its ``send_soon``
    app = faust.App("symbols-producer", broker="kafka://localhost:1")
    assert isinstance(app.producer, Producer)
    assert parameters(type(app.producer).flush) == ["self"]
    assert inspect.iscoroutinefunction(type(app.producer).flush)
    assert parameters(type(app.producer).send_soon) == ["self", "fut"]


def test_the_producer_send_takes_what_direct_sender_passes() -> None:
    # ``DirectSender`` calls ``producer.send(topic, key, value, partition, timestamp, headers)``
    # on what ``app.maybe_start_producer()`` returns: the producer, or the transaction manager
    assert inspect.iscoroutinefunction(Producer.send)
    assert parameters(Producer.send)[:7] == [
        "self",
        "topic",
        "key",
        "value",
        "partition",
        "timestamp",
        "headers",
    ]
    assert inspect.iscoroutinefunction(TransactionManager.send)
    assert parameters(TransactionManager.send)[:7] == parameters(Producer.send)[:7]
    # a stampede-guarded coroutine: one producer start however many senders await it
    assert inspect.iscoroutinefunction(faust.App.maybe_start_producer._stampede__get)


def test_topic_send_soon_takes_what_as_future_message_takes() -> None:
    # ``hold_changelog`` replaces ``send_soon`` and passes its keywords (but ``force``) on
    send_soon = inspect.signature(Topic.send_soon).parameters
    future = inspect.signature(Topic.as_future_message).parameters
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in send_soon.items() if n != "self"
    )
    assert set(send_soon) - {"self", "force"} <= set(future)


def test_a_message_records_whether_a_stream_tracked_it() -> None:
    # ``guard_skipped_acks`` reads ``message.tracked``, which faust.streams sets
    message = ConsumerMessage("t", 0, 10, 0.0, 0, None, b"k", b"v", None)
    assert message.tracked is False  # a consumed record, not yet handed to a stream
    assert "message.tracked = True" in inspect.getsource(faust.streams)


def test_the_consumer_keeps_the_books_the_guards_read() -> None:
    app = faust.App("symbols-consumer", broker="kafka://localhost:1")

    def ignore(*args: Any) -> None:
        return None

    consumer = app.transport.create_consumer(
        callback=ignore, on_partitions_revoked=ignore, on_partitions_assigned=ignore
    )
    assert isinstance(consumer, Consumer)
    tp = ("t", 0)
    assert consumer._read_offset[tp] is None
    assert consumer._committed_offset[tp] is None
    assert readers.committed_offsets(consumer) is consumer._committed_offset
    assert consumer._acked[tp] == []
    assert consumer._acked_index[tp] == set()
    gaps = consumer._gap[tp]
    assert isinstance(gaps, IntervalTree)
    for method in ("overlap", "chop", "overlaps_point", "addi"):
        assert callable(getattr(gaps, method)), method
    # the consumer's own source uses them as the guards do
    source = inspect.getsource(Consumer)
    for attribute in ("_read_offset", "_committed_offset", "_acked", "_acked_index", "_gap"):
        assert f"self.{attribute}" in source, attribute


def test_the_producer_buffer_exposes_what_the_flush_guard_waits_on() -> None:
    buffer = faust.App("symbols-buffer", broker="kafka://localhost:1").producer.buffer
    assert isinstance(buffer, ProducerBuffer)
    assert buffer.size == 0
    assert not buffer.message_sent.is_set()
    assert isinstance(inspect.getattr_static(ProducerBuffer, "state"), property)
    assert "self.message_sent.set()" in inspect.getsource(ProducerBuffer)


def test_a_rocksdb_table_store_lists_its_databases(tmp_path: Path) -> None:
    app = faust.App(
        "symbols-store", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("sized", partitions=1)
    assert isinstance(table.data, Store)
    assert readers.open_databases(table.data) == {}
    active = readers.active_databases(table.data)
    assert active is not None
    assert list(active()) == []
    assert parameters(Store._dbs_for_actives) == ["self"]
    # ``tables.read`` opens a partition's database as Faust's own reads do
    assert parameters(Store._db_for_partition) == ["self", "partition"]
    assert table.is_global is False
    assert table.use_partitioner is False


def test_the_memory_store_has_no_databases() -> None:
    app = faust.App("symbols-memory", broker="kafka://localhost:1", store="memory://")
    table = app.Table("sized", partitions=1)
    assert readers.open_databases(table.data) is None
    assert readers.active_databases(table.data) is None


def test_the_current_event_is_a_context_variable_of_weak_references() -> None:
    """``tables.writing_for`` sets what ``current_event()`` returns (faust.streams)."""
    from contextvars import ContextVar

    from faust import streams

    assert isinstance(streams._current_event, ContextVar)
    source = inspect.getsource(streams.current_event)
    assert "_current_event.get(None)" in source and "eventref()" in source


def test_aiokafka_builds_its_fetcher_from_what_the_fetch_guard_sets() -> None:
    """``guard_fetch_batching`` sets two attributes of the consumer before it starts; aiokafka
    reads them when ``start()`` builds the fetcher."""
    source = inspect.getsource(AIOKafkaConsumer.start)
    assert "fetch_min_bytes=self._fetch_min_bytes" in source
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in source


def test_aiokafkas_fetcher_puts_its_fetch_attributes_in_every_request() -> None:
    """``guard_idle_fetch`` changes the fetcher's two attributes between fetches: aiokafka
    reads them each time it builds a ``FetchRequest``, and ``_proc_fetch_request`` says
    whether a fetch brought anything to hand over."""
    actions = ast.unparse(defined(KafkaFetcher, "_get_actions_per_node"))
    assert "FetchRequest(self._fetch_max_wait_ms, self._fetch_min_bytes," in actions
    proc = defined(KafkaFetcher, "_proc_fetch_request")
    assert [a.arg for a in proc.args.args] == ["self", "assignment", "node_id", "request"]
    assert "needs_wakeup = True" in ast.unparse(proc)
    last = proc.body[-1]
    assert isinstance(last, ast.Return) and ast.unparse(last) == "return needs_wakeup"


def test_the_recovery_buffers_changelog_records_per_table() -> None:
    app = faust.App("symbols-recovery", broker="kafka://localhost:1", store="memory://")
    table = app.Table("buffered", partitions=1)
    recovery = app.tables.recovery
    assert recovery.buffers[table] == []
    flush = defined(Recovery, "flush_buffers")
    assert "apply_changelog_batch" in ast.unparse(flush)


def test_the_recovery_builds_active_offsets_after_their_highwaters_and_before_it_seeks() -> None:
    """``restore.guard_bulk_restore`` runs in ``_build_offsets`` for the active partitions: it
    reads the high watermarks built just before, and its offsets are those Faust then seeks."""
    source = ast.unparse(defined(Recovery, "_restart_recovery"))
    steps = [
        "T(self._build_highwaters)(consumer, assigned_active_tps, active_highwaters, 'active')",
        "T(self._build_offsets)(consumer, assigned_active_tps, active_offsets, 'active')",
        "T(self._build_offsets)(consumer, assigned_standby_tps, standby_offsets, 'standby')",
        "T(self._seek_offsets)(consumer, assigned_active_tps, active_offsets, 'active')",
    ]
    at = [source.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), at
    assert "self.active_highwaters" in source and "self.active_offsets" in source


def test_the_recovery_maps_changelog_partitions_to_tables_and_offsets(tmp_path: Path) -> None:
    app = faust.App(
        "symbols-restore", broker="kafka://localhost:1", store="rocksdb://", datadir=tmp_path
    )
    table = app.Table("restored", partitions=1)
    recovery = app.tables.recovery
    assert recovery.tp_to_table == {}
    assert dict(recovery.active_highwaters) == {}
    assert recovery.app.in_transaction is False
    assert table._on_changelog_event is None
    # ``restore.write`` writes what ``Store.apply_changelog_batch`` and ``set_persisted_offset``
    # write, in the database ``_db_for_partition`` opens
    assert table.data.use_rocksdict is True
    assert table.data.offset_key == b"__faust\0offset__"
    assert parameters(Store._db_for_partition) == ["self", "partition"]
    apply = ast.unparse(defined(Store, "apply_changelog_batch"))
    for step in (
        "rocksdict.WriteBatch(raw_mode=True)",
        "batches[msg.partition].delete(msg.key)",
        "batches[msg.partition].put(msg.key, msg.value)",
        "self._db_for_partition(partition).write(batch)",
        "self.set_persisted_offset(tp, offset)",
    ):
        assert step in apply, step
    persist = ast.unparse(defined(Store, "set_persisted_offset"))
    assert "self._db_for_partition(tp.partition).put(self.offset_key, str(offset).encode())" in (
        persist
    )


def test_mode_crashes_a_service_whose_task_raised_and_the_fetch_loop_reports_cancels() -> None:
    """``vital.guard_vital_services`` wraps ``crash`` (mode's, or its thread service's), which
    mode calls with the exception a service's task raised; Faust's fetch loop calls it with the
    cancellation it gets during a rebalance (a restart, which the guard leaves alone)."""
    from mode import Service
    from mode.threads import ServiceThread

    for owner in (Service, ServiceThread):
        (name,) = [a.arg for a in defined(owner, "crash").args.args][1:]
        assert isinstance(defined(owner, "crash"), ast.AsyncFunctionDef)
    assert name == "exc"  # ServiceThread's; Service's is ``reason``: passed positionally
    assert [a.arg for a in defined(Service, "_crash").args.args] == ["self", "reason"]
    execute = ast.unparse(defined(Service, "_execute_task"))
    assert "except BaseException as exc:\n        await self.crash(exc)" in execute
    assert "await super().crash(exc)" in ast.unparse(defined(ServiceThread, "crash"))
    fetch = ast.unparse(defined(FaustFetcher, "_fetcher"))
    assert "except asyncio.CancelledError as exc:" in fetch
    assert "await self.crash(exc)" in fetch
    # the root of a service's tree is what mode's walk and the guard crash
    app = faust.App("symbols-vital", broker="kafka://localhost:1")
    root = Service()
    app.beacon.reattach(root.beacon)
    assert app._fetcher.beacon.root is root.beacon
    assert not root._crashed.is_set()


def test_the_recovery_resumes_the_flow_after_it_resumed_the_standby_partitions() -> None:
    """``guard_standby_backlog``: Faust seeks and resumes the standby partitions, then awaits
    ``on_recovery_completed``, which resumes the flow control (clearing the tables' changelog
    queue, made with ``clear_on_resume``) and reads the consumer's ``flow_active``."""
    source = ast.unparse(defined(Recovery, "_restart_recovery"))
    steps = [
        "T(self._seek_offsets)(consumer, standby_tps, standby_offsets, 'standby')",
        "T(consumer.resume_partitions)(standby_tps)",
        "T(self.on_recovery_completed)(generation_id)",
    ]
    at = [source.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), at
    completed = ast.unparse(defined(Recovery, "on_recovery_completed"))
    assert "self.app.flow_control.resume()" in completed
    app = faust.App("symbols-backlog", broker="kafka://localhost:1", store="memory://")
    app.Table("queued", partitions=1)
    queue = app.tables.changelog_queue
    assert queue._clear_on_resume is True
    assert queue in set(app.flow_control._queues)
    assert isinstance(queue._queue, deque)
    assert "self._queue.clear()" in inspect.getsource(type(queue).clear)
    assert isinstance(app.consumer.flow_active, bool)
    assert isinstance(app.tables.recovery.standby_tps, set)


def test_faust_hands_its_live_active_partitions_to_aiokafkas_fetcher() -> None:
    """``guard_fetched_partitions``: Faust's fetch passes the set of active partitions (the
    one object it keeps changing) to ``Fetcher.fetched_records``, which reads an empty one as
    every partition and otherwise only tests membership."""
    wait = ast.unparse(defined(Consumer, "_wait_next_records"))
    assert "active_partitions = self._get_active_partitions()" in wait
    assert "active_partitions=active_partitions" in wait
    fetch = ast.unparse(defined(AIOKafkaConsumerThread, "_fetch_records"))
    assert "fetcher.fetched_records(active_partitions" in fetch
    fetched = ast.parse(textwrap.dedent(inspect.getsource(KafkaFetcher.fetched_records)))
    uses = [n for n in ast.walk(fetched) if isinstance(n, ast.Name) and n.id == "partitions"]
    tests = [
        n.test
        for n in ast.walk(fetched)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "partitions and tp not in partitions"
    ]
    assert len(tests) == 1
    assert len(uses) == 2  # read nowhere else
