"""Account metrics on a real worker's `/metrics`: member messages sent and applied, the accounts
the worker holds and the account stage changes it published."""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import Traits
from schemas.examples import make_event

pytestmark = pytest.mark.integration


def _samples(worker: Any) -> dict[str, float]:
    """`/metrics` as {series with its labels: value}."""
    with urllib.request.urlopen(worker.base + "/metrics", timeout=10) as answer:
        body = answer.read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def _sum(samples: dict[str, float], prefix: str) -> float:
    return sum(value for series, value in samples.items() if series.startswith(prefix))


async def test_two_people_at_one_company_show_as_account_metrics(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    """Two people at one company roll up to its account: the member messages their leads sent
    and the account applied, the account the worker holds, and the account's first stage
    change, published by the worker and read back by its projector."""
    account = f"metrics-{unique}.com"  # a reserved name (.example) would name no company
    now = datetime.now(UTC)
    await produce_events(
        served_worker.settings,
        [
            make_event(
                "profile_updated",
                event_id=f"{unique}-{n}",
                occurred_at=now - timedelta(minutes=5),
                traits=Traits(email=f"{name}@{account}", company_size=400, job_title=title),
                lead_id=f"{name}-{unique}",
                anonymous_id=None,
            )
            for n, (name, title) in enumerate((("cto", "CTO"), ("dev", "Software Engineer")))
        ],
    )
    sent = 'leadstream_account_member_messages_total{kind="update",side="sent"}'
    applied = 'leadstream_account_member_messages_total{kind="update",side="applied"}'
    first_stage = 'leadstream_account_stage_changes_total{from_stage="none",'
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        samples = _samples(served_worker)
        seen = (samples.get(sent, 0.0), samples.get(applied, 0.0), _sum(samples, first_stage))
        if seen[0] >= 2 and seen[1] >= 2 and seen[2] >= 1:
            break
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.5)
    assert samples['leadstream_table_keys{table="accounts"}'] == 1
    assert _sum(samples, 'leadstream_account_member_messages_total{kind="leave"') == 0
