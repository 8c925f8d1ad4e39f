"""The Redis projector: keeps the read model (`stream.readmodel.model`) up to date from Kafka.

It reads ``leads.scores.v1``, ``leads.stage-changes.v1`` and ``leads.dead-letters.v1`` with its
own Kafka consumer in its own consumer group (``{app_id}-projector``), as a service of the
worker. So its lag is its own, and nothing it waits for can hold up the scoring agent: Faust
agents share one consumer, and an agent stuck on Redis would stall rebalances (which wait for
every agent's buffer to drain) and, if it raised, crash the worker.

Each batch is applied to Redis in one pipeline; its offsets are committed only after Redis
acknowledged it. When a batch finds the read model gone (Redis restarted without persistence or
was flushed: `ReadModel.apply` tells), the projector seeks back to the beginning of its
partitions and replays them. While Redis is unreachable the batch is retried with exponential
backoff (up to `REDIS_RETRY_MAX_SECONDS`), nothing is committed, and scoring goes on; when Redis
returns the projector carries on from where it stopped, so nothing is lost. Every write is
idempotent (see
`stream.readmodel.model`), so a batch applied twice, after a crash or a rebalance, changes nothing.

A record that does not decode is logged with its coordinates and skipped: the topics are our own
output, so that is a bug to see in the logs, not a reason to stop the read model.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from schemas import codec
from schemas.errors import DecodeError
from schemas.outputs import AccountStageChanged, DeadLetter, StageChanged
from stream import metrics
from stream.errors import InfrastructureError
from stream.kafka import clients, topics
from stream.kafka.admin import describe_topics
from stream.readmodel.model import Applied, Erase, ReadModel, Write
from stream.settings import Settings

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "Projector",
    "RebuildStats",
    "decode_record",
    "rebuild",
    "register",
]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS: Final = 30.0
REDIS_RETRY_MAX_SECONDS: Final = 2.0
"""Longest wait between two tries of a batch while Redis is down: the read model catches up
within seconds of Redis' return, however long it was away."""
BATCH_RECORDS: Final = 500
PROJECTED = (
    topics.SCORES,
    topics.STAGE_CHANGES,
    topics.DEAD_LETTERS,
    topics.ACCOUNT_SCORES,
    topics.ACCOUNT_STAGE_CHANGES,
)
REBUILT = (topics.SCORES, topics.STAGE_CHANGES, topics.ACCOUNT_SCORES, topics.ACCOUNT_STAGE_CHANGES)
"""The topics a rebuild reads from the beginning (dead letters are counters, not state)."""


def decode_record(  # noqa: PLR0911 - one return per projected topic
    contract_topic: str, key: bytes | None, value: bytes | None
) -> Write | None:
    """The read-model write for one record of a projected topic (None: nothing to do)."""
    if contract_topic == topics.SCORES.name:
        if value is None:  # a tombstone: the lead was erased under this model
            if key is None:
                return None
            score_key = codec.decode_score_key(key)
            return Erase(lead_id=score_key.lead_id, model=score_key.model)
        record: Write = codec.decode_score(value)
        return record
    if value is None:
        return None
    if contract_topic == topics.STAGE_CHANGES.name:
        return codec.decode_stage_change(value)
    if contract_topic == topics.ACCOUNT_SCORES.name:
        return codec.decode_account_score(value)
    if contract_topic == topics.ACCOUNT_STAGE_CHANGES.name:
        return codec.decode_account_stage_change(value)
    return codec.decode_dead_letter(value)


class Projector:
    """Consumes the projected topics and applies them to a `ReadModel`."""

    def __init__(
        self,
        settings: Settings,
        read_model: ReadModel,
        *,
        group_id: str | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.read_model = read_model
        self.group_id = group_id or f"{settings.app_id}-projector"
        self._sleep = sleep
        self._contract = {settings.topic(spec.name): spec.name for spec in PROJECTED}
        self._consumer: AIOKafkaConsumer | None = None
        self.redis_up = True

    async def start(self) -> None:
        self._consumer = await clients.consumer(
            self.settings,
            *self._contract,
            role="projector",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH_RECORDS,
        )

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def run(self) -> None:
        """Project until cancelled or stopped."""
        while self._consumer is not None:
            await self.step()

    async def step(self, timeout_ms: int = 1000) -> int:
        """Fetch one batch, apply it (retrying while Redis is down), commit; records applied."""
        consumer = self._consumer
        assert consumer is not None, "start() the projector first"
        batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=BATCH_RECORDS)
        writes: list[Write] = []
        per_topic: dict[str, int] = {}
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            contract = self._contract[tp.topic]
            for record in records:
                write = self._decode(contract, tp, record)
                if write is not None:
                    writes.append(write)
                offsets[tp] = record.offset + 1
            per_topic[contract] = per_topic.get(contract, 0) + len(records)
        if writes or offsets:
            applied = await self._apply_with_retry(writes)
            if not applied.had_marker:
                # Redis lost the read model (restarted empty, or flushed): replay everything.
                log.warning("projector: the read model is empty; replaying from the beginning")
                assigned = consumer.assignment()
                if assigned:
                    await consumer.seek_to_beginning(*assigned)
                return len(writes)
        if offsets:
            await consumer.commit(offsets)
        for topic, count in per_topic.items():
            metrics.PROJECTOR_APPLIED.labels(topic=topic).inc(count)
        await self._report_lag(consumer)
        return len(writes)

    def _decode(self, contract: str, tp: TopicPartition, record: Any) -> Write | None:
        try:
            write = decode_record(contract, record.key, record.value)
        except DecodeError as exc:
            log.error(
                "projector: skipped %s[%s]@%s: %s", tp.topic, tp.partition, record.offset, exc
            )
            return None
        count(write)
        return write

    async def _apply_with_retry(self, writes: Sequence[Write]) -> Applied:
        backoff = 0.5
        while True:
            try:
                applied = await self.read_model.apply(writes)
            except (RedisError, OSError) as exc:
                metrics.PROJECTOR_REDIS_ERRORS.inc()
                metrics.PROJECTOR_REDIS_UP.set(0)
                if self.redis_up:
                    log.warning(
                        "projector: Redis unavailable (%s: %s); retrying, scoring goes on",
                        type(exc).__name__,
                        exc,
                    )
                self.redis_up = False
                await self._sleep(backoff)
                backoff = min(backoff * 2, REDIS_RETRY_MAX_SECONDS)
                continue
            if not self.redis_up:
                log.warning("projector: Redis is back; catching up")
            self.redis_up = True
            metrics.PROJECTOR_REDIS_UP.set(1)
            metrics.PROJECTOR_LAST_APPLIED.set(time.time())
            return applied

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        lags: dict[str, int] = dict.fromkeys(self._contract.values(), 0)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            lags[self._contract[tp.topic]] += max(highwater - position, 0)
        for topic, lag in lags.items():
            metrics.PROJECTOR_LAG.labels(topic=topic).set(lag)


def count(write: Write | None) -> None:
    """The domain metrics a projected record stands for."""
    if isinstance(write, StageChanged):
        metrics.stage_change(
            write.model, write.from_stage.value if write.from_stage else None, write.to_stage.value
        )
    elif isinstance(write, AccountStageChanged):
        metrics.account_stage_change(
            write.model, write.from_stage.value if write.from_stage else None, write.to_stage.value
        )
    elif isinstance(write, DeadLetter):
        metrics.dead_letter(write.error_kind.value)


# ----------------------------------------------------------------------------- the service


def register(app: Any, settings: Settings) -> None:
    """Run the projector as a service of `app`'s worker (unless disabled)."""
    if not settings.projector_enabled:
        return
    from mode import Service  # noqa: PLC0415

    class ProjectorService(Service):  # type: ignore[misc]
        """Starts and stops the projector with the worker; restarts its loop if it fails."""

        async def on_start(self) -> None:
            self.projector = Projector(settings, ReadModel.from_settings(settings))
            self.add_future(self._supervise())

        async def _supervise(self) -> None:
            backoff = 1.0
            while not self.should_stop:
                try:
                    await self.projector.start()
                    backoff = 1.0
                    await self.projector.run()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self.should_stop:  # on_stop closed the consumer under the loop
                        return
                    if isinstance(exc, KafkaError | OSError | InfrastructureError):
                        log.warning("projector: Kafka unavailable (%s); retrying", exc)
                    else:
                        log.exception("projector: failed; restarting")
                try:
                    await self.projector.stop()
                except Exception:
                    log.debug("projector: stop failed", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

        async def on_stop(self) -> None:
            await self.projector.stop()
            await self.projector.read_model.close()

    app.service(ProjectorService)


# ----------------------------------------------------------------------------- rebuild


class RebuildStats:
    """What a rebuild did."""

    def __init__(self) -> None:
        self.records = 0
        self.deleted = 0


async def rebuild(
    settings: Settings,
    *,
    read_model: ReadModel | None = None,
    out: TextIO = sys.stderr,
    clear: bool = True,
) -> RebuildStats:
    """Rebuild the read model from the beginning of the scores, stage-changes and account topics.

    Reads each topic from its first offset up to the end offsets taken at the start (the scores
    topic is compacted: the latest score per lead and model), with a progress bar on `out`.
    Raises `InfrastructureError` when Kafka or Redis cannot be reached.
    """
    model = read_model or ReadModel.from_settings(settings)
    names = {settings.topic(spec.name): spec.name for spec in REBUILT}
    reader = clients.consumer(
        settings,
        role="rebuild",
        start_timeout=20,
        group_id=None,
        enable_auto_commit=False,
        # the position reset that assign() starts uses this policy and can land after
        # seek_to_beginning's own reset (aiokafka): both must go to the beginning
        auto_offset_reset="earliest",
        request_timeout_ms=15000,
    )
    try:
        async with reader as consumer:
            try:
                await model.redis.ping()
            except (OSError, TimeoutError, RedisError) as exc:
                raise InfrastructureError(f"Redis unreachable: {exc!r}") from exc
            return await _replay(settings, consumer, model, names, out=out, clear=clear)
    finally:
        if read_model is None:
            await model.close()


async def _replay(
    settings: Settings,
    consumer: AIOKafkaConsumer,
    model: ReadModel,
    names: dict[str, str],
    *,
    out: TextIO,
    clear: bool,
) -> RebuildStats:
    stats = RebuildStats()
    partitions = [
        TopicPartition(state.name, p)
        for state in await describe_topics(settings, list(REBUILT))
        for p in range(state.partitions or 0)
    ]
    if not partitions:
        raise InfrastructureError(f"topics {sorted(names)} not found on the broker")
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    begin = await consumer.beginning_offsets(partitions)
    end = await consumer.end_offsets(partitions)
    total = sum(end[tp] - begin[tp] for tp in partitions)
    if clear:
        stats.deleted = await model.clear()
    remaining = {tp for tp in partitions if end[tp] > begin[tp]}
    done = 0
    last_print = 0.0
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
        writes: list[Write] = []
        for tp, records in batch.items():
            for record in records:
                if record.offset >= end[tp]:
                    continue
                done += 1
                try:
                    write = decode_record(names[tp.topic], record.key, record.value)
                except DecodeError as exc:
                    out.write(f"\nskipped {tp.topic}[{tp.partition}]@{record.offset}: {exc}\n")
                    continue
                if write is not None:
                    writes.append(write)
        for tp in list(remaining):  # compaction leaves gaps: compare positions, not offsets
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        try:
            await model.apply(writes)
        except (RedisError, OSError) as exc:
            raise InfrastructureError(f"Redis unreachable: {exc!r}") from exc
        stats.records += len(writes)
        if time.monotonic() - last_print > 0.2:
            last_print = time.monotonic()
            _progress(out, done, total)
    _progress(out, total, total)
    out.write("\n")
    return stats


def _progress(out: TextIO, done: int, total: int) -> None:
    width = 30
    filled = width if total == 0 else int(width * done / total)
    share = 100.0 if total == 0 else 100.0 * done / total
    out.write(
        f"\rrebuilding [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({share:.0f}%)"
    )
    out.flush()
