"""`leadstream forget LEAD_ID`: ask the workers to erase a lead (right to be forgotten).

Sends one `lead_erased` event to the profiles topic, keyed like every event of the lead, with a
fresh event id. The worker owning the lead deletes its state, unlinks its anonymous ids and
publishes a `lead_erased` record per model to the scores and stage-changes topics, which the
read model and CRM connectors follow.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from stream.cli.common import EXIT_OK, EXIT_USAGE, Subparsers, examples, fail
from stream.errors import InfrastructureError

if TYPE_CHECKING:
    from schemas.events import LeadErased
    from stream.settings import Settings

__all__ = ["add_parser", "erasure", "forget", "run"]

SOURCE = "leadstream-cli"


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "forget",
        **examples(
            'leadstream forget lead-42 --reason "GDPR request 4411"',
        ),
        help="erase a lead: send a lead_erased event to the profiles topic",
        description=(
            "Send a lead_erased event (fresh event id) for LEAD_ID to the profiles topic; the "
            "worker owning the lead deletes its state and publishes the erasure to the scores "
            "and stage-changes topics. Exit 4 when Kafka cannot be reached."
        ),
    )
    parser.add_argument("lead_id", metavar="LEAD_ID")
    parser.add_argument("--reason", help="why (kept with the event), e.g. 'GDPR request 4411'")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Send a lead_erased event for a lead to the profiles topic."""
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    try:
        event, topic = asyncio.run(forget(settings, args.lead_id, args.reason))
    except ValidationError as exc:
        if any(error["loc"][:1] == ("lead_id",) for error in exc.errors()):
            return fail("forget", f"{args.lead_id!r} is not a lead id", EXIT_USAGE)
        raise
    print(f"sent lead_erased {event.event_id} for {event.lead_id} to {topic}")
    return EXIT_OK


def erasure(lead_id: str, reason: str | None, *, now: datetime) -> LeadErased:
    """The `lead_erased` event for a lead (`ValidationError` for an id that is not one)."""
    from schemas.events import LeadErased  # noqa: PLC0415

    return LeadErased(
        event_id=str(uuid.uuid4()),
        occurred_at=now,
        lead_id=lead_id,
        source=SOURCE,
        reason=reason,
    )


async def forget(settings: Settings, lead_id: str, reason: str | None) -> tuple[LeadErased, str]:
    """Send the erasure; returns the event and the topic it went to."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from schemas import codec  # noqa: PLC0415
    from schemas.topics import topic_for  # noqa: PLC0415
    from stream.kafka import clients  # noqa: PLC0415

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
