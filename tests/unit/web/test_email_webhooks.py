"""The Postmark, Brevo and Mailjet webhooks over HTTP: their credentials and their answers.

The HTTP layer runs for real (aiohttp's test server) with a sink that keeps the records; the
bodies are the vendors' documented payloads (tests/fixtures/<vendor>/). The SES webhook is
tested in test_sns.py, next to its signature checks.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from collector_http import ListSink, collector_app
from factories import make_settings
from pydantic import SecretStr

from stream import logmask
from stream.web.auth import AuthFailure, MemoryReplayGuard, Refusal, check_webhook_credentials
from stream.web.collector import Collector, _warn_about_configuration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PASSWORDS = {
    "postmark": "pm-unit-password-1",
    "brevo": "brevo-unit-password-1",
    "mailjet": "mj-unit-password-1",
}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def body(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


@dataclass
class Served:
    server: TestServer
    session: ClientSession
    sink: ListSink

    async def post(
        self, vendor: str, data: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        url = str(self.server.make_url(f"/webhooks/{vendor}"))
        async with self.session.post(url, data=data, headers=headers or {}) as response:
            return response.status, await response.json(), dict(response.headers)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(record.value) for record in self.sink.records]


@pytest.fixture
async def make_served() -> AsyncIterator[Callable[..., Any]]:
    started: list[Served] = []

    async def start(**overrides: Any) -> Served:
        options: dict[str, Any] = {
            f"{vendor}_webhook_password": SecretStr(password)
            for vendor, password in PASSWORDS.items()
        }
        settings = make_settings(**{"auth_tokens": [], **options, **overrides})
        sink = ListSink()
        collector = Collector(settings, sink, replays=MemoryReplayGuard())
        app = collector_app(collector)
        server = TestServer(app)
        await server.start_server()
        served = Served(server, ClientSession(), sink)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.session.close()
        await served.server.close()


@pytest.fixture
async def served(make_served: Callable[..., Any]) -> Served:
    one: Served = await make_served()
    return one


# ----------------------------------------------------------------------------- credentials


def test_webhook_credentials() -> None:
    good = basic("postmark", "pw-1")["Authorization"]
    check_webhook_credentials(good, user="postmark", password="pw-1")
    check_webhook_credentials("Bearer pw-1", user="brevo", password="pw-1", bearer=True)
    cases = [
        (None, False, AuthFailure.MISSING_CREDENTIALS),
        ("Basic", False, AuthFailure.MISSING_CREDENTIALS),
        ("Basic !!!", False, AuthFailure.MISSING_CREDENTIALS),
        ("Bearer pw-1", False, AuthFailure.MISSING_CREDENTIALS),  # not for this vendor
        ("Bearer pw-2", True, AuthFailure.WRONG_SECRET),
        (basic("postmark", "pw-2")["Authorization"], False, AuthFailure.WRONG_SECRET),
        (basic("other", "pw-1")["Authorization"], False, AuthFailure.WRONG_SECRET),
        (basic("postmark", "")["Authorization"], False, AuthFailure.WRONG_SECRET),
    ]
    for header, bearer, failure in cases:
        with pytest.raises(Refusal, check=lambda exc, f=failure: exc.failure is f):
            check_webhook_credentials(header, user="postmark", password="pw-1", bearer=bearer)


@pytest.mark.parametrize("vendor", sorted(PASSWORDS))
async def test_each_webhook_needs_its_credentials(served: Served, vendor: str) -> None:
    data = body(
        {
            "postmark": "postmark/delivery.json",
            "brevo": "brevo/delivered.json",
            "mailjet": "mailjet/sent.json",
        }[vendor]
    )
    status, answer, headers = await served.post(vendor, data)
    assert (status, answer["error"]) == (401, "missing_credentials")
    assert headers["WWW-Authenticate"].startswith("Basic ")
    status, answer, headers = await served.post(vendor, data, basic(vendor, "wrong"))
    assert (status, answer["error"]) == (401, "wrong_secret")
    other = next(v for v in PASSWORDS if v != vendor)  # another vendor's credentials
    status, answer, _ = await served.post(vendor, data, basic(other, PASSWORDS[other]))
    assert status == 401
    assert served.sink.records == []
    status, answer, _ = await served.post(vendor, data, basic(vendor, PASSWORDS[vendor]))
    assert status == 202
    assert len(answer["accepted"]) == 1 and answer["rejected"] == []
    (record,) = served.sink.records
    assert record.topic == "leads.email.v1"
    assert served.events()[0]["source"] == vendor


async def test_brevo_accepts_its_bearer_token(served: Served) -> None:
    token = {"Authorization": f"Bearer {PASSWORDS['brevo']}"}
    status, answer, _ = await served.post("brevo", body("brevo/proxy_open.json"), token)
    assert status == 202
    (event,) = served.events()
    assert (event["type"], event["machine_open"], event["machine"]) == (
        "email_opened",
        True,
        "vendor flag: proxy_open",
    )
    status, answer, _ = await served.post(
        "brevo", body("brevo/click.json"), {"Authorization": "Bearer x"}
    )
    assert (status, answer["error"]) == (401, "wrong_secret")


async def test_unconfigured_webhooks_are_refused_unless_auth_is_disabled(
    make_served: Callable[..., Any],
) -> None:
    nothing = {f"{vendor}_webhook_password": None for vendor in PASSWORDS}
    unconfigured: Served = await make_served(**nothing)
    for vendor in PASSWORDS:
        status, answer, _ = await unconfigured.post(vendor, b"{}", basic(vendor, "x"))
        assert (status, answer["error"]) == (401, "auth_not_configured")
        assert f"LEADSTREAM_{vendor.upper()}_WEBHOOK_PASSWORD" in answer["detail"]
    development: Served = await make_served(auth_disabled=True, **nothing)
    status, answer, _ = await development.post("mailjet", body("mailjet/grouped-sent.json"))
    assert status == 202 and len(answer["accepted"]) == 2


# ----------------------------------------------------------------------------- answers


async def test_mailjet_grouped_events_and_what_is_rejected(served: Served) -> None:
    auth = basic("mailjet", PASSWORDS["mailjet"])
    grouped = orjson.dumps(
        [
            orjson.loads(body("mailjet/open.json")),
            orjson.loads(body("mailjet/blocked.json")),
            orjson.loads(body("mailjet/click.json")),
        ]
    )
    status, answer, _ = await served.post("mailjet", grouped, auth)
    assert status == 202
    assert len(answer["accepted"]) == 2
    assert answer["rejected"] == [
        {
            "where": "[1]",
            "kind": "blocked",
            "reason": "Mailjet blocked the message, not sent (user unknown)",
        }
    ]
    assert [event["type"] for event in served.events()] == ["email_opened", "email_clicked"]
    status, answer, _ = await served.post("mailjet", body("mailjet/bounce.doc-verbatim.txt"), auth)
    assert (status, answer["error"]) == (400, "not_json")


async def test_postmark_events_and_reports(served: Served) -> None:
    auth = basic("postmark", PASSWORDS["postmark"])
    status, answer, _ = await served.post("postmark", body("postmark/bounce.json"), auth)
    assert (status, answer["accepted"]) == (202, ["postmark:bounce-4323372036854775807"])
    status, answer, _ = await served.post(
        "postmark", body("postmark/subscription-change.json"), auth
    )
    assert status == 202 and answer["accepted"] == []
    assert answer["rejected"][0]["kind"] == "SubscriptionChange"
    (event,) = served.events()
    assert (event["type"], event["bounce"]) == ("email_bounced", "hard")


async def test_machine_ranges_setting_reaches_the_adapters(make_served: Callable[..., Any]) -> None:
    served: Served = await make_served(machine_ip_ranges=["Acme gateway=188.2.95.0/24"])
    auth = basic("postmark", PASSWORDS["postmark"])
    status, _, _ = await served.post("postmark", body("postmark/open.json"), auth)
    assert status == 202
    assert served.events()[0]["machine"] == "address of Acme gateway"


# ----------------------------------------------------------------------------- secrets


def test_webhook_passwords_are_masked_in_logs() -> None:
    settings = make_settings(
        postmark_webhook_password=SecretStr("pm-secret-1"),
        brevo_webhook_password=SecretStr("brevo-secret-1"),
        mailjet_webhook_password=SecretStr("mj-secret-1"),
    )
    assert sorted(logmask.settings_secrets(settings)) == [
        "brevo-secret-1",
        "mj-secret-1",
        "pm-secret-1",
    ]
    assert "***" in logmask.mask("Authorization: Basic cG9zdG1hcms6cG0tc2VjcmV0LTE=")


def test_unconfigured_email_webhooks_are_named_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(web_enabled=True, webhook_replay_store="memory")
    collector = Collector(settings, ListSink(), replays=MemoryReplayGuard())
    with caplog.at_level(logging.INFO, logger="stream.web.collector"):
        _warn_about_configuration(settings, collector)
    for setting in (
        "POSTMARK_WEBHOOK_PASSWORD",
        "SES_SNS_TOPIC_ARNS",
        "BREVO_WEBHOOK_PASSWORD",
        "MAILJET_WEBHOOK_PASSWORD",
    ):
        assert any(f"LEADSTREAM_{setting} is not set" in message for message in caplog.messages)
