"""``GET /leads/{id}`` on a real worker: the live score, its explanation and the auth rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession

from schemas.events import Traits
from schemas.examples import make_event
from stream.bench.data import keys_per_partition

pytestmark = pytest.mark.integration


async def _produce(produce_events: Any, worker: Any, lead_id: str) -> None:
    now = datetime.now(UTC)
    events = [
        make_event(
            "profile_updated",
            event_id=f"{lead_id}-p",
            lead_id=lead_id,
            anonymous_id=None,
            occurred_at=now - timedelta(minutes=5),
            traits=Traits(industry="software", company_size=400, job_title="CTO", age=41),
        ),
        make_event(
            "webinar_attended",
            event_id=f"{lead_id}-w",
            lead_id=lead_id,
            anonymous_id=None,
            occurred_at=now - timedelta(minutes=4),
        ),
        make_event(
            "demo_requested",
            event_id=f"{lead_id}-d",
            lead_id=lead_id,
            anonymous_id=None,
            occurred_at=now - timedelta(minutes=3),
        ),
    ]
    await produce_events(worker.settings, events)


async def test_a_lead_is_explained_live_by_its_owner(
    served_worker: Any, unique: str, produce_events: Any
) -> None:
    lead_id = f"lead-{unique}"
    await _produce(produce_events, served_worker, lead_id)
    auth = {"Authorization": f"Bearer {served_worker.token}"}
    url = f"{served_worker.base}/leads/{lead_id}"
    async with ClientSession() as http:
        body: dict[str, Any] = {}
        for _ in range(120):
            async with http.get(url, headers=auth) as answer:
                if answer.status == 200:
                    body = await answer.json()
                    if body["models"] and body["models"][0]["stage"] == "sql":
                        break
            await asyncio.sleep(0.5)
        assert body.get("lead_id") == lead_id, body
        b2b = next(m for m in body["models"] if m["model"] == "b2b")
        assert b2b["stage"] == "sql"
        assert b2b["fit"] == 5 + 3 + 2 + 16  # industry, size, title, age 41 (+1 per year > 25)
        rules = {rule["rule_id"]: rule for rule in b2b["rules"]}
        assert {"webinar", "demo_request", "target_industry", "age"} <= set(rules)
        assert 0 < rules["webinar"]["points"] <= 10  # decayed to the moment of the request
        assert [(h["from_stage"], h["to_stage"]) for h in b2b["history"]][-1][1] == "sql"
        assert {m["model"] for m in body["models"]} == {"b2b", "consumer"}
        assert body["account_id"] is None  # no email, no account id: no account

        async with http.get(url) as answer:
            assert answer.status == 401
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(url, headers={"Authorization": "Bearer wrong"}) as answer:
            assert answer.status == 403
        async with http.get(f"{served_worker.base}/leads/nobody-{unique}", headers=auth) as answer:
            assert answer.status == 404
            assert (await answer.json())["error"] == "unknown_lead"


async def test_any_worker_answers_for_every_lead_through_the_advertised_urls(
    worker_launcher: Any, unique: str, produce_events: Any, tmp_path: Any
) -> None:
    """Two workers listening on every interface (as in a container), each advertising its own
    address (LEADSTREAM_ADVERTISED_URL): a lead's request reaching the worker that does not own
    it is forwarded to the owner, so both answer for every lead."""
    first = worker_launcher()
    second = worker_launcher()
    # the same group and topics as the first; its own port and data directory
    for key in ("LEADSTREAM_APP_ID", "LEADSTREAM_TOPIC_PREFIX", "LEADSTREAM_AUTH_TOKENS"):
        second.env[key] = first.env[key]
    second.env["LEADSTREAM_DATA_DIR"] = str(tmp_path / "second")
    second.settings, second.token = first.settings, first.token
    for worker in (first, second):
        worker.env["LEADSTREAM_WEB_HOST"] = "0.0.0.0"
        worker.env["LEADSTREAM_ADVERTISED_URL"] = worker.base
    first.start()
    second.start()
    leads = keys_per_partition(f"lead-{unique}-", first.settings.topic_partitions)
    for lead_id in leads:
        await _produce(produce_events, first, lead_id)
    auth = {"Authorization": f"Bearer {first.token}"}
    async with ClientSession() as http:
        answered: dict[tuple[str, str], str] = {}
        for _ in range(120):
            for worker in (first, second):
                for lead_id in leads:
                    if (worker.base, lead_id) in answered:
                        continue
                    async with http.get(f"{worker.base}/leads/{lead_id}", headers=auth) as answer:
                        if answer.status == 200:
                            body = await answer.json()
                            if body["models"] and body["models"][0]["stage"] == "sql":
                                answered[worker.base, lead_id] = body["lead_id"]
            if len(answered) == 2 * len(leads):
                break
            await asyncio.sleep(0.5)
    missing = {(w.base, lead) for w in (first, second) for lead in leads} - set(answered)
    assert not missing, f"not answered: {sorted(missing)}"
    assert all(key[1] == lead_id for key, lead_id in answered.items())
    # every partition holds one of the leads and both workers scored some: each worker owned
    # partitions, so half the answers above were forwarded
    for worker in (first, second):
        async with ClientSession() as http, http.get(f"{worker.base}/metrics") as answer:
            text = await answer.text()
        scored = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("leadstream_events_in_total")
        )
        assert scored > 0, worker.base
