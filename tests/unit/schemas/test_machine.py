"""The single-event machine classifier: vendor flags, user agents, published ranges, prefetch."""

from __future__ import annotations

import pytest

from schemas.adapters import machine


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "user agent: Barracuda"),
        ("python-requests/2.31.0", "user agent: python-requests"),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0", "user agent: headless Chrome"),
        ("", "no user agent"),
        (None, "no user agent"),
    ],
)
def test_machine_user_agents(agent: str | None, reason: str) -> None:
    assert machine.classify(user_agent=agent) == reason


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17531; Pro)",
    ],
)
def test_people_user_agents_are_not_machines(agent: str) -> None:
    assert machine.classify(user_agent=agent) is None


def test_vendor_flag_comes_first() -> None:
    assert machine.classify(vendor_flag="sg_machine_open", user_agent="Mozilla/5.0") == (
        "vendor flag: sg_machine_open"
    )


def test_published_ranges_and_extra_ranges() -> None:
    person = "Mozilla/5.0 (Windows NT 10.0) Chrome/124.0"
    assert machine.classify(user_agent=person, ip="40.107.12.34") == (
        "address of Microsoft Exchange Online Protection"
    )
    assert machine.classify(user_agent=person, ip="64.235.150.1") == (
        "address of Barracuda Email Security Service"
    )
    assert machine.classify(user_agent=person, ip="203.0.113.9") is None
    assert (
        machine.classify(
            user_agent=person, ip="203.0.113.9", extra_ranges=["Acme gateway=203.0.113.0/24"]
        )
        == "address of Acme gateway"
    )
    configured = machine.classify(
        user_agent=person, ip="2001:db8::1", extra_ranges=["2001:db8::/32"]
    )
    assert configured == "address of a configured scanner range"
    assert machine.classify(user_agent=person, ip="not an address") is None


def test_unknown_agent_says_nothing_when_the_source_never_reports_one() -> None:
    assert machine.classify(user_agent=None, user_agent_known=False) is None


def test_requests() -> None:
    person = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}
    assert machine.from_request("GET", person) is None
    assert machine.from_request("HEAD", person) == "HEAD request"
    assert machine.from_request("GET", {**person, "Sec-Purpose": "prefetch;prerender"}) == (
        "prefetch request"
    )
    assert machine.from_request("GET", {**person, "X-Moz": "prefetch"}) == "prefetch request"
    assert machine.from_request("GET", {"User-Agent": "curl/8.5.0"}) == "user agent: curl"


def test_setting_reads_ranges_and_refuses_bad_ones() -> None:
    from pydantic import ValidationError

    from tests.factories import make_settings

    settings = make_settings(machine_ip_ranges="Acme=203.0.113.0/24, 198.51.100.0/24")
    assert settings.machine_ip_ranges == ["Acme=203.0.113.0/24", "198.51.100.0/24"]
    with pytest.raises(ValidationError, match="is not a CIDR block"):
        make_settings(machine_ip_ranges="Acme=not-a-range")


def test_vendor_event_ids_are_scoped_and_fit_the_contract() -> None:
    from schemas.adapters.base import vendor_event_id
    from schemas.codec import decode, encode
    from schemas.examples import make_event

    assert vendor_event_id("sendgrid", "abc") == "sendgrid:abc"
    assert vendor_event_id("sendgrid", " ") is None
    long = vendor_event_id("sendgrid", "x" * 200)
    assert long is not None and long.startswith("sendgrid:") and len(long) <= 128
    assert long != vendor_event_id("mailgun", "x" * 200)
    event = make_event("email_opened", event_id=long)
    assert decode(encode(event), now=event.occurred_at).event_id == long


def test_segment_calls_from_scanners_and_gateway_ranges_are_marked() -> None:
    """The Segment spec's Button Clicked call (kept in tests/fixtures/segment), as a browser sent
    it, as a scanner's headless browser, from a gateway's address, and from a server library."""
    import copy
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from schemas.adapters import segment

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "segment"
    call = json.loads((fixture / "track.button-clicked-context-traits.json").read_text())
    received = datetime(2025, 3, 14, tzinfo=UTC)

    def marked(changed: dict[str, object], ranges: tuple[str, ...] = ()) -> str | None:
        variant = copy.deepcopy(call)
        variant["context"].update(changed)
        variant["context"] = {k: v for k, v in variant["context"].items() if v is not None}
        (event,) = segment.convert(variant, received_at=received, machine_ranges=ranges).events
        return event.machine

    assert marked({}) is None
    assert marked({"userAgent": "Mozilla/5.0 (X11) HeadlessChrome/120.0"}) == (
        "user agent: headless Chrome"
    )
    assert marked({"ip": "40.107.3.4"}) == "address of Microsoft Exchange Online Protection"
    assert marked({"ip": "203.0.113.7"}, ("Acme=203.0.113.0/24",)) == "address of Acme"
    assert marked({"userAgent": None}) is None  # server-side libraries send no user agent
