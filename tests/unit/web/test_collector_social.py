"""The collector's Customer.io, RudderStack, LinkedIn Lead Gen Forms and Meta Lead Ads endpoints,
in process: real HTTP (aiohttp's test server) into a sink that keeps the records, on the vendor
payloads of tests/fixtures; the lead APIs are local servers (tests/unit/web/lead_api_servers.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from collector_http import ListSink, Served, serve
from factories import make_settings
from pydantic import SecretStr

from stream import logmask
from stream.web.auth import MemoryReplayGuard
from stream.web.collector import (
    Collector,
    _warn_about_configuration,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CIO_KEY = "cio-unit-signing-key"
RUDDER_TOKEN = "rudder-unit-token-0123"
LI_SECRET = "li-unit-client-secret"
META_SECRET = "meta-unit-app-secret"  # the app secret the Meta stand-in expects
META_VERIFY = "meta-unit-verify-token"
LEAD_ID = "249592fc-d272-44ba-a7db-c2bdce579507-6"


def _hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


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
        served = await serve(collector, sink)
        servers.append(served)
        return served

    yield start
    for served in servers:
        await served.close()


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


# ----------------------------------------------------------------------------- LinkedIn


@pytest.fixture
async def linkedin_served(make_served: Callable[..., Any], linkedin_api: Any) -> Served:
    served: Served = await make_served(
        linkedin_client_secret=SecretStr(LI_SECRET),
        linkedin_access_token=SecretStr("li-unit-access-token"),
        linkedin_api_url=linkedin_api.base_url,
        linkedin_api_version="202601",
    )
    return served


def _li_notification(**overrides: Any) -> bytes:
    """A lead notification with the fields LinkedIn documents, naming the documented lead."""
    lead = orjson.loads(
        (FIXTURES / "linkedin/lead-sync-collection.lead-form-response.json").read_bytes()
    )
    return orjson.dumps(
        {
            "type": "LEAD_ACTION",
            "leadGenFormResponse": f"urn:li:leadGenFormResponse:{lead['id']}",
            "leadGenForm": lead["versionedLeadGenFormUrn"],
            "owner": lead["owner"],
            "associatedEntity": {"sponsoredCreative": "urn:li:sponsoredCreative:241257736"},
            "leadType": "SPONSORED",
            "leadAction": "CREATED",
            "occurredAt": 1689894600000,
            **overrides,
        }
    )


def _li_headers(body: bytes, secret: str = LI_SECRET) -> dict[str, str]:
    signature = _hmac(secret, b"hmacsha256=" + body)
    return {"X-LI-Signature": signature, "Content-Type": "application/json"}


async def test_linkedin_url_validation(linkedin_served: Served) -> None:
    code = "890e4665-4dfe-4ab1-b689-ed553bceeed0"
    url = linkedin_served.url("/webhooks/linkedin")
    async with linkedin_served.session.get(url, params={"challengeCode": code}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
        assert await r.json() == {
            "challengeCode": code,
            "challengeResponse": _hmac(LI_SECRET, code.encode()),
        }
    async with linkedin_served.session.get(url) as r:
        assert (r.status, (await r.json())["error"]) == (400, "invalid_call")


async def test_linkedin_notification_reads_the_lead_and_writes_two_events(
    linkedin_served: Served, linkedin_api: Any
) -> None:
    body = _li_notification()
    status, answer = await _post(linkedin_served, "/webhooks/linkedin", body, _li_headers(body))
    assert (status, answer) == (
        202,
        {"accepted": [f"linkedin:{LEAD_ID}", f"linkedin:{LEAD_ID}/profile"], "rejected": []},
    )
    assert [r["path"] for r in linkedin_api.requests] == [
        f"/rest/leadFormResponses/{LEAD_ID}",
        "/rest/leadForms/7234246",
    ]
    social, profile = linkedin_served.sink.records
    assert (social.topic, social.key) == ("leads.social.v1", b"email:kevjohonson@email.com")
    assert (profile.topic, profile.key) == ("leads.profiles.v1", b"email:kevjohonson@email.com")
    submitted = orjson.loads(social.value)
    assert submitted["type"] == "social_form_submitted"
    assert submitted["form_id"] == "urn:li:leadGenForm:7234246"
    assert submitted["machine"] == "vendor flag: testLead"  # LinkedIn's example is a test lead
    # a deletion, and a notification of another kind, are answered with the reason
    deleted = _li_notification(leadAction="DELETED")
    status, answer = await _post(
        linkedin_served, "/webhooks/linkedin", deleted, _li_headers(deleted)
    )
    assert status == 202 and answer["accepted"] == []
    assert answer["rejected"][0]["reason"] == "the member deleted the lead: nothing to score"
    assert len(linkedin_api.requests) == 2


async def test_linkedin_refusals_and_a_lead_that_cannot_be_read(
    linkedin_served: Served, linkedin_api: Any, make_served: Callable[..., Any]
) -> None:
    url = "/webhooks/linkedin"
    body = _li_notification()
    for headers, error in (
        ({}, "missing_signature"),
        (_li_headers(body, secret="other"), "invalid_signature"),
        (_li_headers(body + b" "), "invalid_signature"),
    ):
        status, answer = await _post(linkedin_served, url, body, headers)
        assert (status, answer["error"]) == (401, error)
    assert linkedin_api.requests == []  # nothing is fetched for a refused notification
    # LinkedIn's API fails: 503, nothing written, and the same delivery goes through later
    linkedin_api.fail_with = 500
    status, answer = await _post(linkedin_served, url, body, _li_headers(body))
    assert (status, answer["error"]) == (503, "unavailable")
    assert "LinkedIn" in answer["detail"] and linkedin_served.sink.records == []
    linkedin_api.fail_with = None
    status, answer = await _post(linkedin_served, url, body, _li_headers(body))
    assert status == 202 and len(answer["accepted"]) == 2
    # a lead the API does not know is not accepted and lost either
    unknown = _li_notification(leadGenFormResponse="urn:li:leadGenFormResponse:gone-1")
    status, _ = await _post(linkedin_served, url, unknown, _li_headers(unknown))
    assert status == 503
    # no access token: 503 as well (the notification is kept by LinkedIn's retries)
    no_token: Served = await make_served(
        linkedin_client_secret=SecretStr(LI_SECRET), linkedin_api_url=linkedin_api.base_url
    )
    status, answer = await _post(no_token, url, body, _li_headers(body))
    assert (status, answer["error"]) == (503, "unavailable")
    unconfigured: Served = await make_served()
    status, answer = await _post(unconfigured, url, body, _li_headers(body))
    assert (status, answer["error"]) == (401, "auth_not_configured")
    async with unconfigured.session.get(unconfigured.url(url), params={"challengeCode": "c"}) as r:
        assert (r.status, (await r.json())["error"]) == (401, "auth_not_configured")


# ----------------------------------------------------------------------------- Meta


@pytest.fixture
async def meta_served(make_served: Callable[..., Any], meta_api: Any) -> Served:
    served: Served = await make_served(
        meta_app_secret=SecretStr(META_SECRET),
        meta_verify_token=SecretStr(META_VERIFY),
        meta_access_token=SecretStr("meta-unit-page-token"),
        meta_graph_url=meta_api.base_url,
        meta_graph_version="v25.0",
    )
    return served


def _meta_headers(body: bytes, secret: str = META_SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + _hmac(secret, body)}


async def test_meta_verification_request(meta_served: Served) -> None:
    url = meta_served.url("/webhooks/meta")
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": ""}
    async with meta_served.session.get(
        url, params={**params, "hub.verify_token": META_VERIFY}
    ) as r:
        assert r.status == 200 and await r.text() == "1158201444"
        assert r.headers["Content-Type"].startswith("text/plain")
    async with meta_served.session.get(url, params={**params, "hub.verify_token": "no"}) as r:
        assert (r.status, (await r.json())["error"]) == (401, "wrong_secret")


async def test_meta_notification_reads_every_lead(meta_served: Served, meta_api: Any) -> None:
    body = (FIXTURES / "meta/developers-docs.webhooks-for-leadgen.notification.json").read_bytes()
    status, answer = await _post(meta_served, "/webhooks/meta", body, _meta_headers(body))
    assert status == 202 and answer["rejected"] == []
    assert answer["accepted"] == [
        "meta:123123123123",
        "meta:123123123123/profile",
        "meta:123123123124",
        "meta:123123123124/profile",
    ]
    assert sorted(r["path"] for r in meta_api.requests) == [
        "/v25.0/123123123123",
        "/v25.0/123123123124",
    ]
    topics = [r.topic for r in meta_served.sink.records]
    assert topics == ["leads.social.v1", "leads.profiles.v1"] * 2
    # the Lead Ads Testing Tool's notification (string ids, no ad)
    test = (FIXTURES / "meta/fbsamples.test-lead-notification.json").read_bytes()
    status, answer = await _post(meta_served, "/webhooks/meta", test, _meta_headers(test))
    assert (status, answer["accepted"]) == (
        202,
        ["meta:233370042045345", "meta:233370042045345/profile"],
    )
    submitted = meta_served.events()[-2]
    assert (submitted["form_id"], submitted["account_id"]) == ("172036835026334", "138124712925158")


async def test_meta_refusals_and_a_lead_that_cannot_be_read(
    meta_served: Served, meta_api: Any, make_served: Callable[..., Any]
) -> None:
    url = "/webhooks/meta"
    body = (FIXTURES / "meta/fbsamples.test-lead-notification.json").read_bytes()
    for headers, error in (
        ({}, "missing_signature"),
        (_meta_headers(body, secret="other"), "invalid_signature"),
        ({"X-Hub-Signature-256": _hmac(META_SECRET, body)}, "invalid_signature"),
    ):
        status, answer = await _post(meta_served, url, body, headers)
        assert (status, answer["error"]) == (401, error)
    assert meta_api.requests == []
    meta_api.fail_with = 500
    status, answer = await _post(meta_served, url, body, _meta_headers(body))
    assert (status, answer["error"]) == (503, "unavailable")
    assert meta_served.sink.records == []
    meta_api.fail_with = None
    # one lead of a batch cannot be read: nothing of the batch is written, Meta delivers it again
    docs = orjson.loads(
        (FIXTURES / "meta/developers-docs.webhooks-for-leadgen.notification.json").read_bytes()
    )
    docs["entry"][0]["changes"][1]["value"]["leadgen_id"] = 999
    batch = orjson.dumps(docs)
    status, _ = await _post(meta_served, url, batch, _meta_headers(batch))
    assert status == 503 and meta_served.sink.records == []
    # a change that is not a lead is answered with the reason
    feed = orjson.dumps(
        {"object": "page", "entry": [{"id": "1", "changes": [{"field": "feed", "value": {}}]}]}
    )
    status, answer = await _post(meta_served, url, feed, _meta_headers(feed))
    assert (status, answer["accepted"]) == (202, [])
    assert answer["rejected"][0]["reason"] == "not a leadgen change"
    unconfigured: Served = await make_served()
    status, answer = await _post(unconfigured, url, body, _meta_headers(body))
    assert (status, answer["error"]) == (401, "auth_not_configured")
    open_served: Served = await make_served(auth_disabled=True)  # development only
    params = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "any"}
    async with open_served.session.get(open_served.url(url), params=params) as r:
        assert (r.status, await r.text()) == (200, "42")
    async with unconfigured.session.get(
        unconfigured.url(url), params={"hub.mode": "subscribe", "hub.challenge": "1"}
    ) as r:
        assert (r.status, (await r.json())["error"]) == (401, "auth_not_configured")


def test_a_lead_webhook_without_an_access_token_is_reported_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        web_enabled=True,
        linkedin_client_secret=SecretStr(LI_SECRET),
        meta_app_secret=SecretStr(META_SECRET),
        meta_access_token=SecretStr("meta-token"),
    )
    collector = Collector(settings, ListSink(), replays=MemoryReplayGuard())
    with caplog.at_level(logging.WARNING, logger="stream.web.collector"):
        _warn_about_configuration(settings, collector)
    warned = [m for m in caplog.messages if "ACCESS_TOKEN" in m]
    assert len(warned) == 1 and "LEADSTREAM_LINKEDIN_ACCESS_TOKEN is not set" in warned[0]


def test_the_social_webhook_secrets_are_masked_in_logs() -> None:
    secrets = {
        "customerio_signing_key": "cio-secret-key",
        "rudderstack_token": "rudder-secret-token",
        "linkedin_client_secret": "li-client-secret",
        "linkedin_access_token": "li-access-token",
        "meta_app_secret": "meta-app-secret",
        "meta_verify_token": "meta-verify-token",
        "meta_access_token": "meta-access-token",
    }
    settings = make_settings(**{name: SecretStr(value) for name, value in secrets.items()})
    assert set(secrets.values()) <= set(logmask.settings_secrets(settings))
