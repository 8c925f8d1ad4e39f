"""Activity counter: events seen per lead, kept in a RocksDB-backed table.

It consumes the source topics as raw bytes, counts events per lead in a Faust table (one
changelog write per event) and publishes the latest count per lead to a compacted topic.
Messages that are not JSON objects with a ``lead_id`` go to the dead-letter topic with the
reason and their original bytes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from stream import topics
from stream.settings import Settings

log = logging.getLogger(__name__)

AGENT_NAME = "activity-counter"
TABLE_NAME = "activity-counts"


class NotALeadEvent(ValueError):
    """A message that is not a JSON object carrying a string ``lead_id``."""


def lead_id_of(raw: bytes) -> str:
    """The ``lead_id`` of a raw JSON event."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotALeadEvent(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise NotALeadEvent("not a JSON object")
    lead_id = payload.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id:
        raise NotALeadEvent("no lead_id")
    return lead_id


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
            try:
                lead_id = lead_id_of(event.value)
            except NotALeadEvent as exc:
                log.warning(
                    "dead letter %s[%s]@%s: %s",
                    message.topic,
                    message.partition,
                    message.offset,
                    exc,
                )
                await dead_letters.send(
                    key=event.key,
                    value=orjson.dumps(
                        {
                            "source_topic": message.topic,
                            "partition": message.partition,
                            "offset": message.offset,
                            "error_kind": "invalid",
                            "message": str(exc),
                            "original_base64": base64.b64encode(event.value).decode("ascii"),
                            "received_at": datetime.now(UTC).isoformat(),
                        }
                    ),
                )
                yield None
                continue
            counts[lead_id] += 1
            await counts_out.send(
                key=lead_id.encode(),
                value=orjson.dumps({"lead_id": lead_id, "events": counts[lead_id]}),
            )
            yield None

    return ActivityCounter(count_activity, counts, counts_out, dead_letters)
