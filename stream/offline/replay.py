"""`leadstream replay --model NEW.yaml`: rescore the history under a new model version.

The source topics are read from their first offsets (or from a time) up to the end offsets taken
at the start, by a plain consumer that commits nothing (the workers are not involved). Each
lead's events are scored offline through the pure core (`stream.offline.history`: anonymous events
resolved through `identify` events, merged leads folded into the survivor, erased leads
forgotten), decayed to now, and the outputs are published with the NEW model's version: every
`StageChanged`, and each lead's latest `ScoreUpdated` per model (all a compacted topic keeps).

**Where they go.** The scores topic is compacted and keyed by `{lead_id, model}`, with no
version in the key: replayed scores published there would overwrite the live version's records
(and the live workers would overwrite them back). So by default the replay goes to two topics of
its own, `leads.scores-replay.v1` (compacted, same keys) and `leads.stage-changes-replay.v1`,
where the live version's records are untouched and every record carries the new version.
`--publish` writes to the live output topics instead: for the switch-over, once the workers
run the new model. When the new file has an `accounts:` section, the leads are rolled up to
their accounts in event-time order (`stream.scoring.account_history`) and each account's latest
score and every account stage change go to `leads.account-scores-replay.v1` and
`leads.account-stage-changes-replay.v1` (or, with `--publish`, the live account topics).

A replay must carry a new version: a model id present in both the new file and the live model
file (`LEADSTREAM_MODELS_PATH`, or the default models) with the same version is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas import codec
from schemas.errors import DecodeError
from schemas.events import EventBase
from schemas.outputs import AccountScoreUpdated, AccountStageChanged, ScoreUpdated, StageChanged
from stream.errors import ConfigurationError, InfrastructureError
from stream.kafka import clients, topics
from stream.kafka.admin import describe_topics, ensure_topics
from stream.kafka.clients import Record
from stream.offline.history import group_by_lead, score_leads
from stream.scoring import ModelSet
from stream.scoring.account_history import score_accounts
from stream.settings import Settings

__all__ = [
    "REPLAY_ACCOUNT_SCORES",
    "REPLAY_ACCOUNT_STAGE_CHANGES",
    "REPLAY_SCORES",
    "REPLAY_STAGE_CHANGES",
    "ReplayStats",
    "publish",
    "read_history",
    "rescore",
    "same_versions",
]

REPLAY_SCORES = topics.TopicSpec(
    "leads.scores-replay.v1",
    "compact",
    "Scores rescored by `leadstream replay` under a new model version (key {lead_id, model}).",
)
REPLAY_STAGE_CHANGES = topics.TopicSpec(
    "leads.stage-changes-replay.v1",
    "delete",
    "Stage changes rescored by `leadstream replay` under a new model version (key lead_id).",
)

REPLAY_ACCOUNT_SCORES = topics.TopicSpec(
    "leads.account-scores-replay.v1",
    "compact",
    "Account scores rescored by `leadstream replay` under a new model file (key account_id).",
)
REPLAY_ACCOUNT_STAGE_CHANGES = topics.TopicSpec(
    "leads.account-stage-changes-replay.v1",
    "delete",
    "Account stage changes rescored by `leadstream replay` (key account_id).",
)

Progress = Callable[[int, int], None]
Replayed = ScoreUpdated | StageChanged | AccountScoreUpdated | AccountStageChanged


@dataclass
class ReplayStats:
    records: int = 0
    undecodable: int = 0
    events: int = 0
    leads: int = 0
    scores: int = 0
    stage_changes: int = 0
    accounts: int = 0
    account_stage_changes: int = 0


def same_versions(new: ModelSet, live: ModelSet) -> list[str]:
    """`model version` for each model id both files have with the same version."""
    live_versions = {model.id: model.version for model in live.models}
    return [
        f"{model.id} {model.version}"
        for model in new.models
        if live_versions.get(model.id) == model.version
    ]


async def _seek(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since: datetime | None,
    end: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Position every partition at its first offset (or the first at or after `since`), and
    return those offsets (asked of the broker, not read back from a lazy seek)."""
    if since is None:
        start: dict[TopicPartition, int] = dict(await consumer.beginning_offsets(partitions))
    else:
        found = await consumer.offsets_for_times(
            {tp: int(since.timestamp() * 1000) for tp in partitions}
        )
        start = {}
        for tp in partitions:
            at = found.get(tp)
            start[tp] = at.offset if at is not None else end[tp]
    for tp in partitions:
        consumer.seek(tp, start[tp])
    return start


async def read_history(
    settings: Settings,
    *,
    since: datetime | None,
    stats: ReplayStats,
    progress: Progress | None = None,
) -> list[EventBase]:
    """The valid events of the source topics, from the start (or `since`) to the end offsets
    taken now. Records that do not decode are counted and skipped (the workers dead-lettered
    them)."""
    names = {settings.topic(spec.name): spec.name for spec in topics.SOURCES}
    partitions = [
        TopicPartition(state.name, p)
        for state in await describe_topics(settings, topics.SOURCES)
        for p in range(state.partitions or 0)
    ]
    if not partitions:
        raise ConfigurationError(f"no source topics on the broker: {', '.join(sorted(names))}")
    consumer = await clients.consumer(
        settings,
        role="replay",
        start_timeout=20,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=15000,
    )
    events: list[EventBase] = []
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        start = await _seek(consumer, partitions, since, end)
        total = sum(max(end[tp] - start[tp], 0) for tp in partitions)
        remaining = {tp for tp in partitions if end[tp] > start[tp]}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
                    if record.offset >= end[tp] or record.value is None:
                        continue
                    stats.records += 1
                    try:
                        events.append(codec.decode(record.value, now=None, topic=names[tp.topic]))
                    except DecodeError:
                        stats.undecodable += 1
            for tp in list(remaining):  # markers or compaction may end a partition early
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if progress is not None:
                progress(stats.records, total)
    except KafkaError as exc:
        raise InfrastructureError(f"reading the source topics failed: {exc!r}") from exc
    finally:
        await consumer.stop()
    stats.events = len(events)
    return events


def rescore(
    events: Sequence[EventBase], models: ModelSet, *, now: datetime, stats: ReplayStats
) -> list[Replayed]:
    """Every stage change, and each lead's latest score per model, under `models`; with
    accounts, every account stage change and each account's latest score."""
    by_lead = group_by_lead(events)
    stats.leads = len(by_lead)
    out: list[Replayed] = []
    for history in score_leads(by_lead, models, until=now):
        latest: dict[str, ScoreUpdated] = {}
        for record in history.outputs:
            if isinstance(record, StageChanged):
                out.append(record)
            elif isinstance(record, ScoreUpdated):
                latest[record.model] = record
        out.extend(latest.values())
    stats.stage_changes = sum(1 for r in out if isinstance(r, StageChanged))
    stats.scores = len(out) - stats.stage_changes
    if models.accounts is not None:
        in_time = sorted(events, key=lambda e: e.occurred_at)
        accounts = score_accounts(in_time, models, until=now)
        latest_account: dict[str, AccountScoreUpdated] = {}
        for account_id, account_record in accounts.outputs:
            if isinstance(account_record, AccountStageChanged):
                out.append(account_record)
                stats.account_stage_changes += 1
            else:
                latest_account[account_id] = account_record
        out.extend(latest_account.values())
        stats.accounts = len(latest_account)
    return out


async def publish(
    settings: Settings,
    records: Sequence[Replayed],
    *,
    live: bool,
    progress: Progress | None = None,
) -> tuple[str, str]:
    """Send the records, keyed as the processor keys them; returns the two lead topics used."""
    specs: tuple[topics.TopicSpec, ...] = (
        (topics.SCORES, topics.STAGE_CHANGES, topics.ACCOUNT_SCORES, topics.ACCOUNT_STAGE_CHANGES)
        if live
        else (
            REPLAY_SCORES,
            REPLAY_STAGE_CHANGES,
            REPLAY_ACCOUNT_SCORES,
            REPLAY_ACCOUNT_STAGE_CHANGES,
        )
    )
    if not any(isinstance(r, AccountScoreUpdated | AccountStageChanged) for r in records):
        specs = specs[:2]
    await ensure_topics(settings, specs)
    names = [settings.topic(spec.name) for spec in specs]
    scores_topic, changes_topic = names[0], names[1]

    def keyed() -> Iterator[Record]:
        for record in records:
            if isinstance(record, ScoreUpdated):
                key, topic = codec.score_key(record.lead_id, record.model), scores_topic
            elif isinstance(record, StageChanged):
                key, topic = record.lead_id.encode(), changes_topic
            elif isinstance(record, AccountScoreUpdated):
                key, topic = record.account_id.encode(), names[2]
            else:
                key, topic = record.account_id.encode(), names[3]
            yield topic, key, codec.encode(record)

    def sent(n: int) -> None:
        if progress is not None:
            progress(n, len(records))

    async with clients.producer(
        settings, role="replay", start_timeout=20, acks="all", linger_ms=10
    ) as producer:
        try:
            await clients.send_batch(producer, keyed(), progress=sent)
        except KafkaError as exc:
            raise InfrastructureError(f"publishing the replay failed: {exc!r}") from exc
    return scores_topic, changes_topic
