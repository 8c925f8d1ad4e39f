"""The delivery core on the real broker, in this process: order, commits, dead letters, redrive,
Retry-After and erasures, delivered to a receiver that checks every signature."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from connect_kit import SECRET, all_committed, read_dead_letters, wait_until

from schemas import codec
from schemas.outputs import ConnectorFailure, LeadErasedRecord
from stream.bench.connect import produce_changes, sample_changes
from stream.bench.receiver import Answer, Delivery, Receiver
from stream.connect.core import Connector, DeadLetterSource, DeliveryPolicy, Report
from stream.connect.flow import Backoff
from stream.connect.webhook import WebhookDestination, make_endpoint
from stream.kafka import clients, topics
from stream.settings import Settings

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(backoff=Backoff(initial_s=0.05, max_s=0.2), commit_interval_s=0.1)


async def _run_until(
    connector: Connector, done: Callable[[], object], timeout: float = 20.0, what: str = "delivery"
) -> Report:
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(lambda: done() or task.done(), timeout, what)
        if task.done():
            await task  # raises what stopped it
            pytest.fail("the connector stopped by itself")
    finally:
        connector.stop()
        report = await asyncio.wait_for(task, 30)
    return report


async def _deliver(
    settings: Settings,
    url: str,
    done: Callable[[Connector], object],
    policy: DeliveryPolicy = FAST,
) -> Connector:
    """A webhook connector on `url`, run until `done(connector)`; returns it (report, group)."""
    destination = WebhookDestination([make_endpoint(url, SECRET)])
    connector = Connector(settings, destination, policy)
    try:
        await _run_until(connector, lambda: done(connector))
    finally:
        await destination.aclose()
    return connector


async def test_each_change_is_delivered_in_lead_order_and_committed(
    ready_topics: Settings, receiver: Receiver
) -> None:
    changes = sample_changes(60, 6, prefix="order")
    await produce_changes(ready_topics, changes)
    connector = await _deliver(ready_topics, receiver.url, lambda _: len(receiver.ids()) >= 60)
    report = connector.report

    assert receiver.ids() == {str(c.event_id) for c in changes}
    assert receiver.rejected == 0  # every request carried a valid signature
    by_lead: dict[str, list[str]] = defaultdict(list)
    for delivery in receiver.deliveries:
        by_lead[delivery.lead_id].append(delivery.msg_id)
    for lead, ids in by_lead.items():
        sent = [str(c.event_id) for c in changes if c.lead_id == lead]
        assert list(dict.fromkeys(ids)) == sent, f"{lead}'s changes arrived out of order"
    assert report.delivered == 60 and report.dead_lettered == 0
    # batches of several leads at once: fewer calls than changes
    assert report.calls < 60
    assert await all_committed(ready_topics, connector.group_id)


async def test_a_lead_waits_for_its_failing_change_while_other_leads_go_on(
    ready_topics: Settings,
) -> None:
    changes = sample_changes(12, 3, prefix="wait")  # leads wait-0, wait-1, wait-2; 4 each
    stuck = str(changes[0].event_id)  # wait-0's first change fails three times
    failures = {"left": 3}

    def answer(delivery: Delivery) -> Answer:
        if delivery.msg_id == stuck and failures["left"]:
            failures["left"] -= 1
            return Answer(503)
        return Answer(200)

    served = Receiver(respond=answer)
    await served.start()
    await produce_changes(ready_topics, changes)
    try:
        report = (
            await _deliver(ready_topics, served.url, lambda _: len(served.ids()) >= 12)
        ).report
    finally:
        await served.stop()
    order = [d.msg_id for d in served.deliveries]
    wait_0 = [str(c.event_id) for c in changes if c.lead_id == "wait-0"]
    assert [i for i in order if i in wait_0] == wait_0  # its later changes waited for the first
    assert order.index(stuck) > 0  # and the other leads did not wait for it
    assert report.retried == 3


async def test_a_permanent_refusal_is_dead_lettered_masked_and_redrive_delivers_it(
    ready_topics: Settings,
) -> None:
    changes = sample_changes(8, 4, prefix="perm")
    refused = {c.lead_id for c in changes[:1]}  # perm-0: both of its changes refused
    accept = {"all": False}

    def answer(delivery: Delivery) -> Answer:
        if delivery.lead_id in refused and not accept["all"]:
            return Answer(422, {"set-cookie": "session=abc"}, '{"error":"unknown lead"}')
        return Answer(200)

    served = Receiver(respond=answer)
    await served.start()
    url = f"{served.url}?api_key=hunter2-in-the-url"
    await produce_changes(ready_topics, changes)
    destination = WebhookDestination([make_endpoint(url, SECRET)])
    connector = Connector(ready_topics, destination, FAST)
    try:
        report = await _run_until(
            connector, lambda: connector.report.delivered + connector.report.dead_lettered >= 8
        )
        assert (report.delivered, report.dead_lettered) == (6, 2)

        letters = await read_dead_letters(ready_topics)
        assert len(letters) == 2
        for letter in letters:
            assert letter.destination == "webhook"
            assert letter.failure is ConnectorFailure.PERMANENT
            assert "422" in letter.reason
            assert letter.lead_id == "perm-0" and letter.attempts == 1
            assert letter.exchange is not None and letter.exchange.status == 422
            assert "unknown lead" in letter.exchange.response_body
            document = letter.model_dump_json()
            assert "hunter2" not in document  # the URL's key, the signature, the cookie: masked
            assert letter.exchange.request_headers["webhook-signature"] == "***"
            assert letter.exchange.response_headers["set-cookie"] == "***"
            assert SECRET.removeprefix("whsec_") not in document
            original = codec.decode_stage_change(letter.original)
            assert str(original.event_id) == letter.record_event_id
        assert {letter.record_event_id for letter in letters} == {
            str(c.event_id) for c in changes if c.lead_id in refused
        }

        async def redrive(group: str = "redrive", **when: Any) -> Report:
            source = DeadLetterSource(ready_topics, "webhook", **when)
            run = Connector(
                ready_topics,
                destination,
                FAST,
                source=source,
                group_id=f"{ready_topics.app_id}-{group}",
            ).run()
            return await asyncio.wait_for(run, 30)

        # refused again: dead-lettered again, with the stage change itself as the original
        again = await redrive()
        assert (again.delivered, again.dead_lettered) == (0, 2)
        letters = await read_dead_letters(ready_topics)
        assert len(letters) == 4
        for letter in letters:
            codec.decode_stage_change(letter.original)  # every original is the stage change

        accept["all"] = True
        redriven = await redrive()  # the two written by the last redrive
        assert (redriven.delivered, redriven.dead_lettered) == (2, 0)
        assert served.ids() == {str(c.event_id) for c in changes}
        perm_0 = [d.msg_id for d in served.deliveries if d.lead_id == "perm-0"]
        assert perm_0 == [str(c.event_id) for c in changes if c.lead_id == "perm-0"]
        # redrive committed: the same group finds nothing left; --all sends all four again
        assert (await redrive()).delivered == 0
        assert (await redrive(from_start=True)).delivered == 4
        assert (await redrive("redrive-since", since=datetime.now(UTC))).delivered == 0
    finally:
        await destination.aclose()
        await served.stop()


async def test_retries_exhausted_go_to_the_dead_letters_with_the_last_answer(
    ready_topics: Settings,
) -> None:
    served = Receiver(respond=lambda _: Answer(500, body="database down"))
    await served.start()
    (change,) = sample_changes(1, 1, prefix="down")
    await produce_changes(ready_topics, [change])
    try:
        connector = await _deliver(
            ready_topics,
            served.url,
            lambda c: c.report.dead_lettered >= 1,
            replace(FAST, max_attempts=3),
        )
    finally:
        await served.stop()
    report = connector.report
    assert (report.retried, report.dead_lettered, served.requests) == (2, 1, 3)
    (letter,) = await read_dead_letters(ready_topics)
    assert letter.failure is ConnectorFailure.RETRIES_EXHAUSTED
    assert letter.attempts == 3 and "gave up after 3 attempts" in letter.reason
    assert letter.exchange is not None and letter.exchange.response_body == "database down"


async def test_retry_after_is_waited_for(ready_topics: Settings) -> None:
    seen: dict[str, list[float]] = defaultdict(list)

    def answer(delivery: Delivery) -> Answer:
        seen[delivery.msg_id].append(time.monotonic())
        if len(seen[delivery.msg_id]) == 1:
            return Answer(429, {"retry-after": "2"})
        return Answer(200)

    served = Receiver(respond=answer)
    await served.start()
    (change,) = sample_changes(1, 1, prefix="slow")
    await produce_changes(ready_topics, [change])
    try:  # the connector's own backoff is 50-200 ms
        connector = await _deliver(ready_topics, served.url, lambda _: len(served.deliveries) >= 1)
    finally:
        await served.stop()
    report = connector.report
    first, second = seen[str(change.event_id)]
    assert second - first >= 2.0
    assert report.retried == 1


async def test_erasures_reach_the_webhook_and_bad_records_are_dead_lettered(
    ready_topics: Settings, receiver: Receiver
) -> None:
    (change,) = sample_changes(1, 1, prefix="gone")
    erased = LeadErasedRecord.build(
        lead_id="gone-0",
        model="default",
        triggering_event_id="evt-x",
        occurred_at=datetime.now(UTC),
    )
    await produce_changes(ready_topics, [change, erased])
    topic = ready_topics.topic(topics.STAGE_CHANGES.name)
    async with clients.producer(ready_topics) as producer:
        await producer.send_and_wait(topic, key=b"gone-0", value=b'{"type":"stage_changed"}')
    connector = await _deliver(
        ready_topics,
        receiver.url,
        lambda c: len(receiver.deliveries) >= 2 and c.report.dead_lettered,
    )
    assert [d.kind for d in receiver.deliveries] == ["lead.stage_changed", "lead.erased"]
    (letter,) = await read_dead_letters(ready_topics)
    assert letter.failure is ConnectorFailure.UNDECODABLE
    assert letter.original == b'{"type":"stage_changed"}' and letter.original_key == b"gone-0"
    assert "event_id" in letter.reason  # the first missing field
    assert await all_committed(ready_topics, connector.group_id)


async def test_the_rate_limit_paces_the_requests(ready_topics: Settings) -> None:
    arrivals: list[float] = []

    def answer(_: Delivery) -> Answer:
        arrivals.append(time.monotonic())
        return Answer(200)

    served = Receiver(respond=answer)
    await served.start()
    await produce_changes(ready_topics, sample_changes(12, 12, prefix="paced"))
    try:  # 20 requests a second, 2 at once: the 10 after the first 2 take half a second
        await _deliver(
            ready_topics,
            served.url,
            lambda _: len(arrivals) >= 12,
            replace(FAST, rate_per_s=20.0, burst=2),
        )
    finally:
        await served.stop()
    assert arrivals[-1] - arrivals[0] >= 0.45
    busiest = max(sum(1 for t in arrivals if s <= t < s + 0.1) for s in arrivals)
    assert busiest <= 4  # never more than the burst plus what 100 ms earns (2)
