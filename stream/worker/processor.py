"""The stream processor: ingest, identity resolution, scoring, timer, outputs.

One Faust agent consumes the five source topics and Leadstream's internal topic, all
co-partitioned. Every message is handled on the worker that owns its key's partition, and every
table write concerns a key of that partition (Faust writes a table's changelog to the partition
of the message being processed), so no step assumes one process sees every key:

1. **Decode** with the codec; a message that fails goes to the dead-letter topic with the reason,
   its coordinates and its original bytes, and the agent goes on.
2. **Route**: an event belongs to its ``lead_id`` (or, for an anonymous visitor, its
   ``anonymous_id``). Every event read from a source topic is passed on to the internal topic
   under that id, which brings it to the owning partition, and is scored when it arrives from
   there. A lead's events come through several source topics, which the consumer interleaves
   differently on every run; the internal partition records one order, so after a crash the
   events after the restored state are scored again in the order they were first scored in, and
   every record sent again is the record sent the first time. A batch's plain lead events go
   to each partition in one ``events`` record, built from the bytes they were read as
   (``pass_on``); anything else sent to the partition goes after them.
3. **Identity**: anonymous events are held per anonymous id (``stream.worker.identity``) until an
   ``identify`` reaches the lead; the lead's partition then sends a ``link`` to the anonymous id's
   partition, which releases the held events to the lead. Later anonymous events go straight to
   the lead. A merge (``leads_merged``) makes the absorbed lead hand its state to the surviving
   lead (``merge_out`` → ``merge_in``), and forwards its later events there.
4. **Score**, in micro-batches (``handle_batch``): a lead's plain events of a batch are scored
   together: load the lead's one combined state value once, call the pure core on the events in
   order, send the score and stage-change records, store the state once (one changelog write per
   lead per batch). The changelog write reaches the
   broker only once every record sent before it is delivered (``stream.faust_guards.write_order``),
   so a state the changelog holds never misses its records.
5. **Timer**: every worker keeps the due times of its own partitions' keys
(``stream.worker.schedule``):
   when decay will next cross a threshold, when held anonymous activity expires. Each tick sends
   a ``tick`` for the due keys through the internal topic, so the change is made, and its
   changelog written, on the owning partition like any other.

Replays and duplicates are no-ops: the scoring state remembers recently applied event ids, and
control messages carry ids that are remembered the same way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import mode

from schemas import codec
from schemas.common import ContractModel
from schemas.errors import DecodeError, ErrorKind
from schemas.events import EventBase, Identify, LeadErased, LeadsMerged
from schemas.internal import (
    AccountMember,
    AccountMembers,
    Events,
    Link,
    MemberChange,
    MergeIn,
    MergeOut,
    Tick,
    Unlink,
)
from schemas.outputs import DeadLetter, LeadErasedRecord, ScoreUpdated, StageChanged
from stream import metrics
from stream.faust_guards.batches import take_batches
from stream.faust_guards.changelog import ChangelogWriter
from stream.faust_guards.patches import leave_unacknowledged
from stream.faust_guards.sending import DirectSender
from stream.faust_guards.sequence import POSITION_PREFIX, STALL_CHECK_S, SequenceGuard
from stream.faust_guards.tables import read, writing_for
from stream.faust_guards.write_order import WriteOrder, hold_changelog, hold_flush
from stream.kafka import topics
from stream.settings import Settings
from stream.worker import identity
from stream.worker.accounts import ACCOUNTS_TABLE, AccountDesk, changes_of
from stream.worker.leads import LeadRecord, LiveCache, store_options
from stream.worker.port import ScoringEngine
from stream.worker.schedule import DueSchedule

__all__ = ["LeadProcessor", "register"]

log = logging.getLogger(__name__)

AGENT_NAME = "lead-processor"
LEADS_TABLE = "leads"
IDENTITY_TABLE = "identities"
TABLES = (LEADS_TABLE, IDENTITY_TABLE, ACCOUNTS_TABLE)
"""Every table the processor keeps (their changelogs are created before the worker starts)."""
INTERNAL = topics.INTERNAL


async def _delivered(deliveries: Iterable[Any]) -> None:
    """Wait until the broker has the sent messages (a test context's sends return nothing)."""
    for delivery in deliveries:
        if delivery is not None:
            await delivery


_ONE_BY_ONE = (Identify, LeadsMerged, LeadErased)
"""Lead events handled on their own: they touch more than the lead's scoring state."""

SENT_EVENTS_BYTES = 16 * 1024 * 1024
"""Bytes of the worker's own ``events`` records kept to be read back without decoding
(``SentEvents``): a few seconds of records at the worker's rate."""

REBUILD_YIELD_EVERY = 2_000
"""Keys the schedule's rebuild reads between two turns of the agent (a few milliseconds)."""


Gathered = dict[str, tuple[list[EventBase], list[int], Any]]
"""A batch's plain events per lead: the events, their internal offsets, the last one's Faust
event (whose partition the lead's writes go to)."""

_TICK_KINDS: dict[str, Any] = {"l": "lead", "a": "anonymous", "c": "account"}
"""Due-schedule key prefix → the kind of tick it sends."""


def gather(gathered: Gathered, lead_id: str, events: Sequence[EventBase], event: Any) -> None:
    """Add a lead's ``events``, all from the record of Faust ``event``, to a batch's."""
    lead_events, offsets, _ = gathered.get(lead_id, ([], [], None))
    lead_events.extend(events)
    offsets.extend([event.message.offset] * len(events))
    gathered[lead_id] = (lead_events, offsets, event)


def _lead_key(lead_id: str) -> str:
    return f"l:{lead_id}"


def _anon_key(anonymous_id: str) -> str:
    return f"a:{anonymous_id}"


class SentEvents:
    """The events of the ``events`` records this worker sent lately, by the records' bytes.

    A record the worker reads back (its partitions of the source and internal topics are the
    same, so the events it passes on are mostly its own to score) is not decoded and validated
    again: the record is the same bytes, its events the ones validated when they were read
    from their source. Records another worker sent, or read after a restart, are decoded.
    Bounded by the records' bytes (``SENT_EVENTS_BYTES``); a record read once is forgotten."""

    def __init__(self, limit: int = SENT_EVENTS_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._kept: dict[bytes, Events] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, record: bytes, events: list[Any]) -> None:
        if record in self._kept:
            return
        self._kept[record] = Events.model_construct(events=events)
        self.size += len(record)
        while self.size > self.limit:
            oldest = next(iter(self._kept))
            del self._kept[oldest]
            self.size -= len(oldest)

    def take(self, record: bytes | None) -> Events | None:
        """The events of ``record`` if this worker sent it lately (and forgets them)."""
        if record is None or not self._kept:
            return None
        events = self._kept.pop(record, None)
        if events is not None:
            self.size -= len(record)
        return events


class LeadProcessor:
    """The processor's topics, tables, schedule and handlers, declared on one app."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        engine: ScoringEngine,
        *,
        limits: identity.IdentityLimits | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.limits = limits or identity.IdentityLimits(
            max_events=settings.identity_max_events,
            max_age=timedelta(seconds=settings.identity_max_age_s),
        )
        self.prefix = settings.topic_prefix
        self.internal_name = settings.topic(INTERNAL.name)
        partitions = settings.topic_partitions

        def raw_topic(*names: str, **kwargs: Any) -> Any:
            return app.topic(
                *names,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions,
                **kwargs,
            )

        self.sources = raw_topic(
            *(settings.topic(spec.name) for spec in topics.SOURCES), self.internal_name
        )
        self.internal = raw_topic(self.internal_name)
        self.scores = raw_topic(settings.topic(topics.SCORES.name), compacting=True)
        self.stage_changes = raw_topic(settings.topic(topics.STAGE_CHANGES.name))
        self.dead_letters = raw_topic(settings.topic(topics.DEAD_LETTERS.name))
        self.scores_name = settings.topic(topics.SCORES.name)
        self.stage_changes_name = settings.topic(topics.STAGE_CHANGES.name)
        self.dead_letters_name = settings.topic(topics.DEAD_LETTERS.name)

        # Keys are the ids' UTF-8 bytes, as in the records' keys, so a key's table partition is
        # the partition of its records (Faust routes web requests for a key by that hash too).
        def raw_table(name: str) -> Any:
            table = app.Table(
                name,
                partitions=partitions,
                key_type=bytes,
                value_type=bytes,
                options=store_options(settings),
                extra_topic_configs=settings.durability_configs(),
            )
            table.key_serializer = "raw"
            table.value_serializer = "raw"  # values are our own JSON bytes
            return table

        self.leads = raw_table(LEADS_TABLE)
        self.identities = raw_table(IDENTITY_TABLE)
        self.write_order: WriteOrder | None = None
        if settings.processing_guarantee == "at_least_once":
            # (under exactly_once the state and the offsets are committed in one transaction,
            # which a held write could miss)
            self.write_order = WriteOrder(on_failure=self._crash)
            for table in (self.leads, self.identities):
                hold_changelog(table.changelog_topic, self.write_order)
        # every topic the processor sends to has ``partitions`` (the worker refuses to start
        # otherwise), so the sender partitions keys itself, from its cache of recent keys
        self.sender = DirectSender(
            app, self.write_order, metrics.messages_out, partitions=partitions
        )
        self.changelog: ChangelogWriter | None = None
        if self.write_order is not None:
            self.changelog = ChangelogWriter(
                app, self.write_order, self._crash, metrics.messages_out
            )
        self.schedule = DueSchedule()
        self._all_partitions = list(range(partitions))
        self._key_partition = self.sender.partition_of
        self._partition_of = functools.lru_cache(maxsize=65_536)(self._murmur_partition)
        self.accounts: AccountDesk | None = None
        if settings.accounts_enabled and getattr(engine, "accounts_enabled", False):
            accounts_table = raw_table(ACCOUNTS_TABLE)
            if self.write_order is not None:
                hold_changelog(accounts_table.changelog_topic, self.write_order)
            self.accounts = AccountDesk(
                settings,
                engine,  # type: ignore[arg-type]  # a CoreEngine: the account half too
                accounts_table,
                send=self.send_raw,
                schedule=self.schedule,
                partition_of=self.partition_of,
                write=self.write,
            )
        self._passing: dict[int, tuple[list[bytes], list[EventBase], int]] = {}
        """Per internal partition, the plain lead events of the batch being handled that wait to
        be passed on in one ``events`` record: their values, the events, their bytes."""
        self.sent_events = SentEvents()
        self._strays: list[EventBase] = []
        self._held_writes: list[tuple[str, LeadRecord, datetime | None]] | None = None
        """Lead writes waiting for the account changes of a scoring pass (``score_leads``)."""
        self.scheduled_partitions: set[int] = set()
        self.live = LiveCache()
        self.sequence = SequenceGuard(
            app,
            settings.kafka_bootstrap,
            topics=(*(settings.topic(spec.name) for spec in topics.SOURCES), self.internal_name),
            read_committed=settings.processing_guarantee == "exactly_once",
            positions=(self.leads, self.identities),
            write=self.write,
            on_redelivered=metrics.record_redelivered,
            on_recovered=metrics.records_recovered,
        )
        self.agent: Any = None

    def _crash(self, error: BaseException) -> None:
        asyncio.ensure_future(self.app.crash(error))  # noqa: RUF006 - the app stops

    def write(self, table: Any, key: bytes, value: bytes | None) -> None:
        """Write (``None``: delete) a key of one of the processor's tables, for the current
        event's partition: straight to the store and, behind the write order, the changelog
        (``ChangelogWriter``), or through Faust's table under ``exactly_once``."""
        if self.changelog is not None:
            if value is None:
                self.changelog.delete(table, key)
            else:
                self.changelog.set(table, key, value)
        elif value is None:
            table.pop(key, None)
        else:
            table[key] = value

    def partition_of(self, key: str) -> int:
        """The partition of ``key`` (Kafka's default partitioner: murmur2, in Python: the
        partitions of the most recently used keys are kept)."""
        return self._partition_of(key)

    def _murmur_partition(self, key: str) -> int:
        return self._key_partition(key.encode())

    # ------------------------------------------------------------------ table access

    def load_lead(self, lead_id: str) -> LeadRecord | None:
        """The lead's record as stored; decoded again only when the stored bytes are not the
        ones this processor last wrote or read for it (recovery, another worker, a rebalance)."""
        raw = read(self.leads, lead_id.encode())
        if raw is None:
            self.live.drop(lead_id)
            return None
        kept = self.live.get(lead_id, raw)
        if kept is not None:
            return kept.copy()
        record = LeadRecord.from_json(codec.loads(raw))
        self.live.keep(lead_id, raw, record)
        return record.copy()

    def store_lead(self, lead_id: str, record: LeadRecord, due: datetime | None) -> None:
        """Write the lead's one value (one changelog message) and its next decay due time."""
        if record.merged_into is not None:
            due = None
        record.due = None if due is None else math.ceil(due.timestamp())
        raw = codec.dumps(record.to_json())
        self.write(self.leads, lead_id.encode(), raw)
        self.live.keep(lead_id, raw, record.copy())
        self.schedule.set(
            self.partition_of(lead_id), _lead_key(lead_id), None if due is None else due.timestamp()
        )

    def _due(self, record: LeadRecord) -> datetime | None:
        """The due time of a record whose state did not change (read from the state)."""
        if record.state is None or record.merged_into is not None:
            return None
        return self.engine.next_due(record.state, record.live)

    def load_anon(self, anonymous_id: str) -> identity.AnonRecord | None:
        raw = read(self.identities, anonymous_id.encode())
        return None if raw is None else identity.AnonRecord.from_json(codec.loads(raw))

    def store_anon(self, anonymous_id: str, record: identity.AnonRecord | None) -> None:
        if record is None:
            self.write(self.identities, anonymous_id.encode(), None)
            due = None
        else:
            self.write(self.identities, anonymous_id.encode(), codec.dumps(record.to_json()))
            due = (
                None
                if record.first_held_at is None
                else record.first_held_at + self.limits.max_age.total_seconds()
            )
        self.schedule.set(self.partition_of(anonymous_id), _anon_key(anonymous_id), due)

    # ------------------------------------------------------------------ sending

    async def send_raw(self, topic: str, key: bytes, value: bytes | None) -> Any:
        """Send a record as is; returns its delivery future."""
        return await self.sender.send(topic, key, value)

    async def to_internal(self, key: str, message: ContractModel) -> Any:
        """Send ``message`` to the owner of ``key``; returns its delivery future. The partition
        is the one the producer's partitioner would choose (the internal topic has the
        configured partition count: the worker refuses to start otherwise), from the cache of
        recent keys' partitions rather than a murmur2 in Python per record. Events waiting to
        be passed on to that partition (``pass_on``) are sent first, so the partition records
        everything in the order the worker sent it."""
        partition = self.partition_of(key)
        if partition in self._passing:
            await self._send_passing(partition)
        return await self.sender.send(
            self.internal_name, key.encode(), codec.encode(message), partition
        )

    async def pass_on(self, lead_id: str, event: EventBase, value: bytes) -> None:
        """Queue a plain lead event read from a source topic (``value``: its record's bytes, as
        read and validated) for its lead's partition of the internal topic. The batch's events
        of a partition go out as one ``events`` record (``send_passing``), when anything else is
        sent to that partition, or when the record would grow past ``EVENTS_MAX_BYTES``."""
        partition = self.partition_of(lead_id)
        waiting = self._passing.get(partition)
        if waiting is not None:
            values, events, size = waiting
            size += len(value) + 1
            if size + codec.EVENTS_FRAME_BYTES <= codec.EVENTS_MAX_BYTES:
                values.append(value)
                events.append(event)
                self._passing[partition] = (values, events, size)
                return
            await self._send_passing(partition)
        self._passing[partition] = ([value], [event], len(value))

    async def send_passing(self) -> None:
        """Send every partition's waiting events (one ``events`` record each), and the events
        an ``events`` record held for another partition (``events_by_lead``)."""
        for partition in list(self._passing):
            await self._send_passing(partition)
        await self.pass_strays()

    async def _send_passing(self, partition: int) -> None:
        waiting = self._passing.pop(partition, None)
        if waiting is not None:
            values, events, _ = waiting
            record = codec.encode_events(values)
            self.sent_events.keep(record, events)
            key = events[0].lead_id or ""
            await self.sender.send(self.internal_name, key.encode(), record, partition)

    async def emit(self, outputs: Iterable[ContractModel]) -> None:
        send = self.sender.send
        for record in outputs:
            if isinstance(record, ScoreUpdated):
                await send(
                    self.scores_name,
                    codec.score_key(record.lead_id, record.model),
                    codec.encode(record),
                )
            elif isinstance(record, StageChanged):
                await send(self.stage_changes_name, record.lead_id.encode(), codec.encode(record))
            else:  # pragma: no cover - the engine only produces the two
                raise TypeError(f"unexpected output {type(record).__name__}")

    async def dead_letter(
        self,
        message: Any,
        kind: ErrorKind,
        detail: str,
        *,
        field_path: str | None = None,
        original: bytes | None = None,
    ) -> None:
        """Send ``message`` (or ``original``, an event it carried) to the dead-letter topic."""
        log.warning(
            "dead letter %s[%s]@%s: %s: %s",
            message.topic,
            message.partition,
            message.offset,
            kind.value,
            detail,
        )
        letter = DeadLetter.build(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error_kind=kind,
            message=detail,
            field=field_path,
            original_key=message.key,
            original=message.value if original is None else original,
            received_at=datetime.now(UTC),
        )
        await self.sender.send(self.dead_letters_name, message.key, codec.encode(letter))

    # ------------------------------------------------------------------ handlers

    async def on_lead_event(
        self, event: EventBase, lead_id: str, offset: int | None = None
    ) -> None:
        """Apply one event of a lead (``offset``: its internal record's, when it came from
        there)."""
        record = self.load_lead(lead_id) or LeadRecord()
        if record.already_applied(offset):
            return
        record.mark_applied(offset)
        if record.merged_into is not None:
            rerouted = event.model_copy(update={"lead_id": record.merged_into})
            await self.to_internal(record.merged_into, rerouted)
            return
        if isinstance(event, LeadErased):
            await self.on_erase(event, lead_id, record)
            return
        if isinstance(event, LeadsMerged):
            await self.to_internal(
                event.merged_lead_id,
                MergeOut(
                    event_id=event.event_id,
                    lead_id=event.merged_lead_id,
                    into_lead_id=lead_id,
                    occurred_at=event.occurred_at,
                ),
            )
        if isinstance(event, Identify) and event.anonymous_id is not None:
            if event.anonymous_id not in record.anonymous_ids:
                record.anonymous_ids = [*record.anonymous_ids, event.anonymous_id]
            await self.to_internal(
                event.anonymous_id,
                Link(
                    event_id=event.event_id,
                    anonymous_id=event.anonymous_id,
                    lead_id=lead_id,
                    occurred_at=event.occurred_at,
                ),
            )
        await self.score(lead_id, record, [event], keep=isinstance(event, Identify))

    async def on_lead_events(
        self,
        events: Sequence[EventBase],
        lead_id: str,
        offsets: Sequence[int | None] | None = None,
    ) -> None:
        """Score a run of plain events of one lead (no identify, merge or erasure): the state
        read once, the events applied in order, the state written once. ``offsets``: the
        events' internal records' offsets; those applied already are skipped."""
        record = self.load_lead(lead_id) or LeadRecord()
        if offsets is not None:
            kept = [
                (e, o)
                for e, o in zip(events, offsets, strict=True)
                if not record.already_applied(o)
            ]
            if not kept:
                return
            events = [e for e, _ in kept]
            for _, offset in kept:
                record.mark_applied(offset)
        if record.merged_into is not None:
            for event in events:
                rerouted = event.model_copy(update={"lead_id": record.merged_into})
                await self.to_internal(record.merged_into, rerouted)
            return
        await self.score(lead_id, record, events)

    async def score(
        self, lead_id: str, record: LeadRecord, events: Sequence[EventBase], *, keep: bool = False
    ) -> None:
        """Apply ``events`` to the lead's ``record``, send what they publish (and its account
        contribution), store the state (``keep``: store the record even when the state did not
        change)."""
        if len(events) == 1:
            step = self.engine.apply(record.state, events[0], record.live)
        else:
            step = self.engine.apply_batch(record.state, events, record.live)
        if step.state is None and record.live is None and step.live is not None:
            self.live.remember_live(lead_id, step.live)
        record.live = step.live
        for model_id, count in step.machine:
            metrics.machine_skipped(model_id, count)
        if step.outputs:
            # Sent before the state is written: a crash in between scores the events again, in
            # their place in the internal topic's order, and sends the same records again (same
            # ids, same revisions, same content) rather than keeping a state whose outputs
            # never left.
            await self.emit(step.outputs)
            now = time.time()
            for event in events:
                metrics.scoring_latency(now - event.occurred_at.timestamp())
        if step.state is not None:
            record.state = step.state
            if self.accounts is not None:
                self.account_changed(
                    lead_id, record, step.live, record.applied, events[-1].occurred_at
                )
            await self.write_lead(lead_id, record, step.due)
        elif keep:
            await self.write_lead(lead_id, record, self._due(record))

    def account_changed(
        self, lead_id: str, record: LeadRecord, live: Any, version: int | None, at: datetime
    ) -> None:
        """Queue what changed for the lead's account (sent before the lead's record is
        written: ``write_lead``)."""
        assert self.accounts is not None
        record.account = self.accounts.lead_changed(
            lead_id, record.account, live, version=version or 0, at=at
        )

    async def write_lead(self, lead_id: str, record: LeadRecord, due: datetime | None) -> None:
        """Store the lead's record once the account changes queued before it are sent. While a
        batch's leads are scored (``score_leads``) the write is held until all of them are, so
        their account changes go out as one message per account."""
        if self._held_writes is not None:
            self._held_writes.append((lead_id, record, due))
            return
        if self.accounts is not None and self.accounts.queued:
            await self.accounts.flush()
        self.store_lead(lead_id, record, due)

    async def on_erase(self, event: LeadErased, lead_id: str, record: LeadRecord) -> None:
        if self.accounts is not None and record.account is not None:
            self.account_changed(lead_id, record, None, record.applied, event.occurred_at)
            await self.accounts.flush()
        # The unlinks are on the broker before the record that lists the anonymous ids is
        # deleted: a crash in between erases again, with the ids still known.
        deliveries = [
            await self.to_internal(
                anonymous_id,
                Unlink(event_id=event.event_id, anonymous_id=anonymous_id, lead_id=lead_id),
            )
            for anonymous_id in record.anonymous_ids
        ]
        await _delivered(deliveries)
        self.write(self.leads, lead_id.encode(), None)
        self.live.drop(lead_id)
        self.schedule.set(self.partition_of(lead_id), _lead_key(lead_id), None)
        for model in self.engine.model_ids:
            erased = LeadErasedRecord.build(
                lead_id=lead_id,
                model=model,
                triggering_event_id=event.event_id,
                occurred_at=event.occurred_at,
            )
            score_key = codec.score_key(lead_id, model)
            await self.sender.send(self.scores_name, score_key, codec.encode(erased))
            await self.sender.send(self.scores_name, score_key, None)
            await self.sender.send(self.stage_changes_name, lead_id.encode(), codec.encode(erased))

    async def on_anonymous_event(self, event: EventBase, anonymous_id: str, message: Any) -> None:
        record = self.load_anon(anonymous_id)
        if record is not None and record.lead_id is not None:
            await self.to_internal(
                record.lead_id, event.model_copy(update={"lead_id": record.lead_id})
            )
            return
        offset = message.offset if message is not None else None
        if record is not None and record.already_applied(offset):
            return  # held already: read again after a crash or a rebalance
        held = identity.hold(
            record, codec.encode(event), now=time.time(), limits=self.limits, offset=offset
        )
        self.store_anon(anonymous_id, held.record)
        for raw in held.dropped:
            await self.dead_letter(
                message,
                ErrorKind.HELD_TOO_MANY,
                f"more than {self.limits.max_events} events held for anonymous id "
                f"{anonymous_id!r} before an identify",
                original=raw,
            )

    async def on_link(self, message_in: Link) -> None:
        linked = identity.link(self.load_anon(message_in.anonymous_id), message_in.lead_id)
        # The held events are on the broker before the record that no longer holds them is
        # written: a crash in between releases them again (the lead recognises their ids)
        # rather than losing them.
        deliveries = []
        for raw in linked.released:
            held_event = codec.decode(raw, now=None)
            deliveries.append(
                await self.to_internal(
                    message_in.lead_id,
                    held_event.model_copy(update={"lead_id": message_in.lead_id}),
                )
            )
        await _delivered(deliveries)
        self.store_anon(message_in.anonymous_id, linked.record)

    async def on_unlink(self, message_in: Unlink) -> None:
        record = self.load_anon(message_in.anonymous_id)
        if record is not None and record.lead_id == message_in.lead_id:
            self.store_anon(message_in.anonymous_id, None)

    async def on_merge_out(self, message_in: MergeOut, offset: int | None = None) -> None:
        record = self.load_lead(message_in.lead_id) or LeadRecord()
        if record.merged_into is None:
            record.merged_into = message_in.into_lead_id
            if self.accounts is not None and record.account is not None:
                self.account_changed(
                    message_in.lead_id, record, None, offset, message_in.occurred_at
                )
            await self.write_lead(message_in.lead_id, record, None)
        # Sent again when this message is replayed; the receiver applies it once.
        await self.to_internal(
            message_in.into_lead_id,
            MergeIn(
                event_id=message_in.event_id,
                lead_id=message_in.into_lead_id,
                from_lead_id=message_in.lead_id,
                state=record.state,
                occurred_at=message_in.occurred_at,
            ),
        )
        for anonymous_id in record.anonymous_ids:
            await self.to_internal(
                anonymous_id,
                Link(
                    event_id=message_in.event_id,
                    anonymous_id=anonymous_id,
                    lead_id=message_in.into_lead_id,
                    occurred_at=message_in.occurred_at,
                ),
            )

    async def on_merge_in(self, message_in: MergeIn, offset: int | None = None) -> None:
        record = self.load_lead(message_in.lead_id) or LeadRecord()
        if not record.remember_control(f"merge:{message_in.event_id}"):
            return
        if record.merged_into is not None:  # merged onwards meanwhile: pass it along
            self.store_lead(message_in.lead_id, record, None)
            await self.to_internal(
                record.merged_into, message_in.model_copy(update={"lead_id": record.merged_into})
            )
            return
        outputs: Sequence[ContractModel] = ()
        due = self._due(record)
        if message_in.state is not None:
            step = self.engine.merge(
                record.state,
                message_in.state,
                lead_id=message_in.lead_id,
                event_id=message_in.event_id,
                at=message_in.occurred_at,
            )
            if step.state is not None:
                record.state, due, record.live = step.state, step.due, step.live
            outputs = step.outputs
        await self.emit(outputs)
        if self.accounts is not None and message_in.state is not None:
            self.account_changed(
                message_in.lead_id, record, record.live, offset, message_in.occurred_at
            )
        await self.write_lead(message_in.lead_id, record, due)

    async def on_tick(self, message_in: Tick, message: Any) -> None:
        if message_in.kind == "partition":
            await self.sequence.catch_up(message.partition, self.handle)
            return
        if message_in.kind == "account":
            if self.accounts is not None:
                await self.accounts.on_tick(message_in)
            return
        if message_in.kind == "anonymous":
            record = self.load_anon(message_in.key)
            if record is None:
                return
            kept, expired = identity.expire(
                record, now=message_in.at.timestamp(), limits=self.limits
            )
            self.store_anon(message_in.key, kept)
            for raw in expired:
                await self.dead_letter(
                    message,
                    ErrorKind.HELD_TOO_LONG,
                    f"no identify for anonymous id {message_in.key!r} within {self.limits.max_age}",
                    original=raw,
                )
            return
        lead = self.load_lead(message_in.key)
        if lead is None or lead.state is None or lead.merged_into is not None:
            return
        step = self.engine.tick(lead.state, message_in.at, lead_id=message_in.key, live=lead.live)
        await self.emit(step.outputs)  # before the state, as for events
        if step.state is not None:
            lead.state, lead.live = step.state, step.live
            if self.accounts is not None:
                self.account_changed(message_in.key, lead, step.live, message.offset, message_in.at)
            await self.write_lead(message_in.key, lead, step.due)
        else:
            due = self._due(lead)
            if due is not None and due <= message_in.at:
                due = None  # nothing crossed though due: do not spin on it
            self.schedule.set(
                self.partition_of(message_in.key),
                _lead_key(message_in.key),
                None if due is None else due.timestamp(),
            )

    # ------------------------------------------------------------------ the agent

    def contract_topic(self, name: str) -> str:
        return name[len(self.prefix) :] if self.prefix and name.startswith(self.prefix) else name

    async def decode(self, message: Any) -> Any:
        """The message's event or control message; ``None`` after dead-lettering it."""
        try:
            if message.topic == self.internal_name:
                return await self.decode_internal(message)
            event = codec.decode(
                message.value, now=datetime.now(UTC), topic=self.contract_topic(message.topic)
            )
        except DecodeError as exc:
            await self.dead_letter(message, exc.kind, exc.detail, field_path=exc.field)
            return None
        topic = self.contract_topic(message.topic)
        metrics.event_in(topic, event.type)
        if event.machine is not None:
            metrics.machine_marked(topic, event.machine)
        return event

    async def decode_internal(self, message: Any) -> Any:
        """The internal record's message. An ``events`` record that holds events the contract
        refuses keeps the others; those are dead-lettered one by one (``None``: none left).
        An events record this worker sent is not validated again: its events are the ones
        validated before it was sent (``SentEvents``)."""
        sent = self.sent_events.take(message.value)
        if sent is not None:
            return sent
        try:
            return codec.decode_internal(message.value)
        except DecodeError as refused:
            try:
                parts = codec.decode_events_apart(message.value)
            except DecodeError:
                raise refused from None
        kept: list[Any] = []
        for part in parts:
            if isinstance(part, EventBase):
                kept.append(part)
            else:
                error, raw = part
                await self.dead_letter(
                    message, error.kind, error.detail, field_path=error.field, original=raw
                )
        return Events.model_construct(events=kept) if kept else None

    async def handle(self, message: Any) -> None:
        """Handle one record on its own."""
        decoded = await self.decode(message)
        if decoded is not None:
            await self.dispatch(decoded, message)

    async def dispatch(self, decoded: Any, message: Any) -> None:
        """Handle a decoded record."""
        if isinstance(decoded, Link):
            await self.on_link(decoded)
        elif isinstance(decoded, Unlink):
            await self.on_unlink(decoded)
        elif isinstance(decoded, MergeOut):
            await self.on_merge_out(decoded, message.offset)
        elif isinstance(decoded, MergeIn):
            await self.on_merge_in(decoded, message.offset)
        elif isinstance(decoded, AccountMembers | AccountMember):
            if self.accounts is not None:
                await self.accounts.on_members(decoded.account_id, changes_of(decoded))
        elif isinstance(decoded, Tick):
            await self.on_tick(decoded, message)
        elif isinstance(decoded, Events):
            await self.on_events(decoded, message)
        else:
            await self.on_event(decoded, message)

    async def on_event(self, event: EventBase, message: Any) -> None:
        """Pass an event from a source topic on to the internal topic (its owner's partition);
        score an event from the internal topic on its lead, or hold it (anonymous)."""
        owner = event.lead_id or event.anonymous_id or ""
        if message.topic != self.internal_name or message.key != owner.encode():
            await self.to_internal(owner, event)
        elif event.lead_id is not None:
            await self.on_lead_event(event, event.lead_id, message.offset)
        else:
            await self.on_anonymous_event(event, owner, message)

    async def on_events(self, bulk: Events, message: Any) -> None:
        """Score the events of an ``events`` record, per lead in their order (the record's
        offset stands for each: a lead's events in it are applied together)."""
        for lead_id, lead_events in self.events_by_lead(bulk, message).items():
            await self.on_lead_events(lead_events, lead_id, [message.offset] * len(lead_events))
        await self.pass_strays()

    def events_by_lead(self, bulk: Events, message: Any) -> dict[str, list[EventBase]]:
        """The record's events per lead, in order; an event of a lead of another partition
        (sent with another partition count) is left out and passed on to its partition
        (``pass_strays``)."""
        by_lead: dict[str, list[EventBase]] = {}
        for event in bulk.events:
            lead_id = event.lead_id
            assert lead_id is not None  # the contract: lead events only
            if self.partition_of(lead_id) != message.partition:
                self._strays.append(event)
                continue
            by_lead.setdefault(lead_id, []).append(event)
        return by_lead

    def gather_events(self, gathered: Gathered, bulk: Events, event: Any) -> None:
        """Add an ``events`` record's events to the batch's per lead (``event``: its Faust
        event)."""
        for lead_id, lead_events in self.events_by_lead(bulk, event.message).items():
            gather(gathered, lead_id, lead_events, event)

    async def forward(self, event: EventBase, owner: str, message: Any) -> None:
        """Pass an event on to its owner's partition of the internal topic: a plain lead event
        read from a source topic joins the batch's ``events`` record of that partition, as the
        bytes it was read as (validated: nothing to encode again); anything else goes in a
        record of its own."""
        if (
            message.topic != self.internal_name
            and event.lead_id is not None
            and not isinstance(event, _ONE_BY_ONE)
        ):
            await self.pass_on(owner, event, message.value)
        else:
            await self.to_internal(owner, event)

    async def pass_strays(self) -> None:
        """Pass on the events ``events_by_lead`` found on another partition than their lead's."""
        while self._strays:
            event = self._strays.pop(0)
            assert event.lead_id is not None
            await self.to_internal(event.lead_id, event)

    async def process(self, stream: Any) -> AsyncIterator[None]:
        batches = take_batches(stream, self.settings.batch_max, self.settings.batch_within_s)
        async for events in batches:
            try:
                await self.handle_batch(events)
            except BaseException as exc:
                self._passing.clear()
                self._strays.clear()
                # interrupted (the worker stops, or the agent crashed: the worker stops too):
                # read the whole batch again, rather than let Faust acknowledge, and commit
                # past, the records it did not get to
                leave_unacknowledged(events)
                self.sequence.interrupted(events)
                if isinstance(exc, Exception):
                    log.critical("the processing agent crashed (%r): the worker stops", exc)
                raise
            yield None

    async def handle_batch(self, events: Sequence[Any]) -> None:
        """Handle a batch of Faust events in offset order.

        Source events are passed on to the internal topic (``forward``): plain lead events in
        one ``events`` record per partition, sent at the end of the batch or before anything
        else goes to that partition. Plain events of a lead arriving from the internal topic,
        alone or in an ``events`` record, are gathered per lead and scored together
        (``on_lead_events``: one state read, one state write per lead per batch); anything else
        that reads or writes lead state (identify, merge, erasure, ticks, records read past a
        gap) first scores what was gathered, so every lead sees its records in their order.
        Account member changes are gathered per account the same way and applied after the
        leads (``apply_accounts``); the changes the leads make go out as one message per
        account (``score_leads``). The partitions' positions are saved after every write of
        the batch. Table writes are
        made for the event they belong to (``writing_for``): Faust takes a write's partition
        from it.
        """
        gathered: Gathered = {}
        accounts: dict[str, tuple[list[MemberChange], Any]] = {}

        async def score_gathered() -> None:
            if gathered:
                await self.score_leads(gathered)
            if accounts:
                await self.apply_accounts(accounts)

        async def handle_in_order(message: Any) -> None:
            await score_gathered()
            await self.handle(message)

        admitted = []
        for event in events:
            message = event.message
            with writing_for(event):
                if not await self.sequence.admit(message, handle_in_order):
                    continue
            admitted.append(event)
            decoded = await self.decode(message)
            if decoded is None:
                continue
            if isinstance(decoded, EventBase):
                owner = decoded.lead_id or decoded.anonymous_id or ""
                if message.topic != self.internal_name or message.key != owner.encode():
                    await self.forward(decoded, owner, message)
                    continue
                if decoded.lead_id is not None and not isinstance(decoded, _ONE_BY_ONE):
                    gather(gathered, decoded.lead_id, [decoded], event)
                    continue
                if decoded.lead_id is None:  # anonymous: touches no lead state
                    with writing_for(event):
                        await self.on_anonymous_event(decoded, owner, message)
                    continue
            elif isinstance(decoded, Link | Unlink):  # touch no lead state
                with writing_for(event):
                    await self.dispatch(decoded, message)
                continue
            elif isinstance(decoded, Events):
                self.gather_events(gathered, decoded, event)
                continue
            elif isinstance(decoded, AccountMembers | AccountMember) and self.accounts is not None:
                changes, _ = accounts.get(decoded.account_id, ([], None))
                changes.extend(changes_of(decoded))
                accounts[decoded.account_id] = (changes, event)
                continue
            await score_gathered()
            with writing_for(event):
                await self.dispatch(decoded, message)
        await score_gathered()
        await self.send_passing()
        self.sequence.handled_batch(admitted)

    async def score_leads(self, gathered: Gathered) -> None:
        """Score the gathered events, per lead (one state read and write each). With accounts,
        the leads' writes wait until every lead is scored and the account changes they made
        are sent, one message per account."""
        if self.accounts is None:
            for lead_id, (lead_events, offsets, last) in gathered.items():
                with writing_for(last):
                    await self.on_lead_events(lead_events, lead_id, offsets)
            gathered.clear()
            return
        held: list[tuple[Any, list[tuple[str, LeadRecord, datetime | None]]]] = []
        try:
            for lead_id, (lead_events, offsets, last) in gathered.items():
                self._held_writes = []
                with writing_for(last):
                    await self.on_lead_events(lead_events, lead_id, offsets)
                if self._held_writes:
                    held.append((last, self._held_writes))
        finally:
            self._held_writes = None
        gathered.clear()
        await self.accounts.flush()
        for last, writes in held:
            with writing_for(last):
                for lead_id, record, due in writes:
                    self.store_lead(lead_id, record, due)

    async def apply_accounts(self, gathered: dict[str, tuple[list[MemberChange], Any]]) -> None:
        """Apply the gathered member changes, per account (one state read and write each)."""
        assert self.accounts is not None
        for account_id, (changes, last) in gathered.items():
            with writing_for(last):
                await self.accounts.on_members(account_id, changes)
        gathered.clear()

    # ------------------------------------------------------------------ the timer

    async def rebuild_schedule(self, assigned: set[int]) -> None:
        """Due times of the keys in newly assigned partitions, from the tables (one pass).

        A lead's due time is read from its stored record (``LeadRecord.due``; computed from
        its state for a record stored without one). The pass lets the agent run every
        ``REBUILD_YIELD_EVERY`` keys, so a worker taking over many leads scores while it
        schedules them: a key the agent scheduled meanwhile keeps that time (the pass may be
        reading an older value), and a rebalance meanwhile abandons the pass (the next tick
        starts again)."""
        new = assigned - self.scheduled_partitions
        # every partition not assigned, including one held and lost before its pass ran (the
        # times its agent set then would be kept by the pass below)
        self.schedule.drop_partitions(set(self._all_partitions) - assigned)
        self.scheduled_partitions.intersection_update(assigned)
        if not new:
            return
        generation = self.app.consumer_generation_id
        for count, (part, key, due) in enumerate(self._stored_dues(new), start=1):
            if due is not None:
                self.schedule.set_if_absent(part, key, due)
            if count % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if self.app.rebalancing or self.app.consumer_generation_id != generation:
                    self.schedule.drop_partitions(new)
                    return
        self.scheduled_partitions.update(new)

    def _stored_dues(self, partitions: set[int]) -> Iterator[tuple[int, str, float | None]]:
        """(partition, schedule key, due time) of every lead and held visitor the tables
        hold in ``partitions``."""
        for key, raw in self.leads.items():
            if key.startswith(POSITION_PREFIX):
                continue  # a saved partition position (stream.faust_guards.sequence), not a lead
            lead_id = key.decode()
            part = self.partition_of(lead_id)
            if part not in partitions:
                continue
            data = codec.loads(raw)
            if data.get("m") is not None or not data.get("s"):
                yield part, _lead_key(lead_id), None
            elif "d" in data:
                yield part, _lead_key(lead_id), data["d"]
            else:  # stored before records kept their due time
                due = self.engine.next_due(data["s"])
                yield part, _lead_key(lead_id), None if due is None else due.timestamp()
        if self.accounts is not None:
            yield from self.accounts.stored_dues(partitions)
        for key, raw in self.identities.items():
            if key.startswith(POSITION_PREFIX):
                continue
            anonymous_id = key.decode()
            part = self.partition_of(anonymous_id)
            if part not in partitions:
                continue
            anon = identity.AnonRecord.from_json(codec.loads(raw))
            if anon.first_held_at is not None:
                due_at = anon.first_held_at + self.limits.max_age.total_seconds()
                yield part, _anon_key(anonymous_id), due_at

    def assigned_partitions(self) -> set[int]:
        source = self.settings.topic(topics.SOURCES[0].name)
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == source}

    async def decay_timer(self) -> None:
        if not self.app.tables.recovery.completed.is_set() or self.app.rebalancing:
            return
        await self.rebuild_schedule(self.assigned_partitions())
        now = datetime.now(UTC)
        for _partition, key in self.schedule.pop_due(now.timestamp()):
            kind, _, ident = key.partition(":")
            await self.to_internal(ident, Tick(key=ident, kind=_TICK_KINDS[kind], at=now))

    async def stall_timer(self) -> None:
        """Let commits reach every handled record; ask the agent to read partitions whose
        records stopped reaching it."""
        if not self.app.tables.recovery.completed.is_set() or self.app.rebalancing:
            return
        self.sequence.advance()
        now = datetime.now(UTC)
        for partition in sorted(await self.sequence.stalled()):
            probe = Tick(key=f"partition-{partition}", kind="partition", at=now)
            await self.sender.send(
                self.internal_name, probe.key.encode(), codec.encode(probe), partition
            )


def register(
    app: faust.App,
    settings: Settings,
    engine: ScoringEngine,
    *,
    limits: identity.IdentityLimits | None = None,
) -> LeadProcessor:
    """Declare the processor's topics, tables, agent and timer on ``app``."""
    processor = LeadProcessor(app, settings, engine, limits=limits)
    # A crash of the agent stops the worker (exit status 1), for its supervisor (Kubernetes,
    # Compose, systemd) to start it again from the committed offsets and the changelogs.
    # Faust's default restarts the agent inside the process, on a stream that does not deliver
    # the interrupted batch again; after a broker restart such an agent took no record for good,
    # the worker still up.
    processor.agent = app.agent(
        processor.sources,
        name=AGENT_NAME,
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(processor.process)
    app.timer(interval=settings.timer_interval_s)(processor.decay_timer)
    app.timer(interval=STALL_CHECK_S)(processor.stall_timer)

    @app.on_partitions_revoked.connect
    async def forget_positions(sender: Any, revoked: Any, **kwargs: Any) -> None:
        processor.sequence.forget(revoked)

    @app.on_partitions_assigned.connect
    async def check_positions(sender: Any, assigned: Any, **kwargs: Any) -> None:
        processor.sequence.assign(assigned)

    if processor.write_order is not None:
        assert processor.changelog is not None
        hold_flush(app.producer, processor.write_order, processor.changelog.drain)

    @app.on_before_shutdown.connect
    async def close_reader(sender: Any, **kwargs: Any) -> None:
        await processor.sequence.close()

    return processor
