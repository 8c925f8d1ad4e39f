"""Every work-around of a faust-streaming or rocksdict defect, and the only code that touches
Faust's private members (ruff's SLF001 is enforced everywhere else).

``install()`` installs the class patches (idempotent, process-wide); ``stream.app.create_app``
calls it before it builds the app. The per-app guards (``sequence``, ``write_order``) are wired by
the processor, which owns what they guard. Why each exists: ``RELIABILITY.md#faust-guards``.

Faust symbols: ``Consumer`` is ``faust.transport.consumer.Consumer``, ``ProducerBuffer``
``faust.transport.producer.ProducerBuffer``, ``Collection`` ``faust.tables.base.Collection``,
``Topic`` ``faust.topics.Topic``, ``Store`` ``faust.stores.rocksdb.Store``, ``RocksDBOptions``
``faust.stores.rocksdb.RocksDBOptions``, ``Recovery`` ``faust.tables.recovery.Recovery``,
``Service`` ``mode.Service`` (the base of Faust's services).
``batches.take_batches`` and ``tables.writing_for`` are used by an agent that takes and applies
its records in batches, ``sending`` by
one that sends bytes records without ``Topic.send``'s per-record wrapping, ``restore.enable`` by
an app that restores its tables in bulk, ``sensors.quiet_monitor`` by the app factory,
``vital.exit_within`` by ``leadstream worker``. Tests are in ``tests/unit/faust_guards/``
except ``test_sequence``, ``test_sending``, ``test_restore`` and ``test_standby``
(``tests/integration/faust_guards/``, on the real broker; ``test_sending`` has a unit part too).

==============================  ===============================  ===============  ==================
guard                           Faust symbol patched or read     upstream issue   test
==============================  ===============================  ===============  ==================
patches.guard_skipped_acks      Consumer.ack, Message.tracked    faust-streaming  test_patches
                                                                 #216 #221 #318
patches.guard_read_offsets      Consumer.perform_seek,           none filed       test_patches
                                Consumer.getmany,
                                Consumer._read_offset
patches.guard_buffer_flush      ProducerBuffer._send_pending,    none filed       test_patches
                                ProducerBuffer.flush
patches.guard_commit_offsets    Consumer._new_offset, ._acked,   none filed       test_patches
                                ._acked_index, ._gap,
                                ._committed_offset
patches.guard_fetch_batching    AIOKafkaConsumerThread           none filed       test_patches
(set_fetch_batching)            ._create_worker_consumer,        (a cost)
                                AIOKafkaConsumer._fetch_min_bytes,
                                ._fetch_max_wait_ms
patches.guard_idle_fetch        aiokafka Fetcher                 none filed       test_patches,
(set_fetch_batching)            ._proc_fetch_request,            (a cost)         test_idle_fetch
                                ._fetch_min_bytes,
                                ._fetch_max_wait_ms
patches.guard_recovery_flush    Recovery._set_recovery_ended,    none filed       test_patches
                                Recovery.flush_buffers,
                                Recovery.buffers
patches                         AIOKafkaConsumerThread           none filed       test_patches,
.guard_fetched_partitions       ._fetch_records, aiokafka                         test_standby
                                Fetcher.fetched_records (read)
patches.guard_standby_backlog   Recovery.on_recovery_completed,  none filed       test_patches,
                                .standby_tps, .tables                             test_standby
                                (changelog_queue), mode
                                ThrowableQueue.clear, ._queue,
                                Consumer.flow_active
patches                         RocksDBOptions.as_options        none filed       test_patches
.guard_rocksdb_compression                                       (a cost)
patches                         RocksDBOptions.open              none filed       test_patches
.guard_rocksdb_unlogged_writes                                   (a cost)
delivery.guard_eager_delivery   Consumer._drain_messages         none filed       test_delivery
                                (a pinned copy), .wait_first     (a cost)
delivery.guard_raw_decode       Topic._compile_decode, .decode,  none filed       test_delivery
                                Schema (key/value types and      (a cost)
                                serialisers), codecs.raw,
                                App.conf.Event
delivery                        Conductor._build_handler,        none filed       test_delivery
.guard_direct_handover          ._tp_to_callback(_lock),         (a cost)
                                ConductorCompiler.build (pinned
                                closure), FlowControlEvent,
                                ProducerBuffer, FlowControlQueue
requests.guard_full_requests    aiokafka MessageAccumulator      none filed       test_requests
                                .drain_by_nodes, ._batches,      (a cost)
                                ._cluster, MessageBatch
                                ._linger_time
local_stores                    Collection.send_changelog,       none filed       test_local_stores
.install_write_tracking         Collection._on_changelog_sent
sending.DirectSender            App.maybe_start_producer,        none filed       test_sending,
                                Producer.send,                                    test_faust_symbols
                                TransactionManager.send
sending.guard_topic_producer    Topic._get_producer,             none filed       test_sending
                                App.in_transaction               (a cost)
write_order.hold_changelog      Topic.send_soon,                 none filed       test_write_order
                                Topic.as_future_message,
                                producer send_soon (one topic)
write_order.hold_flush          producer flush (one app)         none filed       test_write_order
sequence.SequenceGuard          Consumer._committed_offset,      none filed       test_sequence
                                ._acked, ._acked_index, ._gap
restore.guard_bulk_restore      Recovery._build_offsets,         none filed       test_restore,
(restore.enable)                .tp_to_table,                    (a cost)         test_faust_symbols
                                .active_highwaters,
                                Collection._on_changelog_event
readers                         Consumer._committed_offset,      none filed       test_faust_symbols
                                Store._dbs, ._dbs_for_actives
sensors.quiet_monitor           App.monitor, Monitor's per-      none filed       test_sensors
(sensors.IdleMonitor)           record hooks, conf               (a cost)
                                .web_stats_enabled,
                                .web_metrics_enabled
vital.guard_vital_services      Service.crash, ._crash,          none filed       test_vital,
(vital.exit_within)             ._crashed, .beacon of Fetcher,                    test_faust_symbols
                                Consumer, ConsumerThread,
                                Conductor, Producer,
                                ProducerBuffer,
                                TransactionManager,
                                TableManager, Recovery
batches.take_batches            Stream.channel, ._active_agens,  none filed       test_batches
                                ._on_*_in/_out, channel queue    (a cost)
                                (get_nowait, _errors), App
                                .flow_control,
                                .consumer_generation_id,
                                .topics._acking_topics,
                                Consumer._unacked_messages
tables.writing_for              faust.streams._current_event     faust-streaming  test_tables
                                (read by current_event())        #497
tables.read                     Store._db_for_partition,         none filed       test_tables
                                Collection.is_global,            (a cost)
                                .use_partitioner
==============================  ===============================  ===============  ==================

Every symbol above is checked against the installed Faust by
``tests/unit/faust_guards/test_faust_symbols.py``, so a Faust upgrade fails there first.

With ``guard_fetched_partitions`` and ``guard_standby_backlog`` a standby replica holds every
changelog record, and a partition promoted from it keeps that copy: Faust's recovery reads on
from the standby's offset (``test_patches``; ``test_standby`` and scenario 11 with one standby
replica, ``RELIABILITY.md``, on the real broker).
"""

from __future__ import annotations

__all__ = ["install"]


def install() -> None:
    """Install every class patch of Faust (idempotent; affects every Faust app in the
    process)."""
    # imported here: ``readers`` (used by the metrics) stays free of Faust imports
    from stream.faust_guards import (  # noqa: PLC0415
        delivery,
        local_stores,
        patches,
        requests,
        sending,
        vital,
    )

    patches.guard_skipped_acks()
    patches.guard_read_offsets()
    patches.guard_buffer_flush()
    patches.guard_commit_offsets()
    patches.guard_recovery_flush()
    patches.guard_standby_backlog()
    patches.guard_fetched_partitions()
    patches.guard_rocksdb_compression()
    patches.guard_rocksdb_unlogged_writes()
    local_stores.install_write_tracking()
    delivery.guard_eager_delivery()
    delivery.guard_raw_decode()
    delivery.guard_direct_handover()
    requests.guard_full_requests()
    sending.guard_topic_producer()
    vital.guard_vital_services()
