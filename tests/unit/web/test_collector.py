"""The collector's request handling, in process: parsing, limits, answers.

The HTTP layer runs for real (aiohttp's test server) with a sink that keeps the records in a
list; tests/integration/web/test_collector.py does the same through a worker and the real broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import struct
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from collector_http import ListSink, Served, serve
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from factories import make_settings
from pydantic import SecretStr

from schemas import codec
from schemas.events import PageViewed
from stream.settings import Settings
from stream.web.auth import MemoryReplayGuard
from stream.web.collector import (
    COOKIE_NAME,
    PIXEL_GIF,
    Collector,
    anonymous_id_from_cookie,
    pixel_conversion,
    segment_call,
)
from stream.web.http import HttpError

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
TOKEN = "tok-unit-0123456789"
MAILGUN_KEY = "key-unit-mailgun"
MAILCHIMP_KEY = "mc-unit-path-key"


# ----------------------------------------------------------------------------- pure parts


def test_pixel_gif_is_a_transparent_1x1_gif89a() -> None:
    gif = PIXEL_GIF
    assert len(gif) == 43
    assert gif[:6] == b"GIF89a"
    assert struct.unpack("<HH", gif[6:10]) == (1, 1)
    assert gif[10] & 0x80  # a global colour table (2 colours)
    gce = gif.index(b"\x21\xf9\x04")  # graphic control extension
    flags, _delay, transparent_index = gif[gce + 3], gif[gce + 4 : gce + 6], gif[gce + 6]
    assert flags & 0x01 and transparent_index == 0  # colour 0 is transparent
    descriptor = gif.index(b",", gce)
    assert struct.unpack("<HHHH", gif[descriptor + 1 : descriptor + 9]) == (0, 0, 1, 1)
    assert gif.endswith(b";")


def _page(params: dict[str, str], **kwargs: Any) -> PageViewed:
    options: dict[str, Any] = {
        "anonymous_id": "aid-0123456789",
        "referer": None,
        "user_agent": "UA/1",
        "received_at": NOW,
    }
    result = pixel_conversion(params, **{**options, **kwargs})
    assert not result.rejected, result.rejected
    (event,) = result.events
    assert isinstance(event, PageViewed)
    return event


def test_pixel_page_view_from_parameters() -> None:
    event = _page(
        {
            "url": "https://acme.example/pricing?utm_source=google&utm_medium=cpc",
            "ref": "https://www.google.com/",
            "title": "Pricing | Acme",
            "sid": "sess-1",
            "eid": "hit-1",
        }
    )
    assert event.anonymous_id == "aid-0123456789"
    assert event.occurred_at == NOW
    assert event.source == "web"
    assert event.path == "/pricing"
    assert event.referrer == "https://www.google.com/"
    assert event.title == "Pricing | Acme"
    assert event.session_id == "sess-1"
    assert event.user_agent == "UA/1"
    assert event.utm is not None and event.utm.source == "google"
    # the same hit from the same visitor is the same event; another visitor's is not
    assert _page({"url": "https://x.example/", "eid": "hit-1"}).event_id == event.event_id
    other = _page({"url": "https://x.example/", "eid": "hit-1"}, anonymous_id="aid-other-123")
    assert other.event_id != event.event_id


def test_pixel_without_eid_gets_a_random_id_and_falls_back_to_the_referer() -> None:
    first = _page({}, referer="https://acme.example/blog")
    second = _page({}, referer="https://acme.example/blog")
    assert first.url == "https://acme.example/blog"
    assert first.event_id != second.event_id
    uuid.UUID(first.event_id)


def test_pixel_without_url_is_rejected_with_the_reason() -> None:
    result = pixel_conversion(
        {"title": "x"},
        anonymous_id="aid-0123456789",
        referer=None,
        user_agent=None,
        received_at=NOW,
    )
    assert not result.events
    assert "no page url" in result.rejected[0].reason


def test_pixel_reads_snowplow_parameters_with_the_cookie_as_network_user_id() -> None:
    result = pixel_conversion(
        {"e": "pv", "url": "https://acme.example/docs", "page": "Docs", "eid": "sp-1"},
        anonymous_id="aid-0123456789",
        referer=None,
        user_agent=None,
        received_at=NOW,
    )
    (event,) = result.events
    assert isinstance(event, PageViewed)
    assert (event.source, event.anonymous_id, event.event_id) == (
        "snowplow",
        "aid-0123456789",
        "snowplow:sp-1",
    )


def test_pixel_events_carry_the_machine_reason_snowplow_ones_too() -> None:
    options: dict[str, Any] = {
        "anonymous_id": "aid-0123456789",
        "referer": None,
        "user_agent": None,
        "received_at": NOW,
    }
    for params in ({"url": "https://acme.example/"}, {"e": "pv", "url": "https://acme.example/"}):
        (event,) = pixel_conversion(params, **options, machine="HEAD request").events
        assert event.machine == "HEAD request"
        (event,) = pixel_conversion(params, **options).events
        assert event.machine is None


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
        ("short", None),
        ("has space in it ok", None),
        ("x" * 65, None),
        (None, None),
    ],
)
def test_anonymous_id_from_cookie(cookie: str | None, expected: str | None) -> None:
    assert anonymous_id_from_cookie(cookie) == expected


def test_segment_call_takes_its_type_from_the_path() -> None:
    assert segment_call({"userId": "u"}, "track")["type"] == "track"
    assert segment_call({"type": "page", "userId": "u"}, "page")["type"] == "page"
    with pytest.raises(HttpError, match="'identify' call was sent to /v1/track"):
        segment_call({"type": "identify"}, "track")
    with pytest.raises(HttpError, match="not a JSON object"):
        segment_call([1], "track")


# ----------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def make_served() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Served] = []

    async def start(**overrides: Any) -> Served:
        options: dict[str, Any] = {
            "auth_tokens": [SecretStr(TOKEN)],
            "mailgun_signing_key": SecretStr(MAILGUN_KEY),
            "mailchimp_webhook_key": SecretStr(MAILCHIMP_KEY),
            "webhook_replay_store": "memory",
            "collector_max_call_bytes": 1024,
            "collector_max_webhook_bytes": 4096,
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


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_pixel_sets_the_cookie_and_reuses_it(served: Served) -> None:
    async with served.session.get(
        served.url("/collect/pixel.gif"), params={"url": "https://acme.example/", "eid": "h1"}
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/gif"
        assert "no-store" in response.headers["Cache-Control"]
        assert await response.read() == PIXEL_GIF
        cookie = response.cookies[COOKIE_NAME]
        assert cookie["samesite"] == "Lax" and int(cookie["max-age"]) > 300 * 86400
        assert not cookie["httponly"]
        aid = cookie.value
    async with served.session.get(
        served.url("/collect/pixel.gif"),
        params={"url": "https://acme.example/next"},
        headers={"Cookie": f"{COOKIE_NAME}={aid}"},
    ) as response:
        assert response.cookies[COOKIE_NAME].value == aid
    events = served.events()
    assert [e["anonymous_id"] for e in events] == [aid, aid]
    assert {r.topic for r in served.sink.records} == {"leads.clickstream.v1"}
    assert [r.key for r in served.sink.records] == [aid.encode(), aid.encode()]


async def test_pixel_answers_with_the_gif_even_when_it_makes_no_event(served: Served) -> None:
    async with served.session.get(served.url("/collect/pixel.gif")) as response:
        assert response.status == 200
        assert await response.read() == PIXEL_GIF
        assert "no page url" in response.headers["X-Leadstream-Rejected"]
    async with served.session.head(served.url("/collect/pixel.gif")) as response:
        assert response.status == 200
    assert served.sink.records == []


BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


async def test_pixel_keeps_head_prefetch_and_scanner_hits_marked_as_machines(
    served: Served,
) -> None:
    url = served.url("/collect/pixel.gif")
    params = {"url": "https://acme.example/pricing"}
    browser = {"User-Agent": BROWSER}
    async with served.session.get(url, params=params, headers=browser) as response:
        person = dict(response.headers)
    async with served.session.head(url, params=params, headers=browser) as response:
        assert response.status == 200
        assert await response.read() == b""
        head = dict(response.headers)
        assert COOKIE_NAME in response.cookies
    # HEAD answers what GET answers, without the body
    assert head["Content-Type"] == person["Content-Type"] == "image/gif"
    assert head["Cache-Control"] == person["Cache-Control"]
    assert head["Content-Length"] == person["Content-Length"] == str(len(PIXEL_GIF))
    for headers in (
        {**browser, "Sec-Purpose": "prefetch;prerender"},
        {**browser, "X-Moz": "prefetch"},
        {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"},
        {},  # aiohttp's own user agent
    ):
        async with served.session.get(url, params=params, headers=headers) as response:
            assert response.status == 200 and await response.read() == PIXEL_GIF
    async with served.session.get(url, params=params, skip_auto_headers=["User-Agent"]) as r:
        assert r.status == 200
    machines = [event.get("machine") for event in served.events()]
    assert machines == [
        None,
        "HEAD request",
        "prefetch request",
        "prefetch request",
        "user agent: Barracuda",
        "user agent: aiohttp",
        "no user agent",
    ]
    assert head["X-Leadstream-Event-Id"] == served.events()[1]["event_id"]


async def test_snippet(served: Served) -> None:
    async with served.session.get(served.url("/collect/leadstream.js")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/javascript")
        text = await response.text()
    assert "/collect/pixel.gif" in text and "eid" in text


async def test_segment_track_needs_a_token(served: Served) -> None:
    body = {"userId": "lead-1", "event": "Demo Requested", "messageId": "m-1"}
    url = served.url("/v1/track")
    async with served.session.post(url, json=body) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "missing_token"
    async with served.session.post(url, json=body, headers=_bearer("nope")) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "invalid_token"
    assert served.sink.records == []
    async with served.session.post(url, json=body, headers=_bearer()) as response:
        assert response.status == 202
        assert await response.json() == {"accepted": ["segment:m-1"], "rejected": []}
    (record,) = served.sink.records
    assert (record.topic, record.key) == ("leads.clickstream.v1", b"lead-1")
    assert codec.decode(record.value, now=None).type == "demo_requested"


async def test_segment_answers(served: Served) -> None:
    async def post(path: str, data: bytes) -> tuple[int, Any]:
        async with served.session.post(served.url(path), data=data, headers=_bearer()) as r:
            return r.status, await r.json()

    status, body = await post("/v1/track", b'{"userId": "u", "event": "Course Clicked"}')
    assert status == 202 and body["accepted"] == []
    assert "no Leadstream event type" in body["rejected"][0]["reason"]
    status, body = await post("/v1/page", b'{"userId": "u"}')
    assert (status, body["error"]) == (400, "invalid_call")
    assert "without a url" in body["detail"]
    status, body = await post("/v1/track", b'{"event": "Demo Requested"}')
    assert (status, body["error"]) == (400, "invalid_call")
    status, body = await post("/v1/track", b"{not json")
    assert (status, body["error"]) == (400, "not_json")
    status, body = await post("/v1/identify", b"[]")
    assert (status, body["error"]) == (400, "invalid_call")
    status, body = await post("/v1/identify", b'{"type": "track", "userId": "u"}')
    assert status == 400
    status, body = await post(
        "/v1/identify",
        orjson.dumps({"userId": "u", "messageId": "i-1", "traits": {"email": "a@b.example"}}),
    )
    assert (status, body["accepted"]) == (202, ["segment:i-1"])
    status, body = await post(
        "/v1/batch",
        orjson.dumps(
            {
                "batch": [
                    {
                        "type": "page",
                        "anonymousId": "a-1",
                        "messageId": "p-1",
                        "properties": {"url": "https://acme.example/"},
                    },
                    {"type": "alias", "userId": "u"},
                ]
            }
        ),
    )
    assert status == 202 and body["accepted"] == ["segment:p-1"]
    assert body["rejected"][0]["where"] == "batch[1]"
    assert [r.topic for r in served.sink.records] == ["leads.profiles.v1", "leads.clickstream.v1"]


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _fixture(relative: str) -> Any:
    """A vendor payload kept in tests/fixtures (sources in each folder's SOURCE.md)."""
    return orjson.loads((FIXTURES / relative).read_bytes())


async def test_a_call_without_message_id_gets_the_same_id_through_any_endpoint(
    served: Served,
) -> None:
    async def accepted(path: str, body: Any) -> list[str]:
        async with served.session.post(served.url(path), json=body, headers=_bearer()) as r:
            assert r.status == 202, await r.text()
            ids: list[str] = (await r.json())["accepted"]
            return ids

    # Segment's HTTP API examples: an identify for /v1/identify (no type, a writeKey in the
    # body), and a batch of identify and track calls (each with its type, the writeKey once)
    identify = _fixture("segment/http-api.identify.json")
    batch = _fixture("segment/http-api.batch.json")
    alone = await accepted("/v1/identify", identify)
    in_batch = {k: v for k, v in identify.items() if k != "writeKey"} | {"type": "identify"}
    assert await accepted("/v1/batch", {"batch": [in_batch], "writeKey": "k"}) == alone
    assert len(alone) == 1

    one_by_one = [
        await accepted("/v1/identify", {k: v for k, v in call.items() if k != "type"})
        for call in batch["batch"]
        if call["type"] == "identify"
    ]
    assert [ids for (ids,) in one_by_one] == await accepted("/v1/batch", batch)
    # the Email spec's key style names the type `action`: still the same call
    old_style = {k: v for k, v in in_batch.items() if k != "type"} | {"action": "identify"}
    assert await accepted("/v1/batch", {"batch": [old_style]}) == alone
    assert await accepted("/v1/identify", old_style) == alone


async def test_an_item_repeating_an_event_id_is_reported_and_not_written(
    make_served: Callable[..., Any],
) -> None:
    served: Served = await make_served(auth_disabled=True)
    # SendGrid's documented batch of every event gives each item the same sg_event_id
    batch = _fixture("sendgrid/event-webhook-all-events.json")
    async with served.session.post(served.url("/webhooks/sendgrid"), json=batch) as r:
        assert r.status == 202
        answer = await r.json()
    assert answer["accepted"] == ["sendgrid:sg_event_id"]  # the first item, processed
    (deferred,) = [r for r in answer["rejected"] if r["kind"] == "deferred"]
    assert deferred["where"] == "[1]"
    repeats = [r for r in answer["rejected"] if r["kind"] != "deferred"]
    assert [r["where"] for r in repeats] == [f"[{i}]" for i in range(2, len(batch))]
    assert [r["kind"] for r in repeats][:3] == ["email_delivered", "email_opened", "email_clicked"]
    for repeat in repeats:
        assert repeat["reason"].startswith(
            "repeats the event id 'sendgrid:sg_event_id' of the earlier item [0], "
            "different content: only the earlier one is written"
        )
    assert len(served.sink.records) == 1

    # the same Segment call twice in one batch: a duplicate, written once
    call = {k: v for k, v in _fixture("segment/http-api.identify.json").items() if k != "writeKey"}
    twice = {"batch": [{**call, "type": "identify"}] * 2}
    async with served.session.post(served.url("/v1/batch"), json=twice) as r:
        assert r.status == 202
        answer = await r.json()
    (event_id,) = answer["accepted"]
    assert answer["rejected"] == [
        {
            "where": "batch[1]",
            "kind": "identify",
            "reason": f"repeats the event id {event_id!r} of the earlier item batch[0], "
            "same content: a duplicate, written once",
        }
    ]
    assert len(served.sink.records) == 2


async def test_bodies_over_the_limit_are_refused(served: Served) -> None:
    big = orjson.dumps({"userId": "u", "event": "Demo Requested", "pad": "x" * 2000})
    async with served.session.post(served.url("/v1/track"), data=big, headers=_bearer()) as r:
        assert r.status == 413
        assert (await r.json())["error"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(10):
            yield b" " * 500

    async with served.session.post(served.url("/v1/track"), data=chunks(), headers=_bearer()) as r:
        assert r.status == 413
    assert served.sink.records == []


async def test_an_unavailable_broker_is_a_503_to_retry(served: Served) -> None:
    served.sink.down = True
    body = {"userId": "u", "event": "Demo Requested"}
    async with served.session.post(served.url("/v1/track"), json=body, headers=_bearer()) as r:
        assert r.status == 503
        assert (await r.json())["error"] == "unavailable"
    async with served.session.get(
        served.url("/collect/pixel.gif"), params={"url": "https://a.example/"}
    ) as r:
        assert r.status == 503 and await r.read() == PIXEL_GIF


async def test_without_configured_credentials_everything_protected_is_refused(
    make_served: Callable[..., Any],
) -> None:
    served: Served = await make_served(
        auth_tokens=[], mailgun_signing_key=None, mailchimp_webhook_key=None
    )
    for path in (
        "/v1/track",
        "/webhooks/sendgrid",
        "/webhooks/mailgun",
        "/webhooks/mailchimp/x",
    ):
        async with served.session.post(served.url(path), data=b"{}", headers=_bearer()) as r:
            assert r.status == 401, path
            assert (await r.json())["error"] == "auth_not_configured"
    # the pixel needs no credentials
    async with served.session.get(
        served.url("/collect/pixel.gif"), params={"url": "https://a.example/"}
    ) as r:
        assert r.status == 200


async def test_auth_disabled_accepts_unauthenticated_writes(
    make_served: Callable[..., Any],
) -> None:
    served: Served = await make_served(
        auth_tokens=[], auth_disabled=True, mailgun_signing_key=None, mailchimp_webhook_key=None
    )
    body = {"userId": "u", "event": "Demo Requested", "messageId": "m-9"}
    async with served.session.post(served.url("/v1/track"), json=body) as r:
        assert r.status == 202
    form = {"type": "subscribe", "data[email]": "ada@example.com", "data[list_id]": "l1"}
    async with served.session.post(served.url("/webhooks/mailchimp/any"), data=form) as r:
        assert r.status == 202
    assert len(served.sink.records) == 3


def _mailgun(token: str, timestamp: int, key: str = MAILGUN_KEY) -> dict[str, Any]:
    ts = str(timestamp)
    signature = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": ts, "token": token, "signature": signature},
        "event-data": {
            "event": "opened",
            "id": f"mg-{token}",
            "timestamp": timestamp,
            "recipient": "ada@example.com",
        },
    }


async def test_webhooks_judge_machine_opens_with_the_configured_ranges(
    make_served: Callable[..., Any],
) -> None:
    served: Served = await make_served(
        machine_ip_ranges="Acme gateway=203.0.113.0/24",
        auth_disabled=True,
        mailgun_signing_key=None,
    )
    documented = _fixture("sendgrid/event-webhook-all-events.json")
    (sendgrid_open,) = [item for item in documented if item["event"] == "open"]
    body = [{**sendgrid_open, "ip": "203.0.113.9"}]
    async with served.session.post(served.url("/webhooks/sendgrid"), json=body) as r:
        assert r.status == 202
    mailgun_open = {
        **_mailgun("t-ranges", int(datetime.now(UTC).timestamp()))["event-data"],
        "ip": "203.0.113.10",
        "client-info": {"user-agent": sendgrid_open["useragent"], "bot": ""},
    }
    async with served.session.post(served.url("/webhooks/mailgun"), json=mailgun_open) as r:
        assert r.status == 202
    assert [(e["source"], e["machine"]) for e in served.events()] == [
        ("sendgrid", "address of Acme gateway"),
        ("mailgun", "address of Acme gateway"),
    ]


async def test_mailgun_webhook(served: Served) -> None:
    now = int(datetime.now(UTC).timestamp())
    url = served.url("/webhooks/mailgun")
    async with served.session.post(url, json=_mailgun("t-1", now)) as r:
        assert r.status == 202
        assert len((await r.json())["accepted"]) == 1
    async with served.session.post(url, json=_mailgun("t-1", now)) as r:
        assert (r.status, (await r.json())["error"]) == (401, "replayed_token")
    async with served.session.post(url, json=_mailgun("t-2", now, key="wrong")) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_signature")
    async with served.session.post(url, json=_mailgun("t-3", now - 3600)) as r:
        assert (r.status, (await r.json())["error"]) == (401, "stale_timestamp")
    # a delivery that could not be written may be retried with the same token
    served.sink.down = True
    async with served.session.post(url, json=_mailgun("t-4", now)) as r:
        assert r.status == 503
    served.sink.down = False
    async with served.session.post(url, json=_mailgun("t-4", now)) as r:
        assert r.status == 202
    assert [r.topic for r in served.sink.records] == ["leads.email.v1"] * 2


async def test_sendgrid_webhook(make_served: Callable[..., Any]) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    served: Served = await make_served(sendgrid_public_key=SecretStr(public))
    now = str(int(datetime.now(UTC).timestamp()))
    body = orjson.dumps(
        [
            {
                "email": "ada@example.com",
                "event": "open",
                "sg_event_id": "sg-1",
                "timestamp": int(now),
            },
            {"email": "ada@example.com", "event": "deferred", "timestamp": int(now)},
        ]
    )
    sig = base64.b64encode(private.sign(now.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": sig,
        "X-Twilio-Email-Event-Webhook-Timestamp": now,
    }
    url = served.url("/webhooks/sendgrid")
    async with served.session.post(url, data=body, headers=headers) as r:
        assert r.status == 202
        answer = await r.json()
    assert answer["accepted"] == ["sendgrid:sg-1"] and answer["rejected"][0]["kind"] == "deferred"
    async with served.session.post(url, data=body + b" ", headers=headers) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_signature")
    async with served.session.post(url, data=body) as r:
        assert (r.status, (await r.json())["error"]) == (401, "missing_signature")
    assert len(served.sink.records) == 1
    assert served.sink.records[0].key == b"email:ada@example.com"


async def test_mailchimp_webhook(served: Served) -> None:
    good = served.url(f"/webhooks/mailchimp/{MAILCHIMP_KEY}")
    async with served.session.get(good) as r:
        assert r.status == 200
    async with served.session.get(served.url("/webhooks/mailchimp/wrong")) as r:
        assert (r.status, (await r.json())["error"]) == (401, "wrong_secret")
    form = {
        "type": "unsubscribe",
        "fired_at": "2025-03-14 09:26:53",
        "data[email]": "ada@example.com",
        "data[list_id]": "l1",
    }
    async with served.session.post(served.url("/webhooks/mailchimp/wrong"), data=form) as r:
        assert r.status == 401
    async with served.session.post(good, data=form) as r:
        assert r.status == 202
    (event,) = served.events()
    assert event["type"] == "email_unsubscribed"


def test_tokens_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_AUTH_TOKENS", " tok-a , tok-b,,")
    settings = Settings()
    assert [t.get_secret_value() for t in settings.auth_tokens] == ["tok-a", "tok-b"]
    assert "tok-a" not in repr(settings)
    assert not settings.auth_disabled  # authentication is on unless disabled explicitly
    monkeypatch.setenv("LEADSTREAM_AUTH_TOKENS", '["tok-c", "tok,d"]')
    assert [t.get_secret_value() for t in Settings().auth_tokens] == ["tok-c", "tok,d"]


SNIPPET_CHECK = """
const fs = require("fs");
const made = [];
global.window = {location: {href: "https://acme.example/pricing?x=1"},
                 crypto: {randomUUID: () => "uuid-1"}};
global.document = {currentScript: {src: "https://collect.example.com/collect/leadstream.js"},
                   baseURI: "https://acme.example/", referrer: "https://google.com/",
                   title: "Pricing & more"};
global.Image = function () { made.push(this); };
const source = fs.readFileSync(process.argv[2], "utf8");
eval(source);
window.leadstream.page({url: "https://acme.example/spa", referrer: "", eventId: "e2"});
eval(source);  // embedded twice: loads once
console.log(JSON.stringify(made.map((image) => image.src)));
"""


def test_snippet_loads_the_pixel_from_its_own_origin(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = resources.files("stream.web.static").joinpath("leadstream.js")
    check = tmp_path / "check.js"
    check.write_text(SNIPPET_CHECK)
    out = subprocess.run(
        [node, str(check), str(script)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    first, second = (urlsplit(src) for src in orjson.loads(out))
    assert (first.scheme, first.netloc, first.path) == (
        "https",
        "collect.example.com",
        "/collect/pixel.gif",
    )
    assert parse_qs(first.query) == {
        "url": ["https://acme.example/pricing?x=1"],
        "ref": ["https://google.com/"],
        "title": ["Pricing & more"],
        "eid": ["uuid-1"],
    }
    assert parse_qs(second.query) == {
        "url": ["https://acme.example/spa"],
        "title": ["Pricing & more"],
        "eid": ["e2"],
    }
