"""Account stage changes through the delivery core on the real broker: read beside the lead stage
changes, delivered as signed ``account.stage_changed`` webhooks in order per account, once each,
committed; dead-lettered with their account and redriven; as HubSpot companies and Salesforce
Accounts."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from connect_kit import SECRET, all_committed, read_dead_letters, wait_until
from crm_fakes.hubspot import TOKEN, HubspotFake
from crm_fakes.salesforce import CLIENT_ID, CLIENT_SECRET, SalesforceFake

from schemas import codec
from schemas.outputs import AccountStageChanged, ConnectorFailure
from schemas.stages import AccountStage
from stream.bench.connect import produce_changes, sample_changes
from stream.bench.receiver import Answer, Delivery, Receiver
from stream.connect.core import (
    Connector,
    DeadLetterSource,
    DeliveryPolicy,
    Report,
    StageChangeSource,
)
from stream.connect.destination import Destination
from stream.connect.flow import Backoff
from stream.connect.hubspot import HubspotDestination
from stream.connect.mapping import parse_mapping
from stream.connect.salesforce import SalesforceDestination, client_credentials_form
from stream.connect.webhook import WebhookDestination, make_endpoint
from stream.kafka import clients, topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(backoff=Backoff(initial_s=0.05, max_s=0.2), commit_interval_s=0.1)
_PATH = (
    AccountStage.TARGET,
    AccountStage.ENGAGED,
    AccountStage.MQA,
    AccountStage.ENGAGED,
    AccountStage.MQA,
    AccountStage.OPPORTUNITY,
)
"""Each account's stages, in order: a demotion and a second promotion among them."""


@pytest.fixture
async def account_topics(ready_topics: Settings) -> Settings:
    await ensure_topics(ready_topics, [topics.ACCOUNT_STAGE_CHANGES])
    return ready_topics


def account_changes(accounts: int, prefix: str) -> list[AccountStageChanged]:
    """`len(_PATH)` changes for each of `accounts` accounts, interleaved across accounts."""
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    changes = []
    for step, (before, after) in enumerate(zip((None, *_PATH), _PATH, strict=False)):
        for number in range(accounts):
            changes.append(
                AccountStageChanged.build(
                    account_id=f"{prefix}-{number}.example",
                    model="default",
                    from_stage=before,
                    to_stage=after,
                    reason="test",
                    triggering_lead_id=f"ada@{prefix}-{number}.example",
                    score=10.0 * (step + 1),
                    occurred_at=start + timedelta(minutes=step, seconds=number),
                )
            )
    return changes


async def produce_account_changes(settings: Settings, records: list[AccountStageChanged]) -> None:
    topic = settings.topic(topics.ACCOUNT_STAGE_CHANGES.name)
    async with clients.producer(settings, role="test", acks="all", linger_ms=5) as producer:
        await clients.send_batch(
            producer, ((topic, r.account_id.encode(), codec.encode(r)) for r in records)
        )


async def _run_until(connector: Connector, done: Callable[[], object]) -> Report:
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(lambda: done() or task.done(), 20.0, "delivery")
        if task.done():
            await task
            pytest.fail("the connector stopped by itself")
    finally:
        connector.stop()
        report = await asyncio.wait_for(task, 30)
    return report


def _connector(settings: Settings, destination: Destination, **kwargs: Any) -> Connector:
    return Connector(
        settings, destination, FAST, source=StageChangeSource(settings, accounts=True), **kwargs
    )


async def test_account_changes_arrive_in_account_order_once_each_beside_lead_changes(
    account_topics: Settings, receiver: Receiver
) -> None:
    accounts = account_changes(5, "ord")
    leads = sample_changes(12, 4, prefix="ordlead")
    await produce_account_changes(account_topics, accounts)
    await produce_changes(account_topics, leads)
    destination = WebhookDestination([make_endpoint(receiver.url, SECRET)])
    connector = _connector(account_topics, destination)
    try:
        report = await _run_until(connector, lambda: len(receiver.ids()) >= 42)
    finally:
        await destination.aclose()

    assert receiver.rejected == 0  # every request carried a valid signature
    assert report.delivered == 42 and report.dead_lettered == 0
    sent = Counter(d.msg_id for d in receiver.deliveries)
    assert set(sent) == {str(c.event_id) for c in [*accounts, *leads]}
    assert set(sent.values()) == {1}, "a change was delivered twice"
    by_account: dict[str, list[str]] = defaultdict(list)
    for delivery in receiver.deliveries:
        if delivery.kind == "account.stage_changed":
            assert delivery.account_id is not None and delivery.lead_id == ""
            by_account[delivery.account_id].append(delivery.msg_id)
    assert len(by_account) == 5
    for account, ids in by_account.items():
        expected = [str(c.event_id) for c in accounts if c.account_id == account]
        assert ids == expected, f"{account}'s changes arrived out of order"
    kinds = Counter(d.kind for d in receiver.deliveries)
    assert kinds == {"account.stage_changed": 30, "lead.stage_changed": 12}
    assert await all_committed(account_topics, connector.group_id)
    assert await all_committed(account_topics, connector.group_id, topics.ACCOUNT_STAGE_CHANGES)


async def test_an_account_waits_for_its_refused_change_which_redrive_delivers(
    account_topics: Settings,
) -> None:
    accounts = account_changes(2, "dl")
    refused = accounts[0]  # dl-0's first change: refused until the receiver is fixed
    accept = {"all": False}

    def answer(delivery: Delivery) -> Answer:
        if delivery.msg_id == str(refused.event_id) and not accept["all"]:
            return Answer(422, body='{"error":"unknown account"}')
        return Answer(200)

    served = Receiver(respond=answer)
    await served.start()
    await produce_account_changes(account_topics, accounts)
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    connector = _connector(account_topics, destination)
    try:
        report = await _run_until(
            connector, lambda: connector.report.delivered + connector.report.dead_lettered >= 12
        )
        assert (report.delivered, report.dead_lettered) == (11, 1)
        (letter,) = await read_dead_letters(account_topics)
        assert letter.failure is ConnectorFailure.PERMANENT and "422" in letter.reason
        assert (letter.account_id, letter.lead_id) == ("dl-0.example", None)
        assert letter.record_event_id == str(refused.event_id)
        assert letter.source_topic == account_topics.topic(topics.ACCOUNT_STAGE_CHANGES.name)
        assert codec.decode_account_stage_change(letter.original) == refused

        accept["all"] = True
        redrive = Connector(
            account_topics,
            destination,
            FAST,
            source=DeadLetterSource(account_topics, "webhook"),
            group_id=f"{account_topics.app_id}-redrive",
        )
        redriven = await asyncio.wait_for(redrive.run(), 30)
        assert (redriven.delivered, redriven.dead_lettered) == (1, 0)
    finally:
        await destination.aclose()
        await served.stop()
    last = served.deliveries[-1]
    assert (last.kind, last.msg_id, last.account_id) == (
        "account.stage_changed",
        str(refused.event_id),
        "dl-0.example",
    )
    assert served.ids() == {str(c.event_id) for c in accounts}


async def test_hubspot_companies_follow_each_account_to_its_last_stage(
    account_topics: Settings, hubspot_fake: HubspotFake
) -> None:
    accounts = account_changes(4, "hs")
    await produce_account_changes(account_topics, accounts)
    destination = HubspotDestination(
        access_token=TOKEN,
        mapping=parse_mapping("").hubspot,
        api_url=hubspot_fake.base_url,
        rate_per_s=1000.0,
        burst=100,
    )
    connector = _connector(account_topics, destination)
    try:
        report = await _run_until(connector, lambda: connector.report.delivered >= 24)
    finally:
        await destination.aclose()
    assert report.dead_lettered == 0
    assert len(hubspot_fake.companies) == 4
    for number in range(4):
        company = hubspot_fake.company("leadstream_account_id", f"hs-{number}.example")
        assert company is not None
        # the last change (mqa -> opportunity) wins, and its score
        assert company["leadstream_account_stage"] == "opportunity"
        assert company["lifecyclestage"] == "opportunity"
        assert company["leadstream_account_score"] == "60.0"
    # every call was a companies batch of at most one change per account
    for request in hubspot_fake.requests:
        assert request["path"] == "/crm/v3/objects/companies/batch/upsert"
        inputs = codec.loads(request["body"])["inputs"]
        assert len({item["id"] for item in inputs}) == len(inputs)
    assert await all_committed(account_topics, connector.group_id, topics.ACCOUNT_STAGE_CHANGES)


async def test_the_webhook_command_delivers_account_changes_when_told_to(
    account_topics: Settings, receiver: Receiver, connectors: Any
) -> None:
    """`leadstream connect webhook` with LEADSTREAM_CONNECT_ACCOUNTS=true reads both topics."""
    accounts = account_changes(3, "cli")
    leads = sample_changes(4, 2, prefix="clilead")
    await produce_account_changes(account_topics, accounts)
    await produce_changes(account_topics, leads)
    process = connectors(receiver.url, LEADSTREAM_CONNECT_ACCOUNTS="true")
    expected = {str(c.event_id) for c in [*accounts, *leads]}
    await wait_until(lambda: receiver.ids() == expected, 30, "every change", process.log)
    assert receiver.rejected == 0
    assert Counter(d.kind for d in receiver.deliveries) == {
        "account.stage_changed": 18,
        "lead.stage_changed": 4,
    }
    group = f"{account_topics.app_id}-connect-webhook"
    for _ in range(50):  # commits go every 0.2 s
        if await all_committed(account_topics, group, topics.ACCOUNT_STAGE_CHANGES):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the account stage changes were never all committed")


async def test_salesforce_accounts_follow_each_account_to_its_last_stage(
    account_topics: Settings, salesforce_fake: SalesforceFake
) -> None:
    accounts = account_changes(3, "sf")
    for number in range(3):
        salesforce_fake.add_account(
            Name=f"Account {number}", Leadstream_Account_Id__c=f"sf-{number}.example"
        )
    await produce_account_changes(account_topics, accounts)
    destination = SalesforceDestination(
        login_url=salesforce_fake.base_url,
        token_form=client_credentials_form(CLIENT_ID, CLIENT_SECRET),
        mapping=parse_mapping("").salesforce,
        rate_per_s=1000.0,
        burst=100,
    )
    connector = _connector(account_topics, destination)
    try:
        report = await _run_until(connector, lambda: connector.report.delivered >= 18)
    finally:
        await destination.aclose()
    assert report.dead_lettered == 0
    for number in range(3):
        account = salesforce_fake.account(f"sf-{number}.example")
        assert account is not None and account["Name"] == f"Account {number}"
        assert account["Leadstream_Account_Stage__c"] == "opportunity"
        assert account["Leadstream_Account_Score__c"] == 60.0
    assert len(salesforce_fake.accounts) == 3
