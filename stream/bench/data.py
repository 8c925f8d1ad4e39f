"""The benchmark's traffic: simulated deliveries, multiplied into copies, and loaded into Kafka.

A simulation (``stream.simulate.traffic``) of ``base_leads`` people is built once; the records are
then copied with every lead and anonymous id renamed per copy (``lead-`` → ``lead-<copy>``), so N
events keep the simulator's mix (personas, topics, anonymous visitors, late, duplicate and
malformed deliveries) without building N pydantic events. Copies follow each other, so each
lead's records keep their order within its partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import DefaultPartitioner

from stream.kafka import clients
from stream.settings import Settings
from stream.simulate.traffic import Delivery, SimConfig, generate

EVENTS_PER_LEAD = 50
"""About how many deliveries the simulator makes per person over ``DAYS`` (measured: 53.9)."""
DAYS = 40.0


@dataclass(frozen=True)
class Traffic:
    """The base simulation's records and how many copies make the benchmark's N."""

    base: list[Delivery]
    base_leads: int

    def copies(self, total: int, tag: str = "") -> Iterator[Delivery]:
        """``total`` records: the base records renamed per copy (``tag`` names the copy set)."""
        sent = 0
        copy = 0
        while sent < total:
            lead = f"lead-{tag}{copy:x}x".encode()
            anon = f"anon-{tag}{copy:x}x".encode()
            for delivery in self.base:
                if sent >= total:
                    return
                key = delivery.key
                if key is not None:
                    key = key.replace(b"lead-", lead).replace(b"anon-", anon)
                value = delivery.value.replace(b"lead-", lead).replace(b"anon-", anon)
                yield Delivery(delivery.topic, key, value)
                sent += 1
            copy += 1


def build_traffic(events: int, *, seed: int = 7, max_base_leads: int = 2000) -> Traffic:
    """A base simulation big enough for ``events`` (at most ``max_base_leads`` people)."""
    leads = max(20, min(max_base_leads, events // EVENTS_PER_LEAD + 1))
    start = datetime.now(UTC) - timedelta(days=DAYS, hours=1)
    simulation = generate(SimConfig(seed=seed, leads=leads, days=DAYS, start=start))
    return Traffic(simulation.deliveries, leads)


async def produce(
    settings: Settings,
    records: Sequence[Delivery] | Iterator[Delivery],
    *,
    rename_topic: bool = True,
) -> tuple[int, float]:
    """Send records as fast as the producer batches them; (count, seconds)."""
    async with clients.producer(
        settings, acks=1, linger_ms=20, max_batch_size=512 * 1024
    ) as producer:
        started = time.perf_counter()
        if rename_topic:
            records = (d._replace(topic=settings.topic(d.topic)) for d in records)
        count = await clients.send_batch(producer, records, window=20_000)
    return count, time.perf_counter() - started


def keys_per_partition(prefix: str, partitions: int) -> list[str]:
    """One lead id per partition (Kafka's default partitioner), each starting with ``prefix``."""
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        key = f"{prefix}{i}"
        part = int(partitioner(key.encode(), every, every))
        found.setdefault(part, key)
        i += 1
    return [found[p] for p in every]
