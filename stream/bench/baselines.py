"""The baselines the pipeline is measured against, on the same topics and data.

- ``raw_loop``: an aiokafka consumer → ``codec.decode`` → producer loop, no Faust, no state: the
  Python limit on this broker.
- ``bare``: a Faust agent over the five source topics that decodes each record and sends one
  small record per event (no table).
- ``naive``: the same agent plus one table write per event (a per-lead counter): one changelog
  message per event, as a first stateful Faust agent would do it.
- ``batched``: the bare agent with the worker's Faust guards and its way of reading and sending:
  records taken in batches (``faust_guards.batches.take_batches``, the worker's batch settings)
  and sent straight to the producer (``stream.faust_guards.sending``), partitioned by the sender
  from its cache of keys, with Faust's monitor quiet (``sensors.quiet_monitor``). What is left is
  the price of Faust's per-record path, which every record the worker reads pays.

The Faust baselines use the worker's own Faust options (``stream.app.faust_options``), so only
the agent differs from the pipeline. Run one with ``python -m stream.bench.baselines KIND``
(settings from the ``LEADSTREAM_*`` environment, like ``leadstream worker``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from aiokafka import TopicPartition

from schemas import codec
from schemas.errors import DecodeError
from stream import faust_guards
from stream.app import faust_options
from stream.bench.cpu import CpuMeter
from stream.faust_guards import sensors
from stream.faust_guards.batches import take_batches
from stream.faust_guards.patches import guard_skipped_acks
from stream.faust_guards.sending import DirectSender
from stream.kafka import clients, topics
from stream.settings import Settings

KINDS = ("bare", "naive", "batched")


def output_topic(settings: Settings, kind: str) -> str:
    return settings.topic(f"bench.{kind}.out")


def _contract_topic(settings: Settings, name: str) -> str:
    prefix = settings.topic_prefix
    return name[len(prefix) :] if prefix and name.startswith(prefix) else name


def _summary(event: Any) -> bytes:
    return orjson.dumps({"event_id": event.event_id, "type": event.type})


def create_baseline_app(settings: Settings, kind: str) -> faust.App:
    """A Faust app with one baseline agent (``bare``, ``naive`` or ``batched``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown baseline {kind!r}")
    if kind == "batched":
        faust_guards.install()
    else:
        guard_skipped_acks()
    app = faust.App(**faust_options(settings))
    if kind == "batched":
        sensors.quiet_monitor(app)  # as the worker's app factory does
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": settings.topic_partitions,
    }
    sources = app.topic(*(settings.topic(spec.name) for spec in topics.SOURCES), **raw)
    out = app.topic(output_topic(settings, kind), **raw)
    table: Any = None
    if kind == "naive":
        table = app.Table(
            "bench-counts", partitions=settings.topic_partitions, key_type=bytes, value_type=bytes
        )
        table.key_serializer = "raw"
        table.value_serializer = "raw"

    async def agent(stream: Any) -> AsyncIterator[None]:
        async for item in stream.events():
            message = item.message
            try:
                event = codec.decode(
                    message.value,
                    now=datetime.now(UTC),
                    topic=_contract_topic(settings, message.topic),
                )
            except DecodeError:
                yield None
                continue
            if table is not None:
                key = message.key or b""
                count = table.get(key)
                table[key] = b"1" if count is None else str(int(count) + 1).encode()
            await out.send(key=message.key, value=_summary(event))
            yield None

    async def batched(stream: Any) -> AsyncIterator[None]:
        sender = DirectSender(app, partitions=settings.topic_partitions)  # as the worker's
        out_name = output_topic(settings, kind)
        batches = take_batches(stream, settings.batch_max, settings.batch_within_s)
        async for items in batches:
            now = datetime.now(UTC)
            for item in items:
                message = item.message
                try:
                    event = codec.decode(
                        message.value, now=now, topic=_contract_topic(settings, message.topic)
                    )
                except DecodeError:
                    continue
                await sender.send(out_name, message.key, _summary(event))
            yield None

    app.agent(sources, name=f"bench-{kind}", concurrency=1)(batched if kind == "batched" else agent)
    return app


async def raw_loop(
    settings: Settings, expected: int, limit_s: float, meter: CpuMeter | None = None
) -> tuple[int, float]:
    """Consume ``expected`` source records, decode, produce one record each; (count, seconds).

    Timed from the first record fetched to the last record's send acknowledged; ``meter``
    (this process and the broker) reads the CPU time used over the same interval.
    """
    consumer = await clients.consumer(
        settings,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = await clients.producer(settings, acks=1, linger_ms=5)
    out = output_topic(settings, "raw")
    try:
        names = [settings.topic(spec.name) for spec in topics.SOURCES]
        parts = [
            TopicPartition(name, p) for name in names for p in range(settings.topic_partitions)
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count = 0
        started: float | None = None
        deadline = time.monotonic() + limit_s
        while count < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            if started is None and batch:
                started = time.perf_counter()
                if meter is not None:
                    meter.start()
            now = datetime.now(UTC)
            for tp, records in batch.items():
                contract = _contract_topic(settings, tp.topic)
                for record in records:
                    count += 1
                    try:
                        event = codec.decode(record.value or b"", now=now, topic=contract)
                    except DecodeError:
                        continue
                    await producer.send(out, key=record.key, value=_summary(event))
        await producer.flush()
        ended = time.perf_counter()
        if meter is not None and started is not None:
            meter.stop()
        return count, ended - (started or ended)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m stream.bench.baselines bare|naive``: run that baseline as a Faust worker."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in KINDS:
        print(f"usage: python -m stream.bench.baselines {{{'|'.join(KINDS)}}}", file=sys.stderr)
        return 2
    settings = Settings()
    app = create_baseline_app(settings, args[0])
    worker = faust.Worker(app, loglevel="warning")
    worker.spinner = None  # as `leadstream worker` does: the spinner would log at DEBUG
    worker.execute_from_commandline()
    return 0  # pragma: no cover  (execute_from_commandline exits)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
