"""The Customer.io, RudderStack, LinkedIn and Meta endpoints in a real worker process: vendor
payloads (tests/fixtures) over HTTP in, events on the real broker's source topics.

One worker serves the module; LinkedIn's and Meta's lead APIs are small local servers (on ports
chosen before the worker starts, whose environment points at them) that answer each lead read
with the vendor's documented answer, after checking the token and the documented path.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from webworker import WebWorker, free_port, read_topic, web_worker, with_ids

from stream.kafka import topics

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CIO_KEY = "cio-it-" + uuid.uuid4().hex
RUDDER_TOKEN = "rudder-it-" + uuid.uuid4().hex
LI_SECRET = "li-it-" + uuid.uuid4().hex
LI_TOKEN = "li-token-it-" + uuid.uuid4().hex
META_SECRET = "meta-it-" + uuid.uuid4().hex
META_TOKEN = "meta-token-it-" + uuid.uuid4().hex


def _hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _fixture(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


@dataclass
class Worker(WebWorker):
    linkedin_port: int
    meta_port: int


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    linkedin_port, meta_port = free_port(), free_port()
    env = {
        "LEADSTREAM_CUSTOMERIO_SIGNING_KEY": CIO_KEY,
        "LEADSTREAM_RUDDERSTACK_TOKEN": RUDDER_TOKEN,
        "LEADSTREAM_LINKEDIN_CLIENT_SECRET": LI_SECRET,
        "LEADSTREAM_LINKEDIN_ACCESS_TOKEN": LI_TOKEN,
        "LEADSTREAM_LINKEDIN_API_URL": f"http://127.0.0.1:{linkedin_port}/rest",
        "LEADSTREAM_META_APP_SECRET": META_SECRET,
        "LEADSTREAM_META_VERIFY_TOKEN": "meta-verify-it",
        "LEADSTREAM_META_ACCESS_TOKEN": META_TOKEN,
        "LEADSTREAM_META_GRAPH_URL": f"http://127.0.0.1:{meta_port}",
    }
    tmp = tmp_path_factory.mktemp("collector-social")
    with web_worker(kafka_bootstrap, redis_url, tmp, env) as served:
        yield Worker(served.settings, served.base_url, served.log, linkedin_port, meta_port)


@asynccontextmanager
async def _serving(port: int, routes: list[web.RouteDef]) -> AsyncIterator[None]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


_read = read_topic
_with_ids = with_ids


async def _post(
    worker: Worker, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.post(worker.url(path), data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_customerio_and_rudderstack_events_reach_their_topics(worker: Worker) -> None:
    clicked = _fixture("customerio/rudder-transformer.email-clicked.json")
    timestamp = str(int(time.time()))
    signature = _hmac(CIO_KEY, f"v0:{timestamp}:".encode() + clicked)
    status, answer = await _post(
        worker,
        "/webhooks/customerio",
        clicked,
        {"X-CIO-Timestamp": timestamp, "X-CIO-Signature": signature},
    )
    assert (status, answer["accepted"]) == (202, ["customerio:01E4C8BES5XT87ZWRJFTB35YJ3"])
    page = _fixture("rudderstack/webhook-destination.page.json")
    bearer = {"Authorization": f"Bearer {RUDDER_TOKEN}", "Content-Type": "application/json"}
    status, answer = await _post(worker, "/webhooks/rudderstack", page, bearer)
    page_id = "rudderstack:97114191-e2f2-42af-97db-14b358b1cfe1"
    assert (status, answer["accepted"]) == (202, [page_id])

    emails = await _read(worker, topics.EMAIL, _with_ids("customerio:01E4C8BES5XT87ZWRJFTB35YJ3"))
    ((key, value),) = [(k, v) for k, v in emails if v["source"] == "customerio"]
    assert (key, value["type"]) == (b"email:test@example.com", "email_clicked")
    clicks = await _read(worker, topics.CLICKSTREAM, _with_ids(page_id))
    ((key, value),) = [(k, v) for k, v in clicks if v["event_id"] == page_id]
    assert (key, value["type"]) == (b"user@domain.com", "page_viewed")


async def test_a_linkedin_lead_is_read_and_written(worker: Worker) -> None:
    lead = orjson.loads(_fixture("linkedin/lead-sync-collection.lead-form-response.json"))
    forms = orjson.loads(_fixture("linkedin/lead-sync-collection.lead-forms.json"))["elements"]
    reads: list[str] = []

    async def read(request: web.Request) -> web.Response:
        reads.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {LI_TOKEN}":
            return web.json_response({"status": 401, "message": "Invalid token"}, status=401)
        if request.match_info["kind"] == "leadFormResponses":
            return web.json_response(lead)
        (form,) = [f for f in forms if str(f["id"]) == request.match_info["id"]]
        return web.json_response(form)

    notification = orjson.dumps(
        {
            "type": "LEAD_ACTION",
            "leadGenFormResponse": f"urn:li:leadGenFormResponse:{lead['id']}",
            "leadGenForm": lead["versionedLeadGenFormUrn"],
            "owner": lead["owner"],
            "leadType": "SPONSORED",
            "leadAction": "CREATED",
            "occurredAt": 1689894600000,
        }
    )
    signature = _hmac(LI_SECRET, b"hmacsha256=" + notification)
    async with _serving(worker.linkedin_port, [web.get("/rest/{kind}/{id}", read)]):
        status, answer = await _post(
            worker, "/webhooks/linkedin", notification, {"X-LI-Signature": signature}
        )
    assert status == 202, answer
    social_id, profile_id = answer["accepted"]
    assert reads == [f"/rest/leadFormResponses/{lead['id']}", "/rest/leadForms/7234246"]

    socials = await _read(worker, topics.SOCIAL, _with_ids(social_id))
    ((key, value),) = [(k, v) for k, v in socials if v["event_id"] == social_id]
    assert key == b"email:kevjohonson@email.com"
    assert (value["type"], value["form_id"]) == (
        "social_form_submitted",
        "urn:li:leadGenForm:7234246",
    )
    profiles = await _read(worker, topics.PROFILES, _with_ids(profile_id))
    ((_, profile),) = [(k, v) for k, v in profiles if v["event_id"] == profile_id]
    assert profile["traits"]["job_title"] == "Senior Engineer"


async def test_a_meta_lead_is_read_and_an_unreadable_one_is_a_503(worker: Worker) -> None:
    lead = orjson.loads(_fixture("meta/developers-docs.retrieving.lead.json"))
    notification = _fixture("meta/fbsamples.test-lead-notification.json")
    headers = {"X-Hub-Signature-256": "sha256=" + _hmac(META_SECRET, notification)}

    async def read(request: web.Request) -> web.Response:
        if request.query.get("access_token") != META_TOKEN:
            error = {"message": "Invalid OAuth access token", "code": 190}
            return web.json_response({"error": error}, status=400)
        return web.json_response(lead)

    # the Graph API is down: nothing is written and Meta is asked to deliver again
    status, answer = await _post(worker, "/webhooks/meta", notification, headers)
    assert (status, answer["error"]) == (503, "unavailable")
    async with _serving(worker.meta_port, [web.get("/v25.0/{id}", read)]):
        status, answer = await _post(worker, "/webhooks/meta", notification, headers)
    assert (status, answer["accepted"]) == (
        202,
        ["meta:233370042045345", "meta:233370042045345/profile"],
    )
    socials = await _read(worker, topics.SOCIAL, _with_ids("meta:233370042045345"))
    ((key, value),) = [(k, v) for k, v in socials if v["event_id"] == "meta:233370042045345"]
    assert key == b"email:joe@example.com"
    assert (value["network"], value["form_id"]) == ("facebook", "172036835026334")
