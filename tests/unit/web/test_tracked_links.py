"""The collector's tracked links over HTTP: ``GET /r/<token>`` redirects and records a click,
``GET /o/<token>.gif`` answers a GIF and records an open; nothing but a signed http(s) link
redirects. The HTTP layer runs for real (aiohttp's test server) with a sink that keeps the
records in a list, as in test_collector.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from collector_http import ListSink, collector_app
from factories import make_settings
from pydantic import SecretStr

from stream import metrics
from stream.web import links
from stream.web.auth import MemoryReplayGuard
from stream.web.collector import PIXEL_GIF, Collector
from stream.web.links import Link, LinkSigner, sign

KEY = "link-key-new-" + "n" * 32
OLD_KEY = "link-key-old-" + "o" * 32
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
NOW = datetime(2025, 3, 14, 9, 26, 50, tzinfo=UTC)  # the start of a 10-second slot


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Served:
    def __init__(self, server: TestServer, collector: Collector, sink: ListSink) -> None:
        self.server = server
        self.collector = collector
        self.sink = sink
        self.clock = Clock()
        collector.clock = self.clock
        self.session = ClientSession(headers={"User-Agent": BROWSER})

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.sink.records]

    async def get(self, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
        method = kwargs.pop("method", "GET")
        async with self.session.request(
            method, self.url(path), allow_redirects=False, **kwargs
        ) as response:
            return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def make_served() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Served] = []

    async def start(**overrides: Any) -> Served:
        options: dict[str, Any] = {
            "link_signing_key": [SecretStr(KEY), SecretStr(OLD_KEY)],
            "webhook_replay_store": "memory",
        }
        sink = ListSink()
        collector = Collector(
            make_settings(**{**options, **overrides}), sink, replays=MemoryReplayGuard()
        )
        server = TestServer(collector_app(collector))
        await server.start_server()
        served = Served(server, collector, sink)
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


def _token(target: str | None = "https://acme.example/pricing?plan=team", **fields: str) -> str:
    """A token signed with the current key; for lead-1 unless `fields` name someone."""
    if not {"lead_id", "anonymous_id", "email"} & fields.keys():
        fields["lead_id"] = "lead-1"
    return LinkSigner([KEY]).token(target, **fields)


# ----------------------------------------------------------------------------- round trips


async def test_an_email_link_redirects_and_records_email_clicked(served: Served) -> None:
    signer = LinkSigner([KEY], "https://collect.example.com")
    url = signer.click_url(
        "https://acme.example/pricing?plan=team",
        email="Ada@Example.com",
        message_id="m-42",
        campaign_id="spring",
    )
    path = url.removeprefix("https://collect.example.com")
    status, headers, body = await served.get(path)
    assert status == 302
    assert headers["Location"] == "https://acme.example/pricing?plan=team"
    assert "no-store" in headers["Cache-Control"]
    assert body == b""
    (record,) = served.sink.records
    (event,) = served.events()
    assert headers["X-Leadstream-Event-Id"] == event["event_id"]
    assert (record.topic, record.key) == ("leads.email.v1", b"email:ada@example.com")
    assert event["type"] == "email_clicked"
    assert event["source"] == "leadstream"
    assert event["anonymous_id"] == "email:ada@example.com"
    assert event["url"] == "https://acme.example/pricing?plan=team"
    assert (event["message_id"], event["campaign_id"]) == ("m-42", "spring")
    assert event["user_agent"] == BROWSER
    assert event.get("machine") is None and not event.get("machine_click")
    assert event["occurred_at"].startswith("2025-03-14T09:26:50")


async def test_a_site_link_records_clicked_on_the_referring_page(served: Served) -> None:
    link = Link("https://acme.example/docs", lead_id="lead-9", link_id="footer-docs")
    status, headers, _ = await served.get(
        f"/r/{sign(link, KEY)}", headers={"Referer": "https://partner.example/post"}
    )
    assert (status, headers["Location"]) == (302, "https://acme.example/docs")
    (record,) = served.sink.records
    (event,) = served.events()
    assert (record.topic, record.key) == ("leads.clickstream.v1", b"lead-9")
    assert (event["type"], event["href"], event["target"], event["url"]) == (
        "clicked",
        "https://acme.example/docs",
        "footer-docs",
        "https://partner.example/post",
    )
    assert event["source"] == "leadstream"


async def test_an_open_pixel_records_email_opened(served: Served) -> None:
    signer = LinkSigner([KEY], "https://collect.example.com")
    url = signer.open_url(anonymous_id="aid-1234", message_id="m-7", campaign_id="c-1")
    status, headers, body = await served.get(url.removeprefix("https://collect.example.com"))
    assert (status, body, headers["Content-Type"]) == (200, PIXEL_GIF, "image/gif")
    assert "no-store" in headers["Cache-Control"]
    (record,) = served.sink.records
    (event,) = served.events()
    assert (record.topic, record.key) == ("leads.email.v1", b"aid-1234")
    assert (event["type"], event["message_id"], event["campaign_id"]) == (
        "email_opened",
        "m-7",
        "c-1",
    )
    assert event["source"] == "leadstream" and event.get("machine") is None
    # the click token of a message doubles as its open pixel
    click = _token("https://acme.example/", lead_id="lead-1", message_id="m-8")
    status, _, _ = await served.get(f"/o/{click}.gif")
    assert status == 200 and served.events()[-1]["type"] == "email_opened"


# ----------------------------------------------------------------------------- refusals


async def _refused(served: Served, path: str, status: int, error: str) -> None:
    got, headers, body = await served.get(path)
    assert got == status, body
    assert "Location" not in headers
    assert orjson.loads(body)["error"] == error


async def test_a_token_that_does_not_verify_is_a_404_without_redirect_or_event(
    served: Served,
) -> None:
    token = _token()
    version, payload, signature = token.split(".")
    forged_payload = links._b64encode(  # noqa: SLF001
        orjson.dumps({"u": "https://evil.example/", "l": "lead-1"})
    )
    for path in (
        f"/r/{version}.{forged_payload}.{signature}",  # changed target
        f"/r/{sign(Link('https://acme.example/pricing?plan=team', lead_id='lead-2'), 'x' * 40)}",
        f"/r/{token[:-3]}",  # truncated
        f"/r/{version}.{payload}",  # no signature
        "/r/not-base64!!",
        "/r/1.%2F%2Fevil.example.sig",
    ):
        await _refused(served, path, 404, "unknown_link")
    assert served.sink.records == []


async def test_what_is_not_an_http_target_never_redirects(served: Served) -> None:
    # a key holder's hand-made tokens (sign() refuses these targets): verified, refused 400
    for target in ("javascript:alert(1)", "data:text/html,<b>x</b>", "//evil.example/"):
        forged = _forge({"u": target, "l": "lead-1"})
        await _refused(served, f"/r/{forged}", 400, "invalid_link")
    # an open pixel's link has no target: not a redirect either
    await _refused(served, f"/r/{_token(None, lead_id='l', message_id='m')}", 400, "invalid_link")
    assert served.sink.records == []


def _forge(payload: dict[str, str]) -> str:
    signed = f"1.{links._b64encode(orjson.dumps(payload))}"  # noqa: SLF001
    mac = hmac.new(KEY.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{links._b64encode(mac)}"  # noqa: SLF001


async def test_open_pixel_refusals_are_gifs_without_events(served: Served) -> None:
    bad = _token(None, lead_id="l", message_id="m")[:-2]
    status, headers, body = await served.get(f"/o/{bad}.gif")
    assert (status, body, headers["X-Leadstream-Rejected"]) == (404, PIXEL_GIF, "unknown_link")
    no_message = _token("https://acme.example/", lead_id="l")
    status, headers, body = await served.get(f"/o/{no_message}.gif")
    assert (status, body, headers["X-Leadstream-Rejected"]) == (400, PIXEL_GIF, "invalid_link")
    assert served.sink.records == []


async def test_without_a_signing_key_every_link_is_a_404(make_served: Callable[..., Any]) -> None:
    served: Served = await make_served(link_signing_key=[])
    await _refused(served, f"/r/{_token()}", 404, "unknown_link")
    status, _, _ = await served.get(f"/o/{_token(None, lead_id='l', message_id='m')}.gif")
    assert status == 404 and served.sink.records == []


async def test_links_signed_with_a_retired_key_still_work_until_it_is_removed(
    make_served: Callable[..., Any],
) -> None:
    old = LinkSigner([OLD_KEY]).token("https://acme.example/old", lead_id="lead-1")
    rotating: Served = await make_served()  # KEY first, OLD_KEY still accepted
    status, headers, _ = await rotating.get(f"/r/{old}")
    assert (status, headers["Location"]) == (302, "https://acme.example/old")
    rotated: Served = await make_served(link_signing_key=[SecretStr(KEY)])
    await _refused(rotated, f"/r/{old}", 404, "unknown_link")
    assert len(rotating.sink.records) == 1 and rotated.sink.records == []


# ----------------------------------------------------------------------------- machines


async def test_machines_are_redirected_and_their_clicks_kept_marked(
    make_served: Callable[..., Any],
) -> None:
    served: Served = await make_served(collector_trust_forwarded_for=True)
    token = _token(message_id="m-1")
    cases = [
        ({"method": "HEAD"}, "HEAD request"),
        ({"headers": {"Sec-Purpose": "prefetch"}}, "prefetch request"),
        ({"headers": {"Purpose": "prefetch"}}, "prefetch request"),
        ({"headers": {"User-Agent": "Mimecast URL Protect"}}, "user agent: Mimecast"),
        ({"headers": {"User-Agent": "Mozilla/5.0 (compatible; bot)"}}, "user agent: a bot"),
        (
            {"headers": {"X-Forwarded-For": "40.107.22.1, 10.0.0.2"}},
            "address of Microsoft Exchange Online Protection",
        ),
        ({"headers": {"X-Forwarded-For": "203.0.113.9"}}, None),
    ]
    for request, _ in cases:
        status, headers, _ = await served.get(f"/r/{token}", **request)
        assert (status, headers["Location"]) == (302, "https://acme.example/pricing?plan=team")
    events = served.events()
    assert [e.get("machine") for e in events] == [reason for _, reason in cases]
    assert [e.get("machine_click", False) for e in events] == [r is not None for _, r in cases]
    # a machine's request is a separate event from a person's (the same reason twice within
    # seconds, both prefetches, is one repeated request)
    assert len({e["event_id"] for e in events}) == len({e.get("machine") for e in events}) == 6


async def test_forwarded_for_is_read_only_when_the_proxy_is_trusted(served: Served) -> None:
    scanner = {"X-Forwarded-For": "40.107.22.1"}
    await served.get(f"/r/{_token()}", headers=scanner)
    assert served.events()[-1].get("machine") is None  # the peer, 127.0.0.1, is not a scanner


async def test_configured_scanner_ranges_count(make_served: Callable[..., Any]) -> None:
    served: Served = await make_served(machine_ip_ranges=["Acme gateway=127.0.0.0/8"])
    await served.get(f"/o/{_token(None, lead_id='l', message_id='m')}.gif")
    assert served.events()[-1]["machine"] == "address of Acme gateway"


async def test_a_head_of_the_open_pixel_is_a_machine_open(served: Served) -> None:
    token = _token(None, lead_id="lead-1", message_id="m-1")
    status, headers, body = await served.get(f"/o/{token}.gif", method="HEAD")
    assert (status, body, headers["Content-Type"]) == (200, b"", "image/gif")
    (event,) = served.events()
    assert (event["type"], event["machine"], event["machine_open"]) == (
        "email_opened",
        "HEAD request",
        True,
    )


# ----------------------------------------------------------------------------- repeats


async def test_a_repeated_request_is_one_event_a_later_click_another(served: Served) -> None:
    token = _token(message_id="m-1")
    await served.get(f"/r/{token}")
    served.clock.now = NOW + timedelta(seconds=3)  # a double click, or the browser's retry
    await served.get(f"/r/{token}")
    served.clock.now = NOW + timedelta(minutes=5)  # the person comes back to the email
    await served.get(f"/r/{token}")
    ids = [e["event_id"] for e in served.events()]
    assert ids[0] == ids[1] != ids[2]  # consumers drop the repeated id


# ----------------------------------------------------------------------------- Kafka down


def _lost(kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "leadstream_tracked_link_events_lost_total", {"kind": kind}
    )
    return value or 0.0


async def test_kafka_down_still_redirects_and_answers_counting_the_lost_event(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.sink.down = True
    clicks, opens = _lost("click"), _lost("open")
    with caplog.at_level(logging.ERROR, logger="stream.web.collector"):
        status, headers, _ = await served.get(f"/r/{_token()}")
        assert (status, headers["Location"]) == (302, "https://acme.example/pricing?plan=team")
        assert "X-Leadstream-Event-Id" not in headers
        status, _, body = await served.get(f"/o/{_token(None, lead_id='l', message_id='m')}.gif")
        assert (status, body) == (200, PIXEL_GIF)
    assert (_lost("click"), _lost("open")) == (clicks + 1, opens + 1)
    assert sum("event LOST" in message for message in caplog.messages) == 2


async def test_a_slow_kafka_delays_the_redirect_only_briefly(served: Served) -> None:
    served.collector.link_wait_seconds = 0.05
    served.sink.delay = 0.5
    started = asyncio.get_running_loop().time()
    status, headers, _ = await served.get(f"/r/{_token()}")
    assert status == 302 and "X-Leadstream-Event-Id" not in headers
    assert asyncio.get_running_loop().time() - started < 0.4
    assert served.sink.records == []
    await asyncio.sleep(0.6)  # the write went on after the answer
    assert [e["type"] for e in served.events()] == ["clicked"]
