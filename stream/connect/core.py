"""The delivery core: reads stage changes and drives one `Destination` until each is done.

    connector = Connector(settings, destination, DeliveryPolicy.from_settings(settings))
    await connector.run()            # until cancelled or `stop()`

Guarantees:

- **Its own consumer group** (``{app_id}-connect-{destination}`` unless
  ``LEADSTREAM_CONNECT_GROUP_ID`` says otherwise) on ``leads.stage-changes.v1`` (and
  ``leads.account-stage-changes.v1`` when started with accounts): every connector kind reads the
  whole topic at its own pace.
- **At least once, in order per lead** (per account for account stage changes). A lead's
  records wait in a lane; only the lane's head is ever sent, and the next one only once the head
  is done. Offsets are committed only for records
  that are done (delivered, skipped or dead-lettered): per partition, the lowest offset still in
  flight (`PartitionLedger`). After a crash the records past the commit are sent again; the
  receiver drops duplicates by the idempotency key (the stage change's ``event_id``).
- **Retries** with exponential backoff and full jitter, or exactly the ``Retry-After`` the
  receiver asked for (which also holds every call to that destination until it has passed).
  A permanent verdict, or transient failures beyond ``max_attempts`` calls or ``max_retry_s``
  seconds, send the record to ``leads.connector-dead-letters.v1`` with the reason, the last
  request and response (masked) and the original record. A record that does not decode goes
  there too. Writing a dead letter waits for the broker's acknowledgement before the record
  counts as done; a broker that cannot take it stops the connector (an outage is a crash).
- **A bounded window.** At most ``max_in_flight`` records are held read and not done; at that
  many the consumer's partitions are paused (it goes on polling, so it stays in the group) and
  resumed below half. A slow or down receiver costs a flat amount of memory however long it lasts.
- **A rate limit** per destination (`TokenBucket`: the destination's `rate_per_s` and `burst`,
  or the settings'), counting requests (one per batch, or one per change for destinations that
  send one request per change, or what the destination says a batch needs). A batch request
  is taken when its turn has come, so with a backlog every request carries a full batch.
- **Batches** of up to the destination's `max_batch`, at most one change per lead, with up to
  ``concurrency`` calls in flight at once across leads.
- A rebalance lets calls already made for the revoked partitions finish (a bounded wait),
  commits what is done and drops the rest, which the partitions' next owner reads again.

`lead_erased` records are passed to destinations with an ``erase`` method, and account stage
changes to those with a ``deliver_accounts`` method; each is skipped for the others.
`leadstream connect redrive` runs the same core over the dead letters
(`DeadLetterSource`) and stops when it has read them all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from schemas import codec
from schemas.errors import DecodeError
from schemas.outputs import (
    CONNECTOR_EXCHANGE_MAX_CHARS,
    DEAD_LETTER_MAX_ORIGINAL_BYTES,
    ConnectorDeadLetter,
    ConnectorExchange,
    ConnectorFailure,
    LeadErasedRecord,
)
from stream.connect import telemetry
from stream.connect.destination import (
    AccountChange,
    Change,
    Destination,
    Erasure,
    Exchange,
    Outcome,
    Verdict,
    requests_for,
    sends_per_change,
    takes_accounts,
    takes_erasures,
)
from stream.connect.flow import Backoff, PartitionLedger, TokenBucket, retry_delay
from stream.errors import InfrastructureError, LeadstreamError
from stream.kafka import clients, topics
from stream.kafka.admin import describe_topics
from stream.logmask import mask
from stream.settings import Settings

__all__ = [
    "Connector",
    "DeadLetterSource",
    "DeliveryPolicy",
    "Report",
    "Source",
    "StageChangeSource",
    "decode_account_stage_change",
    "decode_stage_change",
]

log = logging.getLogger(__name__)

Item = Change | Erasure | AccountChange

POLL_MS: Final = 200
"""Longest wait of one poll."""
PAUSED_POLL_MS: Final = 20
"""Longest wait of one poll while the window is full: how quickly it notices it may resume."""
POLL_RECORDS: Final = 500


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How the core paces, retries and bounds its work (see the module docstring)."""

    max_in_flight: int = 1000
    concurrency: int = 16
    max_attempts: int = 100
    max_retry_s: float = 3600.0
    backoff: Backoff = field(default_factory=Backoff)
    rate_per_s: float | None = None
    """`None`: the destination's own `rate_per_s`."""
    burst: int | None = None
    commit_interval_s: float = 1.0
    drain_s: float = 10.0
    """Longest wait, at a rebalance or a stop, for calls already made to finish."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            max_in_flight=settings.connect_max_in_flight,
            concurrency=settings.connect_concurrency,
            max_attempts=settings.connect_max_attempts,
            max_retry_s=settings.connect_max_retry_s,
            backoff=Backoff(settings.connect_backoff_initial_s, settings.connect_backoff_max_s),
            rate_per_s=settings.connect_rate_per_s,
            burst=settings.connect_burst,
            commit_interval_s=settings.connect_commit_interval_s,
        )


@dataclass(slots=True)
class Report:
    """What a connector did (also in its metrics)."""

    read: int = 0
    delivered: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    calls: int = 0


def decode_stage_change(topic: str, partition: int, offset: int, value: bytes | None) -> Item:
    """The change (or erasure) in a record of the stage-changes topic; `DecodeError` if none."""
    record = codec.decode_stage_change(value)  # type: ignore[arg-type]  # None raises DecodeError
    if isinstance(record, LeadErasedRecord):
        return Erasure(record, topic, partition, offset, value)
    return Change(record, topic, partition, offset, value)


def decode_account_stage_change(
    topic: str, partition: int, offset: int, value: bytes | None
) -> AccountChange:
    """The account stage change in a record of the account stage-changes topic; `DecodeError`
    if none."""
    record = codec.decode_account_stage_change(value)  # type: ignore[arg-type]  # None raises
    return AccountChange(record, topic, partition, offset, value)


class Source(Protocol):
    """Where the records come from and which of them to deliver."""

    topic: str
    """The full topic name (with the environment prefix) of the main topic."""

    def decode(self, topic: str, partition: int, offset: int, value: bytes | None) -> Item | None:
        """The item to deliver; `None`: nothing to do for this record; `DecodeError`: bad."""
        ...

    async def attach(self, consumer: AIOKafkaConsumer, listener: ConsumerRebalanceListener) -> None:
        """Subscribe or assign `consumer`."""
        ...

    def wants(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the record is this run's at all (a redrive stops at the end it saw at the
        start: later records are neither read nor committed)."""
        ...

    async def finished(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether reading is over (a redrive that reached the end); a stream never is."""
        ...


class StageChangeSource:
    """``leads.stage-changes.v1`` in the connector's consumer group, from the committed offsets
    (the earliest record for a new group); with `accounts`, ``leads.account-stage-changes.v1``
    too."""

    def __init__(self, settings: Settings, *, accounts: bool = False) -> None:
        self.topic = settings.topic(topics.STAGE_CHANGES.name)
        self.account_topic = settings.topic(topics.ACCOUNT_STAGE_CHANGES.name) if accounts else None

    def decode(self, topic: str, partition: int, offset: int, value: bytes | None) -> Item | None:
        if topic == self.account_topic:
            return decode_account_stage_change(topic, partition, offset, value)
        return decode_stage_change(topic, partition, offset, value)

    async def attach(self, consumer: AIOKafkaConsumer, listener: ConsumerRebalanceListener) -> None:
        names = [self.topic] if self.account_topic is None else [self.topic, self.account_topic]
        consumer.subscribe(names, listener=listener)

    def wants(self, tp: TopicPartition, offset: int) -> bool:
        return True

    async def finished(self, consumer: AIOKafkaConsumer) -> bool:
        return False


class DeadLetterSource:
    """The dead letters of one destination, read up to the end offsets at the start.

    `since`: only those written at or after it (seeking there first); `from_start`: every one
    still on the topic; neither: those the redrive group has not read yet (earliest for a new
    group). Dead letters the redrive itself writes land past the end and are left for later.
    """

    def __init__(
        self,
        settings: Settings,
        destination: str,
        *,
        since: datetime | None = None,
        from_start: bool = False,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic(topics.CONNECTOR_DEAD_LETTERS.name)
        self.account_topic = settings.topic(topics.ACCOUNT_STAGE_CHANGES.name)
        self.destination = destination
        self.since = since
        self.from_start = from_start
        self.end: dict[TopicPartition, int] = {}

    def decode(self, topic: str, partition: int, offset: int, value: bytes | None) -> Item | None:
        letter = codec.decode_connector_dead_letter(value)  # type: ignore[arg-type]
        if letter.destination != self.destination:
            return None
        if self.since is not None and letter.occurred_at < self.since:
            return None
        if letter.failure is ConnectorFailure.UNDECODABLE:
            return None  # nothing to send: the record never was a stage change
        if letter.source_topic == self.account_topic:
            return decode_account_stage_change(topic, partition, offset, letter.original)
        return decode_stage_change(topic, partition, offset, letter.original)

    async def attach(self, consumer: AIOKafkaConsumer, listener: ConsumerRebalanceListener) -> None:
        (state,) = await describe_topics(self.settings, [topics.CONNECTOR_DEAD_LETTERS])
        if not state.partitions:
            raise InfrastructureError(f"topic {self.topic} not found on the broker")
        tps = [TopicPartition(self.topic, p) for p in range(state.partitions)]
        consumer.assign(tps)
        self.end = await consumer.end_offsets(tps)
        if self.from_start:
            await consumer.seek_to_beginning(*tps)
        elif self.since is not None:
            found = await consumer.offsets_for_times(
                dict.fromkeys(tps, int(self.since.timestamp() * 1000))
            )
            for tp in tps:
                at = found.get(tp)
                consumer.seek(tp, at.offset if at is not None else self.end[tp])
        else:
            committed = {tp: await consumer.committed(tp) for tp in tps}
            starts = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, committed[tp] if committed[tp] is not None else starts[tp])

    def wants(self, tp: TopicPartition, offset: int) -> bool:
        return offset < self.end.get(tp, 0)

    async def finished(self, consumer: AIOKafkaConsumer) -> bool:
        for tp, end in self.end.items():
            if await consumer.position(tp) < end:
                return False
        return True


@dataclass(slots=True, eq=False)
class _Pending:
    """One record read and not done."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    item: Item
    generation: int
    attempts: int = 0
    first_attempt_at: datetime | None = None
    first_attempt_mono: float | None = None
    done: bool = False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka carries no types
    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.connector.release(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.connector.assigned(list(assigned))


class Connector:
    """Delivers the records of one `Source` to one `Destination` (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        destination: Destination,
        policy: DeliveryPolicy,
        *,
        source: Source | None = None,
        group_id: str | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.destination = destination
        self.policy = policy
        self.source: Source = source or StageChangeSource(settings)
        self.group_id = (
            group_id or settings.connect_group_id or f"{settings.app_id}-connect-{destination.name}"
        )
        self.report = Report()
        self._rng = rng or random.Random()
        self._clock = clock
        self._bucket = TokenBucket(
            policy.rate_per_s or destination.rate_per_s,
            policy.burst or destination.burst,
            clock(),
        )
        self._erases = takes_erasures(destination)
        self._accounts = takes_accounts(destination)
        # a destination sending one request per change sends a batch at once: at most a burst
        self._per_change = sends_per_change(destination)
        self._batch_limit = (
            min(destination.max_batch, int(self._bucket.burst))
            if self._per_change
            else destination.max_batch
        )
        self._dead_letter_topic = settings.topic(topics.CONNECTOR_DEAD_LETTERS.name)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._ledgers: dict[TopicPartition, PartitionLedger] = {}
        self._positions: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._lanes: dict[tuple[TopicPartition, str], deque[_Pending]] = {}
        self._ready: deque[tuple[TopicPartition, str]] = deque()
        self._queued: set[tuple[TopicPartition, str]] = set()
        self._ready_event = asyncio.Event()
        self._pacing = asyncio.Lock()
        self._calls_by_tp: Counter[TopicPartition] = Counter()
        self._generation: dict[TopicPartition, int] = {}
        self._in_flight = 0
        self._paused: set[TopicPartition] = set()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._labels = {"destination": destination.name}
        self._delivered = telemetry.DELIVERED.labels(**self._labels)
        self._latency = telemetry.LATENCY.labels(**self._labels)

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        """Ask `run` to finish: calls already made finish, what is done is committed."""
        self._stopping.set()

    async def run(self) -> Report:
        """Deliver until `stop()`, cancellation, or (for a finite source) the end."""
        self._consumer = await clients.consumer(
            self.settings,
            role=f"connect-{self.destination.name}",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=POLL_RECORDS,
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(self.settings.session_timeout_s * 1000 / 3),
        )
        try:
            self._producer = await clients.producer(
                self.settings,
                role=f"connect-{self.destination.name}",
                acks="all",
                enable_idempotence=self.settings.producer_idempotence,
            )
            tasks: list[asyncio.Task[None]] = []
            try:
                await self.source.attach(self._consumer, _Listener(self))
                tasks = [
                    asyncio.create_task(self._sender(), name=f"connect-send-{i}")
                    for i in range(self.policy.concurrency)
                ]
                tasks.append(asyncio.create_task(self._committer(), name="connect-commit"))
                for task in tasks:
                    task.add_done_callback(self._task_done)
                await self._read_loop(self._consumer)
                await self._drain(set(self._ledgers))
                await self._commit()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await clients.close(self._producer)
        finally:
            await clients.close(self._consumer)
            self._consumer = None
        if self._failure is not None:
            raise self._failure
        return self.report

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            self._stopping.set()

    async def _read_loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            self._pace(consumer)
            room = self.policy.max_in_flight - self._in_flight
            batch = await consumer.getmany(
                timeout_ms=PAUSED_POLL_MS if self._paused else POLL_MS,
                max_records=max(1, min(POLL_RECORDS, room)),
            )
            for tp, records in batch.items():
                for record in records:
                    if tp not in consumer.assignment():
                        break  # revoked while this batch was being admitted
                    await self._admit(tp, record)
            if self._in_flight == 0 and await self.source.finished(consumer):
                return
            self._report_gauges(consumer)

    def _pace(self, consumer: AIOKafkaConsumer) -> None:
        """Pause every assigned partition at a full window; resume below half of it."""
        assigned = consumer.assignment()
        if self._in_flight >= self.policy.max_in_flight:
            wanted = set(assigned) - self._paused
            if wanted:
                consumer.pause(*wanted)
                self._paused |= wanted
                log.info(
                    "connector %s: %d records in flight; partitions paused",
                    self.destination.name,
                    self._in_flight,
                )
        elif self._paused and self._in_flight <= self.policy.max_in_flight // 2:
            resume = self._paused & set(assigned)
            if resume:
                consumer.resume(*resume)
            self._paused.clear()
        telemetry.PAUSED.labels(**self._labels).set(len(self._paused & set(assigned)))
        telemetry.ASSIGNED.labels(**self._labels).set(len(assigned))

    # ------------------------------------------------------------------ admitting records

    async def _admit(self, tp: TopicPartition, record: Any) -> None:
        if not self.source.wants(tp, record.offset):
            return
        self.report.read += 1
        self._positions[tp] = record.offset + 1
        ledger = self._ledgers.setdefault(tp, PartitionLedger())
        try:
            item = self.source.decode(tp.topic, tp.partition, record.offset, record.value)
        except DecodeError as exc:
            ledger.read(record.offset)
            pending = _Pending(tp, record.offset, record.key, record.value, _NO_ITEM, 0)
            self._in_flight += 1
            await self._dead_letter(pending, ConnectorFailure.UNDECODABLE, str(exc), None)
            return
        if item is None or not self._takes(item):
            ledger.passed(record.offset)
            if item is not None:
                self._count_skipped()
            return
        ledger.read(record.offset)
        self._in_flight += 1
        # the record's own bytes: a redriven change's are the dead letter's original
        raw = item.raw if item.raw is not None else record.value
        pending = _Pending(tp, record.offset, record.key, raw, item, self._generation.get(tp, 0))
        lane_key = (tp, item.lane)
        lane = self._lanes.get(lane_key)
        if lane is None:
            self._lanes[lane_key] = deque([pending])
            self._queue(lane_key)
        else:
            lane.append(pending)

    def _takes(self, item: Item) -> bool:
        """Whether the destination takes this kind of record at all."""
        if isinstance(item, Erasure):
            return self._erases
        if isinstance(item, AccountChange):
            return self._accounts
        return True

    def _queue(self, lane_key: tuple[TopicPartition, str]) -> None:
        """The lane's head may be sent (once: a lane is queued at most once)."""
        if lane_key in self._lanes and lane_key not in self._queued:
            self._queued.add(lane_key)
            self._ready.append(lane_key)
            self._ready_event.set()

    def _requeue(self, pending: _Pending) -> None:
        """A retry's wait is over: queue its lane if the record is still this connector's."""
        if pending.done or not self._current(pending):
            return
        lane_key = (pending.tp, pending.item.lane)
        lane = self._lanes.get(lane_key)
        if lane and lane[0] is pending:
            self._queue(lane_key)

    # ------------------------------------------------------------------ sending

    async def _sender(self) -> None:
        while True:
            await self._ready_event.wait()
            if self._per_change:
                batch = self._take_batch()
                if batch:
                    await self._tokens(requests_for(self.destination, [p.item for p in batch]))
            else:
                # A batch request waits for its turn first and then takes every head ready by
                # then, so a paced connector sends full batches rather than what was ready
                # when it started to wait. One sender waits for the bucket at a time, so a
                # batch needing a second request gets the very next turn.
                async with self._pacing:
                    await self._tokens(1)
                    batch = self._take_batch()
                    if not batch:
                        self._bucket.refund(1, self._clock())
                        continue
                    more = requests_for(self.destination, [p.item for p in batch]) - 1
                    if more > 0:
                        await self._tokens(more)
            if batch:
                await self._call(batch)

    async def _tokens(self, cost: int) -> None:
        wait = self._bucket.reserve(cost, self._clock())
        if wait > 0:
            await asyncio.sleep(wait)

    def _take_batch(self) -> list[_Pending]:
        """Up to `max_batch` lane heads of one kind (changes or erasures), one per lead (and no
        more than the bucket's burst for a destination sending a request per change)."""
        batch: list[_Pending] = []
        kind: type | None = None
        skipped: list[tuple[TopicPartition, str]] = []
        while self._ready and len(batch) < self._batch_limit:
            lane_key = self._ready.popleft()
            lane = self._lanes.get(lane_key)
            if not lane:
                self._queued.discard(lane_key)
                continue
            head = lane[0]
            if kind is None:
                kind = type(head.item)
            if type(head.item) is not kind:
                skipped.append(lane_key)
                continue
            self._queued.discard(lane_key)
            batch.append(head)
        self._ready.extendleft(reversed(skipped))
        if not self._ready:
            self._ready_event.clear()
        return batch

    async def _call(self, batch: list[_Pending]) -> None:
        now = datetime.now(UTC)
        mono = self._clock()
        for pending in batch:
            pending.attempts += 1
            if pending.first_attempt_at is None:
                pending.first_attempt_at, pending.first_attempt_mono = now, mono
            self._calls_by_tp[pending.tp] += 1
        try:
            self.report.calls += 1
            telemetry.CALLS.labels(**self._labels).inc()
            if isinstance(batch[0].item, Erasure):
                erasures = [p.item for p in batch if isinstance(p.item, Erasure)]
                outcomes = await self.destination.erase(erasures)  # type: ignore[attr-defined]
            elif isinstance(batch[0].item, AccountChange):
                accounts = [p.item for p in batch if isinstance(p.item, AccountChange)]
                deliver_accounts = self.destination.deliver_accounts  # type: ignore[attr-defined]
                outcomes = await deliver_accounts(accounts)
            else:
                changes = [p.item for p in batch if isinstance(p.item, Change)]
                outcomes = await self.destination.deliver(changes)
            if len(outcomes) != len(batch):
                raise LeadstreamError(
                    f"destination {self.destination.name} answered {len(outcomes)} outcomes "
                    f"for {len(batch)} changes"
                )
            for pending, outcome in zip(batch, outcomes, strict=True):
                await self._settle(pending, outcome)
        finally:
            for pending in batch:
                self._calls_by_tp[pending.tp] -= 1

    def _current(self, pending: _Pending) -> bool:
        """Whether `pending` still belongs to this connector (its partition was not revoked)."""
        return self._generation.get(pending.tp, 0) == pending.generation and pending.tp in (
            self._ledgers
        )

    async def _settle(self, pending: _Pending, outcome: Outcome) -> None:
        if not self._current(pending):
            return
        verdict = outcome.verdict
        if verdict is Verdict.DELIVERED:
            self.report.delivered += 1
            self._delivered.inc()
            occurred = pending.item.record.occurred_at
            self._latency.observe(max((datetime.now(UTC) - occurred).total_seconds(), 0.0))
            self._done(pending)
        elif verdict is Verdict.SKIPPED:
            self._count_skipped()
            self._done(pending)
        elif verdict is Verdict.PERMANENT:
            await self._dead_letter(pending, ConnectorFailure.PERMANENT, outcome.reason, outcome)
        else:
            await self._retry(pending, outcome)

    async def _retry(self, pending: _Pending, outcome: Outcome) -> None:
        delay = retry_delay(self.policy.backoff, pending.attempts, outcome.retry_after, self._rng)
        elapsed = self._clock() - (pending.first_attempt_mono or self._clock())
        if (
            pending.attempts >= self.policy.max_attempts
            or elapsed + delay > self.policy.max_retry_s
        ):
            reason = (
                f"gave up after {pending.attempts} attempts in {elapsed:.0f} s: {outcome.reason}"
            )
            await self._dead_letter(pending, ConnectorFailure.RETRIES_EXHAUSTED, reason, outcome)
            return
        if outcome.retry_after is not None:
            self._bucket.hold(delay, self._clock())
        self.report.retried += 1
        telemetry.RETRIED.labels(**self._labels, reason=_retry_reason(outcome)).inc()
        log.info(
            "connector %s: %s[%d]@%d %s retry %d in %.2f s: %s",
            self.destination.name,
            pending.tp.topic,
            pending.tp.partition,
            pending.offset,
            pending.item.subject,
            pending.attempts,
            delay,
            outcome.reason,
        )
        asyncio.get_running_loop().call_later(delay, self._requeue, pending)

    def _done(self, pending: _Pending) -> None:
        if pending.done:
            return
        pending.done = True
        ledger = self._ledgers.get(pending.tp)
        if ledger is not None:
            ledger.done(pending.offset)
        self._in_flight -= 1
        if pending.item is _NO_ITEM:
            return
        lane_key = (pending.tp, pending.item.lane)
        lane = self._lanes.get(lane_key)
        if lane and lane[0] is pending:
            lane.popleft()
            if lane:
                self._queue(lane_key)
            else:
                del self._lanes[lane_key]

    def _count_skipped(self) -> None:
        self.report.skipped += 1
        telemetry.SKIPPED.labels(**self._labels).inc()

    # ------------------------------------------------------------------ dead letters

    async def _dead_letter(
        self,
        pending: _Pending,
        failure: ConnectorFailure,
        reason: str,
        outcome: Outcome | None,
    ) -> None:
        item = pending.item if pending.item is not _NO_ITEM else None
        original = pending.value or b""
        letter = ConnectorDeadLetter(
            destination=self.destination.name,
            failure=failure,
            reason=mask(reason)[:4096],
            record_event_id=item.key if item is not None else None,
            lead_id=item.lead_id if item is not None else None,
            account_id=item.account_id if item is not None else None,
            attempts=pending.attempts,
            exchange=_exchange(outcome.exchange) if outcome and outcome.exchange else None,
            source_topic=pending.tp.topic,
            partition=pending.tp.partition,
            offset=pending.offset,
            original_key=pending.key[:DEAD_LETTER_MAX_ORIGINAL_BYTES] if pending.key else None,
            original=original[:DEAD_LETTER_MAX_ORIGINAL_BYTES],
            first_attempt_at=pending.first_attempt_at,
            occurred_at=datetime.now(UTC),
        )
        producer = self._producer
        assert producer is not None
        try:
            await producer.send_and_wait(
                self._dead_letter_topic, key=pending.key, value=codec.encode(letter)
            )
        except KafkaError as exc:
            raise InfrastructureError(
                f"cannot write a dead letter to {self._dead_letter_topic}: {exc}"
            ) from exc
        self.report.dead_lettered += 1
        telemetry.DEAD_LETTERED.labels(**self._labels, reason=failure.value).inc()
        log.warning(
            "connector %s: %s[%d]@%d %s dead-lettered (%s): %s",
            self.destination.name,
            pending.tp.topic,
            pending.tp.partition,
            pending.offset,
            item.subject if item is not None else "-",
            failure.value,
            letter.reason,
        )
        if self._current(pending) or item is None:
            self._done(pending)

    # ------------------------------------------------------------------ commits and rebalances

    async def _committer(self) -> None:
        while True:
            await asyncio.sleep(self.policy.commit_interval_s)
            await self._commit()

    async def _commit(self, only: set[TopicPartition] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        assigned = consumer.assignment()
        for tp, ledger in list(self._ledgers.items()):
            if (only is not None and tp not in only) or tp not in assigned:
                continue
            position = ledger.committable()
            if position is not None and position != self._committed.get(tp):
                offsets[tp] = position
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.info("connector %s: commit deferred (%s)", self.destination.name, exc)
            return
        except KafkaError as exc:
            raise InfrastructureError(
                f"connector {self.destination.name}: cannot commit offsets to Kafka: {exc}"
            ) from exc
        self._committed.update(offsets)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Partitions are revoked: let their calls finish, commit, drop their records."""
        mine = set(revoked) & set(self._ledgers)
        if not mine:
            return
        await self._drain(mine)
        await self._commit(only=mine)
        for tp in mine:
            self._generation[tp] = self._generation.get(tp, 0) + 1
            ledger = self._ledgers.pop(tp)
            self._in_flight -= ledger.in_flight
            self._committed.pop(tp, None)
            self._positions.pop(tp, None)
            self._paused.discard(tp)
        for lane_key in [k for k in self._lanes if k[0] in mine]:
            del self._lanes[lane_key]
        self._ready = deque(k for k in self._ready if k[0] not in mine)
        self._queued = {k for k in self._queued if k[0] not in mine}

    def assigned(self, assigned: list[TopicPartition]) -> None:
        """Partitions are assigned: they start unpaused; `_pace` pauses them if need be."""
        self._paused -= set(assigned)

    async def _drain(self, tps: set[TopicPartition]) -> None:
        deadline = self._clock() + self.policy.drain_s
        while self._clock() < deadline:
            if not any(self._calls_by_tp[tp] > 0 for tp in tps):
                return
            await asyncio.sleep(0.02)

    def _report_gauges(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            done = self._committed.get(tp, self._positions.get(tp, highwater))
            lag += max(highwater - done, 0)
        telemetry.LAG.labels(**self._labels).set(lag)
        telemetry.IN_FLIGHT.labels(**self._labels).set(self._in_flight)


class _NoItem:
    """Stands for the item of a record that did not decode."""

    lead_id = "-"
    account_id = None
    lane = "-"
    subject = "-"
    key = "-"


_NO_ITEM: Any = _NoItem()


def _retry_reason(outcome: Outcome) -> str:
    status = outcome.exchange.status if outcome.exchange is not None else None
    return f"status_{status}" if status is not None else "no_answer"


def _exchange(exchange: Exchange) -> ConnectorExchange:
    """The dead letter's copy of an exchange: masked again, bodies cut to fit."""
    return ConnectorExchange(
        method=exchange.method[:16] or "POST",
        url=mask(exchange.url)[:4096],
        request_headers=_headers(exchange.request_headers),
        request_body=mask(exchange.request_body)[:CONNECTOR_EXCHANGE_MAX_CHARS],
        status=exchange.status,
        response_headers=_headers(exchange.response_headers),
        response_body=mask(exchange.response_body)[:CONNECTOR_EXCHANGE_MAX_CHARS],
    )


_SECRET_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "webhook-signature"}
)


def _headers(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in dict(headers).items():
        lowered = str(name).lower()[:256]
        if not lowered:
            continue
        out[lowered] = "***" if lowered in _SECRET_HEADERS else mask(str(value))[:4096]
    return out
