"""Creating and checking Leadstream's topics on the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stream.errors import ConfigurationError, InfrastructureError
from stream.kafka import clients, topics
from stream.settings import Settings

ALL_TOPICS: tuple[topics.TopicSpec, ...] = (
    *topics.SOURCES,
    topics.SCORES,
    topics.STAGE_CHANGES,
    topics.DEAD_LETTERS,
    topics.ACCOUNT_SCORES,
    topics.ACCOUNT_STAGE_CHANGES,
    topics.INTERNAL,
)


@dataclass(frozen=True)
class TopicState:
    """What the broker says about one topic."""

    name: str
    partitions: int | None  # None: the topic does not exist

    @property
    def exists(self) -> bool:
        return self.partitions is not None


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog topic Faust keeps a table of this app in."""
    return f"{settings.app_id}-{table}-changelog"


async def describe_topics(
    settings: Settings, specs: Iterable[topics.TopicSpec] = ALL_TOPICS
) -> list[TopicState]:
    """The partition count of each topic, or None where it is missing."""
    return await _describe(settings, [settings.topic(spec.name) for spec in specs])


async def _describe(settings: Settings, names: list[str]) -> list[TopicState]:
    async with clients.admin(settings, request_timeout_ms=15000) as admin:
        existing = set(await admin.list_topics())
        present = [n for n in names if n in existing]
        described = await admin.describe_topics(present) if present else []
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        return [TopicState(n, counts.get(n)) for n in names]


async def ensure_topics(
    settings: Settings,
    specs: Iterable[topics.TopicSpec] = ALL_TOPICS,
    *,
    tables: Iterable[str] = (),
) -> list[str]:
    """Create the missing topics, and the changelogs of ``tables``; fail clearly when an
    existing one has other partitions.

    A worker creates its tables' changelogs here, before Faust starts, rather than leave it to
    Faust: Faust creates them once the app runs, and on a cluster of several brokers the
    worker's consumer may then not know the new topic's partitions when the agent first
    writes to a table (``PartitionsMismatch``: "the changelog topic has 0 partitions", the
    agent crashed).

    Returns the names of the topics it created.
    """
    wanted = {settings.topic(spec.name): spec.cleanup_policy for spec in specs}
    wanted |= {changelog_topic(settings, table): "compact" for table in tables}
    states = {s.name: s for s in await _describe(settings, list(wanted))}
    wrong = [
        f"{s.name} has {s.partitions} partitions, expected {settings.topic_partitions}"
        for s in states.values()
        if s.exists and s.partitions != settings.topic_partitions
    ]
    if wrong:
        raise ConfigurationError(
            "topics exist with another partition count (tables need co-partitioned topics): "
            + "; ".join(wrong)
        )
    missing = [name for name in wanted if not states[name].exists]
    if not missing:
        return []
    async with clients.admin(settings, request_timeout_ms=15000) as admin:
        new = [
            NewTopic(
                name=name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={"cleanup.policy": wanted[name], **settings.durability_configs()},
            )
            for name in missing
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # created concurrently by another worker
        except KafkaError as exc:
            raise InfrastructureError(f"creating topics failed: {exc}") from exc
    # Metadata propagates asynchronously; wait until every topic is visible.
    for _ in range(50):
        if all(s.exists for s in await _describe(settings, missing)):
            break
        await asyncio.sleep(0.1)
    return [t.name for t in new]
