"""The collector's Customer.io, RudderStack, LinkedIn Lead Gen Forms and Meta Lead Ads endpoints,
in process: real HTTP (aiohttp's test server) into a sink that keeps the records, on the vendor
payloads of tests/fixtures; the lead APIs are local servers (tests/unit/web/lead_api_servers.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from factories import make_settings
from pydantic import SecretStr

from stream import logmask
from stream.web.auth import MemoryReplayGuard
from stream.web.collector import Collector, Record, SinkUnavailable, routes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CIO_KEY = "cio-unit-signing-key"
RUDDER_TOKEN = "rudder-unit-token-0123"


def _hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


class ListSink:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False

    async def send(self, records: Sequence[Record]) -> None:
        if self.down:
            raise SinkUnavailable("Kafka is down (test)")
        self.records.extend(records)


def _aiohttp_app(collector: Collector) -> web.Application:
    app = web.Application()
    for path, methods in routes(collector).items():
        for method, handler in methods.items():

            async def call(request: web.Request, handler: Any = handler) -> web.StreamResponse:
                response: web.StreamResponse = await handler(request, **request.match_info)
                return response

            app.router.add_route(method.upper(), path, call)
    return app


class Served:
    def __init__(self, server: TestServer, session: ClientSession, sink: ListSink) -> None:
        self.server = server
        self.session = session
        self.sink = sink

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.sink.records]


@pytest.fixture
async def make_served() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Served] = []

    async def start(**overrides: Any) -> Served:
        options: dict[str, Any] = {
            "webhook_replay_store": "memory",
            "customerio_signing_key": SecretStr(CIO_KEY),
            "rudderstack_token": SecretStr(RUDDER_TOKEN),
        }
        settings = make_settings(**{**options, **overrides})
        sink = ListSink()
        collector = Collector(settings, sink, replays=MemoryReplayGuard())
        server = TestServer(_aiohttp_app(collector))
        await server.start_server()
        served = Served(server, ClientSession(), sink)
        servers.append(served)
        return served

    yield start
    for served in servers:
        await served.session.close()
        await served.server.close()


@pytest.fixture
async def served(make_served: Callable[..., Any]) -> Served:
    s: Served = await make_served()
    return s


async def _post(
    served: Served, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with served.session.post(served.url(path), data=body, headers=headers or {}) as r:
        return r.status, await r.json()


# ----------------------------------------------------------------------------- Customer.io


def _cio_headers(body: bytes, *, key: str = CIO_KEY, age: int = 0) -> dict[str, str]:
    timestamp = str(int(datetime.now(UTC).timestamp()) - age)
    return {
        "X-CIO-Timestamp": timestamp,
        "X-CIO-Signature": _hmac(key, f"v0:{timestamp}:".encode() + body),
        "Content-Type": "application/json",
    }


async def test_customerio_webhook(served: Served) -> None:
    clicked = (FIXTURES / "customerio/rudder-transformer.email-clicked.json").read_bytes()
    status, answer = await _post(served, "/webhooks/customerio", clicked, _cio_headers(clicked))
    assert (status, answer) == (
        202,
        {"accepted": ["customerio:01E4C8BES5XT87ZWRJFTB35YJ3"], "rejected": []},
    )
    (record,) = served.sink.records
    assert (record.topic, record.key) == ("leads.email.v1", b"email:test@example.com")
    # an event Leadstream has no type for is answered 202 with the reason, not dropped silently
    sms = (FIXTURES / "customerio/openapi-example.sms-sent.json").read_bytes()
    status, answer = await _post(served, "/webhooks/customerio", sms, _cio_headers(sms))
    assert status == 202 and answer["accepted"] == []
    assert answer["rejected"] == [
        {
            "where": "",
            "kind": "sms sent",
            "reason": "a 'sms' message: only email and person events are converted",
        }
    ]
    assert len(served.sink.records) == 1


async def test_customerio_webhook_refusals(served: Served) -> None:
    body = (FIXTURES / "customerio/openapi-example.email-sent.json").read_bytes()
    url = "/webhooks/customerio"
    cases = [
        ({}, "missing_signature"),
        (_cio_headers(body, key="wrong"), "invalid_signature"),
        (_cio_headers(body, age=3600), "stale_timestamp"),
        (_cio_headers(body + b" "), "invalid_signature"),
    ]
    for headers, error in cases:
        status, answer = await _post(served, url, body, headers)
        assert (status, answer["error"]) == (401, error)
    status, answer = await _post(served, url, b"{nope", _cio_headers(b"{nope"))
    assert (status, answer["error"]) == (400, "not_json")
    served.sink.down = True
    status, answer = await _post(served, url, body, _cio_headers(body))
    assert (status, answer["error"]) == (503, "unavailable")
    assert served.sink.records == []


async def test_customerio_webhook_without_a_key(make_served: Callable[..., Any]) -> None:
    served: Served = await make_served(customerio_signing_key=None)
    body = (FIXTURES / "customerio/openapi-example.email-sent.json").read_bytes()
    status, answer = await _post(served, "/webhooks/customerio", body, _cio_headers(body))
    assert (status, answer["error"]) == (401, "auth_not_configured")
    open_served: Served = await make_served(customerio_signing_key=None, auth_disabled=True)
    status, _ = await _post(open_served, "/webhooks/customerio", body)
    assert status == 202


# ----------------------------------------------------------------------------- RudderStack


async def test_rudderstack_webhook_destination_and_http_destination_batches(
    served: Served,
) -> None:
    url = "/webhooks/rudderstack"
    page = (FIXTURES / "rudderstack/webhook-destination.page.json").read_bytes()
    bearer = {"Authorization": f"Bearer {RUDDER_TOKEN}", "User-Agent": "RudderLabs"}
    status, answer = await _post(served, url, page, bearer)
    assert (status, answer) == (
        202,
        {"accepted": ["rudderstack:97114191-e2f2-42af-97db-14b358b1cfe1"], "rejected": []},
    )
    # the HTTP destination with batching on: a bare JSON array, Basic with the token as user
    basic = base64.b64encode(f"{RUDDER_TOKEN}:".encode()).decode()
    calls = orjson.loads((FIXTURES / "rudderstack/http-api.batch.json").read_bytes())["batch"]
    status, answer = await _post(
        served, url, orjson.dumps(calls), {"Authorization": f"Basic {basic}"}
    )
    assert status == 202 and len(answer["accepted"]) == 1
    assert [r["where"] for r in answer["rejected"]] == [f"batch[{i}]" for i in range(1, 6)]
    assert [r.topic for r in served.sink.records] == ["leads.clickstream.v1", "leads.profiles.v1"]
    assert served.events()[0]["source"] == "rudderstack"


async def test_rudderstack_refusals(make_served: Callable[..., Any]) -> None:
    served: Served = await make_served()
    url = "/webhooks/rudderstack"
    track = (FIXTURES / "rudderstack/webhook-destination.track.json").read_bytes()
    status, answer = await _post(served, url, track)
    assert (status, answer["error"]) == (401, "missing_token")
    status, answer = await _post(served, url, track, {"Authorization": "Bearer other"})
    assert (status, answer["error"]) == (401, "invalid_token")
    bearer = {"Authorization": f"Bearer {RUDDER_TOKEN}"}
    status, answer = await _post(served, url, b"[1, 2", bearer)
    assert (status, answer["error"]) == (400, "not_json")
    status, answer = await _post(served, url, track, bearer)  # an unmapped track event
    assert status == 202 and answer["accepted"] == []
    assert "no Leadstream event type" in answer["rejected"][0]["reason"]
    unconfigured: Served = await make_served(rudderstack_token=None)
    status, answer = await _post(unconfigured, url, track, bearer)
    assert (status, answer["error"]) == (401, "auth_not_configured")
    # the collector's own /v1 tokens are not RudderStack's
    other: Served = await make_served(auth_tokens=[SecretStr("tok-v1-0123456789")])
    status, answer = await _post(other, url, track, {"Authorization": "Bearer tok-v1-0123456789"})
    assert (status, answer["error"]) == (401, "invalid_token")
    assert served.sink.records == []


def test_the_social_webhook_secrets_are_masked_in_logs() -> None:
    settings = make_settings(
        customerio_signing_key=SecretStr("cio-secret-key"),
        rudderstack_token=SecretStr("rudder-secret-token"),
    )
    assert {"cio-secret-key", "rudder-secret-token"} <= set(logmask.settings_secrets(settings))
