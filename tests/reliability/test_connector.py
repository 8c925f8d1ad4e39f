"""A webhook connector through a receiver outage, a kill and a rebalance.

One backlog of stage changes; a receiver that checks every signature (the `standardwebhooks`
library) and answers after 20 ms. The receiver goes down for `connector_down_s` once a quarter is
delivered (the connector must pause its partitions and hold its window, its memory flat), the
connector is killed with SIGKILL after 60% and started again, and a second connector joins
after 80% (a rebalance). Every change must arrive (by its `webhook-id`), each lead's changes in
order of first arrival; what arrived twice is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import reliability_harness as h
from connect_kit import SECRET, ConnectorProcess, all_committed, read_dead_letters, wait_until
from standardwebhooks import Webhook

from stream.bench.connect import produce_changes, sample_changes
from stream.bench.receiver import Receiver
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings

pytestmark = pytest.mark.integration

WINDOW = 200
PAUSED = "leadstream_connector_paused_partitions{destination=webhook}"
IN_FLIGHT = "leadstream_connector_in_flight{destination=webhook}"


async def test_a_connector_through_an_outage_a_kill_and_a_rebalance(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(topic_partitions=4)
    await ensure_topics(settings, [topics.STAGE_CHANGES, topics.CONNECTOR_DEAD_LETTERS])
    total = h.SIZES.connector_changes
    changes = sample_changes(total, max(total // 5, 1), prefix="rel")
    expected = [str(c.event_id) for c in changes]
    receiver = Receiver(delay_s=0.02, verify=Webhook(SECRET).verify)
    await receiver.start()
    env = {
        "LEADSTREAM_CONNECT_MAX_IN_FLIGHT": str(WINDOW),
        "LEADSTREAM_CONNECT_MAX_ATTEMPTS": "10000",
    }
    launched: list[ConnectorProcess] = []

    def launch() -> ConnectorProcess:
        process = ConnectorProcess(
            settings, receiver.url, tmp_path / f"c{len(launched)}.log", **env
        )
        process.start()
        launched.append(process)
        return process

    def delivered() -> int:
        return len(receiver.ids())

    try:
        await produce_changes(settings, changes)
        first = launch()
        await wait_until(
            lambda: delivered() >= total // 4, h.SIZES.settle_s, "a quarter", first.log
        )

        await receiver.stop()
        loop = asyncio.get_running_loop()
        down_until = loop.time() + h.SIZES.connector_down_s
        flights, rss = [], []
        await wait_until(lambda: first.metrics().get(PAUSED, 0) > 0, 30, "paused", first.log)
        while loop.time() < down_until:
            flights.append(first.metrics().get(IN_FLIGHT, 0))
            rss.append(first.rss_mb())
            await asyncio.sleep(1)
        await receiver.start()
        assert max(flights) <= WINDOW

        await wait_until(lambda: delivered() >= total * 6 // 10, h.SIZES.settle_s, "60%", first.log)
        first.kill()
        second = launch()
        await wait_until(
            lambda: delivered() >= total * 8 // 10, h.SIZES.settle_s, "80%", second.log
        )
        third = launch()  # joins: a rebalance
        await wait_until(lambda: delivered() == total, h.SIZES.settle_s, "every change", third.log)
        group = f"{settings.app_id}-connect-webhook"
        for _ in range(50):  # the last commits land within a commit interval or two
            if await all_committed(settings, group):
                break
            await asyncio.sleep(0.2)
    finally:
        for process in launched:
            process.stop()
        await receiver.stop()

    first_seen: dict[str, list[str]] = {}
    seen: set[str] = set()
    for delivery in receiver.deliveries:
        if delivery.msg_id not in seen:
            seen.add(delivery.msg_id)
            first_seen.setdefault(delivery.lead_id, []).append(delivery.msg_id)
    lost = len(set(expected) - seen)
    duplicated = len(receiver.deliveries) - len(seen)
    out_of_order = sum(
        1
        for lead, ids in first_seen.items()
        if ids != [str(c.event_id) for c in changes if c.lead_id == lead]
    )
    h.record(
        h.Tally(
            scenario="connector",
            events_in=total,
            scored=len(seen),
            dead_lettered=len(await read_dead_letters(settings)),
            lost=lost,
            duplicated=duplicated,
            notes={
                "receiver_down_s": h.SIZES.connector_down_s,
                "max_in_flight": max(flights),
                "rss_mb_during_outage": f"{min(rss):.0f}-{max(rss):.0f}",
                "leads_out_of_order": out_of_order,
                "rejected_signatures": receiver.rejected,
            },
        )
    )
    assert lost == 0
    assert out_of_order == 0
    assert receiver.rejected == 0
    assert max(rss) - min(rss) < 25
    assert await all_committed(settings, group)
