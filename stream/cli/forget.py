"""`leadstream forget LEAD_ID`: ask the workers to erase a lead (right to be forgotten).

Sends one `lead_erased` event to the profiles topic, keyed like every event of the lead, with a
fresh event id. The worker owning the lead deletes its state, unlinks its anonymous ids and
publishes a `lead_erased` record per model to the scores and stage-changes topics, which the
read model and CRM connectors follow.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from schemas import codec
from schemas.events import LeadErased
from schemas.topics import topic_for
from stream.errors import InfrastructureError
from stream.kafka import clients
from stream.settings import Settings

__all__ = ["erasure", "forget"]

SOURCE = "leadstream-cli"


def erasure(lead_id: str, reason: str | None, *, now: datetime) -> LeadErased:
    """The `lead_erased` event for a lead (`ValidationError` for an id that is not one)."""
    return LeadErased(
        event_id=str(uuid.uuid4()),
        occurred_at=now,
        lead_id=lead_id,
        source=SOURCE,
        reason=reason,
    )


async def forget(settings: Settings, lead_id: str, reason: str | None) -> tuple[LeadErased, str]:
    """Send the erasure; returns the event and the topic it went to."""
    event = erasure(lead_id, reason, now=datetime.now(UTC))
    topic = settings.topic(topic_for(event))
    async with clients.producer(settings, acks="all", request_timeout_ms=15000) as producer:
        try:
            await producer.send_and_wait(
                topic, key=codec.event_key(event), value=codec.encode(event)
            )
        except KafkaError as exc:
            raise InfrastructureError(f"sending to Kafka failed: {exc}") from exc
    return event, topic
