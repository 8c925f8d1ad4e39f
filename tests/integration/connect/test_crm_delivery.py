"""The CRM destinations through the delivery core on the real broker: stage changes read from
`leads.stage-changes.v1` end up as the CRM's records, in each lead's order, within the CRM's
batch limit, backwards moves included (tests/crm_fakes enforce the vendors' documented APIs)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from connect_kit import all_committed, wait_until
from crm_fakes.hubspot import TOKEN, HubspotFake

from schemas.outputs import ScoreSnapshot, StageChanged
from schemas.stages import Stage
from stream.bench.connect import produce_changes
from stream.connect.core import Connector, DeliveryPolicy
from stream.connect.flow import Backoff
from stream.connect.hubspot import HubspotDestination
from stream.connect.mapping import parse_mapping
from stream.settings import Settings

pytestmark = pytest.mark.integration

# Each lead walks this path; the last step goes back (sales rejected it), which HubSpot takes
# only through its clear-then-set path.
WALK = (Stage.LEAD, Stage.MQL, Stage.SQL, Stage.RECYCLED)


def _walks(leads: int) -> list[StageChanged]:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    records = []
    for step, (before, after) in enumerate(zip((None, *WALK), WALK, strict=False)):
        for n in range(leads):
            total = 10.0 * (step + 1)
            records.append(
                StageChanged.build(
                    lead_id=f"person{n}@example.com",
                    model="b2b",
                    model_version="1",
                    from_stage=before,
                    to_stage=after,
                    reason="walk",
                    triggering_event_id=f"evt-{n}-{step}",
                    score=ScoreSnapshot(fit=5.0, engagement=total - 5.0, total=total, grade="B2"),
                    occurred_at=t0 + timedelta(minutes=step, seconds=n),
                )
            )
    return records


async def test_hubspot_contacts_end_in_each_leads_last_stage(ready_topics: Settings) -> None:
    leads = 150  # more than one HubSpot batch (100)
    records = _walks(leads)
    await produce_changes(ready_topics, records)
    fake = HubspotFake(rate_per_10s=10_000)
    await fake.serve()
    destination = HubspotDestination(
        access_token=TOKEN,
        mapping=parse_mapping("").hubspot,
        api_url=fake.base_url,
        timeout=5.0,
    )
    policy = DeliveryPolicy(backoff=Backoff(initial_s=0.05, max_s=0.2), commit_interval_s=0.1)
    connector = Connector(ready_topics, destination, policy)
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(
            lambda: connector.report.delivered >= len(records) or task.done(), 60, "delivery"
        )
        assert not task.done(), "the connector stopped by itself"
    finally:
        connector.stop()
        await asyncio.wait_for(task, 30)
        await destination.aclose()
        await fake.close()

    report = connector.report
    assert report.delivered == len(records) and report.dead_lettered == 0
    for n in range(leads):
        contact = fake.contact("email", f"person{n}@example.com")
        assert contact is not None, n
        # HubSpot has no recycled stage: "lead", reached backwards from salesqualifiedlead,
        # which the fake (as HubSpot) ignores unless the stage was cleared first
        assert contact["lifecyclestage"] == "lead", (n, contact)
        assert contact["leadstream_stage"] == "recycled"
    batches = [orjson.loads(request["body"])["inputs"] for request in fake.requests]
    assert max(len(inputs) for inputs in batches) <= 100
    cleared = {
        i["id"] for inputs in batches for i in inputs if i["properties"].get("lifecyclestage") == ""
    }
    assert len(cleared) == leads  # every lead's backwards move took the clear-then-set path
    assert await all_committed(ready_topics, connector.group_id)
