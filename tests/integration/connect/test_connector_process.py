"""`leadstream connect` processes on the real broker: every stage change reaches the receiver
(deduplicated by its id) across a SIGKILL and restart, a receiver outage, and a rebalance
between two connectors; `connect redrive` sends dead letters again."""

from __future__ import annotations

import asyncio
import sys
from asyncio.subprocess import PIPE, STDOUT
from typing import Any

import pytest
from connect_kit import SECRET, ConnectorProcess, all_committed, wait_until
from standardwebhooks import Webhook

from stream.bench.connect import produce_changes, sample_changes
from stream.bench.receiver import Answer, Receiver
from stream.connect.core import Connector, DeliveryPolicy
from stream.connect.webhook import WebhookDestination, make_endpoint
from stream.settings import Settings

pytestmark = pytest.mark.integration


LAG = "leadstream_connector_lag{destination=webhook}"


def _expected(changes: list[Any]) -> set[str]:
    return {str(c.event_id) for c in changes}


async def test_a_killed_connector_restarts_where_it_committed_and_loses_nothing(
    ready_topics: Settings, receiver: Receiver, connectors: Any
) -> None:
    changes = sample_changes(300, 60, prefix="kill")
    receiver.delay_s = 0.1  # slow enough that the kill lands mid-stream
    await produce_changes(ready_topics, changes)
    # at most 10 changes in flight, 100 ms each: about 100 a second, so the kill lands mid-stream
    first = connectors(
        receiver.url, LEADSTREAM_CONNECT_CONCURRENCY="2", LEADSTREAM_CONNECT_MAX_IN_FLIGHT="10"
    )
    await wait_until(lambda: len(receiver.ids()) >= 40, 30, "first deliveries", first.log)
    first.kill()
    at_kill = len(receiver.ids())
    assert at_kill < 300, "everything was delivered before the kill: nothing was tested"

    second = connectors(receiver.url)
    await wait_until(lambda: receiver.ids() == _expected(changes), 30, "every change", second.log)
    assert receiver.rejected == 0
    # whatever was resent was resent with the same id (the receiver dedupes by it)
    assert len(receiver.deliveries) >= 300
    await wait_until(
        lambda: second.metrics().get(LAG) == 0,
        10,
        "lag 0",
        second.log,
    )
    assert await all_committed(ready_topics, f"{ready_topics.app_id}-connect-webhook")


async def test_a_receiver_outage_pauses_the_partitions_and_nothing_is_lost(
    ready_topics: Settings, receiver: Receiver, connectors: Any
) -> None:
    window = 40
    process = connectors(
        receiver.url,
        LEADSTREAM_CONNECT_MAX_IN_FLIGHT=str(window),
        LEADSTREAM_CONNECT_MAX_ATTEMPTS="1000",
    )
    before = sample_changes(20, 20, prefix="pre")
    await produce_changes(ready_topics, before)
    await wait_until(
        lambda: receiver.ids() == _expected(before), 30, "the first changes", process.log
    )

    await receiver.stop()  # down: connections refused
    during = sample_changes(600, 200, prefix="out")
    await produce_changes(ready_topics, during)
    paused = "leadstream_connector_paused_partitions{destination=webhook}"
    in_flight = "leadstream_connector_in_flight{destination=webhook}"
    await wait_until(
        lambda: process.metrics().get(paused, 0) > 0, 20, "paused partitions", process.log
    )
    rss, flights = [], []
    for _ in range(16):  # eight seconds of outage
        sample = process.metrics()
        flights.append(sample[in_flight])
        rss.append(process.rss_mb())
        await asyncio.sleep(0.5)
    assert max(flights) <= window  # the window holds: the rest waits on the broker
    assert process.metrics()[paused] > 0
    assert max(rss) - min(rss) < 25, f"memory grew during the outage: {rss}"
    retried = sum(
        v
        for k, v in process.metrics().items()
        if k.startswith("leadstream_connector_retried_total")
    )
    assert retried > 0

    await receiver.start()  # back on the same port
    await wait_until(
        lambda: receiver.ids() == _expected(before + during),
        30,
        "every change after the outage",
        process.log,
    )
    await wait_until(
        lambda: process.metrics().get(paused) == 0, 10, "partitions resumed", process.log
    )
    assert (
        process.metrics().get(
            "leadstream_connector_dead_lettered_total{destination=webhook,reason=retries_exhausted}",
            0,
        )
        == 0
    )


async def test_two_connectors_share_the_partitions_across_rebalances(
    ready_topics: Settings, receiver: Receiver, connectors: Any
) -> None:
    receiver.delay_s = 0.2  # with one call of at most 10 changes at a time: about 50 a second
    slow = {"LEADSTREAM_CONNECT_CONCURRENCY": "1", "LEADSTREAM_CONNECT_MAX_IN_FLIGHT": "10"}
    assigned = "leadstream_connector_assigned_partitions{destination=webhook}"
    delivered = "leadstream_connector_delivered_total{destination=webhook}"
    first_batch = sample_changes(400, 100, prefix="reb-a")  # about 8 s for one connector
    await produce_changes(ready_topics, first_batch)
    one = connectors(receiver.url, **slow)
    await wait_until(lambda: len(receiver.ids()) >= 20, 30, "the first connector", one.log)

    two = connectors(receiver.url, **slow)  # joins mid-stream: a rebalance
    await wait_until(
        lambda: two.metrics().get(assigned, 0) > 0 and one.metrics().get(assigned) < 4,
        30,
        "the partitions shared",
        two.log,
    )
    assert len(receiver.ids()) < 400, "the first connector was done before the rebalance"
    second_batch = sample_changes(100, 25, prefix="reb-b")
    await produce_changes(ready_topics, second_batch)
    await wait_until(lambda: two.metrics().get(delivered, 0) > 0, 30, "the second's share", two.log)

    assert one.stop() == 0  # leaves: another rebalance, `two` takes every partition
    third_batch = sample_changes(50, 25, prefix="reb-c")
    await produce_changes(ready_topics, third_batch)
    everything = _expected(first_batch + second_batch + third_batch)
    await wait_until(lambda: receiver.ids() == everything, 40, "every change", two.log)
    assert receiver.rejected == 0
    assert two.metrics()[assigned] == 4
    await wait_until(lambda: two.metrics().get(LAG) == 0, 10, "lag 0", two.log)
    assert await all_committed(ready_topics, f"{ready_topics.app_id}-connect-webhook")


async def test_connect_redrive_sends_the_dead_letters_again_and_exits_0(
    ready_topics: Settings, tmp_path: Any
) -> None:
    refusing = {"on": True}
    served = Receiver(
        verify=Webhook(SECRET).verify,
        respond=lambda d: Answer(410 if refusing["on"] and d.lead_id == "cli-0" else 200),
    )
    await served.start()
    changes = sample_changes(4, 2, prefix="cli")
    await produce_changes(ready_topics, changes)
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    connector = Connector(ready_topics, destination, DeliveryPolicy())
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(lambda: connector.report.dead_lettered == 2, 20, "two dead letters")
    finally:
        connector.stop()
        await task
        await destination.aclose()

    refusing["on"] = False
    env = ConnectorProcess(ready_topics, served.url, tmp_path / "redrive.log").env
    argv = ["-m", "stream.cli", "connect", "redrive", "webhook", "--all", "--url", served.url]
    try:
        redrive = await asyncio.create_subprocess_exec(
            sys.executable, *argv, env=env, stdout=PIPE, stderr=STDOUT
        )
        output, _ = await asyncio.wait_for(redrive.communicate(), 60)
    finally:
        await served.stop()
    assert redrive.returncode == 0, output.decode()
    assert "2 delivered" in output.decode()
    assert served.ids() == _expected(changes)
