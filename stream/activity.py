"""Activity counter: events seen per lead, kept in a RocksDB-backed table.

It consumes the source topics as raw bytes, counts events per lead in a Faust table (one
changelog write per event) and publishes the latest count per lead to a compacted topic.
Messages that are not valid events (``schemas.codec``) go to the dead-letter topic with the
reason and their original bytes. Events of anonymous visitors are counted under their
``anonymous_id``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from schemas import codec
from schemas.errors import DecodeError
from schemas.outputs import DeadLetter
from stream import topics
from stream.settings import Settings

log = logging.getLogger(__name__)

AGENT_NAME = "activity-counter"
TABLE_NAME = "activity-counts"


@dataclass(frozen=True)
class ActivityCounter:
    """The counter's parts, as declared on an app."""

    agent: faust.types.AgentT
    table: faust.types.TableT
    counts_topic: faust.types.TopicT
    dead_letter_topic: faust.types.TopicT


def register(app: faust.App, settings: Settings) -> ActivityCounter:
    """Declare the counter's topics, table and agent on ``app``."""

    def raw_topic(spec: topics.TopicSpec, **kwargs: Any) -> faust.types.TopicT:
        return app.topic(
            settings.topic(spec.name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            **kwargs,
        )

    sources = app.topic(
        *(settings.topic(spec.name) for spec in topics.SOURCES),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    counts_out = raw_topic(topics.ACTIVITY_COUNTS, compacting=True)
    dead_letters = raw_topic(topics.DEAD_LETTERS)
    counts = app.Table(TABLE_NAME, default=int, partitions=settings.topic_partitions)

    @app.agent(sources, name=AGENT_NAME, concurrency=1)
    async def count_activity(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            message = event.message
            received_at = datetime.now(UTC)
            try:
                decoded = codec.decode(event.value, now=received_at)
            except DecodeError as exc:
                log.warning(
                    "dead letter %s[%s]@%s: %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    exc,
                )
                letter = DeadLetter.build(
                    source_topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    error_kind=exc.kind,
                    message=exc.detail,
                    field=exc.field,
                    original_key=event.key,
                    original=event.value,
                    received_at=received_at,
                )
                await dead_letters.send(key=event.key, value=codec.encode(letter))
                yield None
                continue
            who = codec.event_key(decoded).decode()
            counts[who] += 1
            await counts_out.send(
                key=who.encode(),
                value=orjson.dumps({"lead_id": who, "events": counts[who]}),
            )
            yield None

    return ActivityCounter(count_activity, counts, counts_out, dead_letters)
