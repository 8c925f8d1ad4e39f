"""Tracked-link tokens: what they carry, that nothing but a key holder can make one, rotation,
and the events and event ids a request for one makes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.events import Clicked, EmailClicked, EmailOpened
from stream.errors import ConfigurationError
from stream.settings import Settings
from stream.web import links
from stream.web.links import (
    InvalidLink,
    InvalidToken,
    Link,
    LinkError,
    LinkSigner,
    check_target,
    click_conversion,
    event_id,
    open_conversion,
    sign,
    verify,
)

KEY = "k1-" + "a" * 40
OLD_KEY = "k0-" + "b" * 40
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(payload: dict[str, str], key: str = KEY) -> str:
    """A token made without `sign`'s checks (what a key holder could make by hand)."""
    signed = f"1.{_b64(orjson.dumps(payload))}"
    mac = hmac.new(key.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def _payload(token: str) -> dict[str, str]:
    part = token.split(".")[1]
    data: dict[str, str] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


# ----------------------------------------------------------------------------- round trips


def test_a_token_carries_the_link_and_its_person() -> None:
    link = Link(
        "https://acme.example/pricing?plan=team#faq",
        email=" Ada@Example.COM ",
        message_id="m-42",
        campaign_id="spring-launch",
        link_id="cta-pricing",
    )
    token = sign(link, KEY)
    assert token.startswith("1.") and token.count(".") == 2
    read = verify(token, [KEY])
    assert read == link
    assert read.email == "ada@example.com"
    assert read.identity == {"lead_id": None, "anonymous_id": "email:ada@example.com"}
    # compact: one-letter keys, nothing unset
    assert _payload(token) == {
        "u": "https://acme.example/pricing?plan=team#faq",
        "e": "ada@example.com",
        "m": "m-42",
        "c": "spring-launch",
        "k": "cta-pricing",
    }


@pytest.mark.parametrize(
    ("who", "identity"),
    [
        ({"lead_id": "lead-7f3a9c"}, {"lead_id": "lead-7f3a9c", "anonymous_id": None}),
        ({"anonymous_id": "aid-123"}, {"lead_id": None, "anonymous_id": "aid-123"}),
        ({"email": "g@h.example"}, {"lead_id": None, "anonymous_id": "email:g@h.example"}),
    ],
)
def test_each_kind_of_person_round_trips(who: dict[str, str], identity: dict[str, str]) -> None:
    link = Link("http://acme.example/", **who)
    assert verify(sign(link, KEY), [KEY]).identity == identity


def test_every_link_field_has_a_payload_key() -> None:
    assert {name for _, name in links._FIELDS} == {  # noqa: SLF001
        f.name for f in dataclasses.fields(Link)
    }
    assert len({short for short, _ in links._FIELDS}) == len(links._FIELDS)  # noqa: SLF001


def test_a_link_names_exactly_one_person_and_a_target_or_a_message() -> None:
    with pytest.raises(LinkError, match="exactly one"):
        Link("https://a.example/")
    with pytest.raises(LinkError, match="exactly one"):
        Link("https://a.example/", lead_id="l", email="a@b.example")
    with pytest.raises(LinkError, match="target URL, or a message id"):
        Link(None, lead_id="l")
    with pytest.raises(LinkError, match="not an email"):
        Link("https://a.example/", email="not-an-address")
    with pytest.raises(LinkError, match="lead_id is not an id"):
        Link("https://a.example/", lead_id="has space")
    assert Link(None, lead_id="l", message_id="m").target is None  # an open pixel's link


# ----------------------------------------------------------------------------- no open redirect


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "//evil.example/phish",
        "/relative/path",
        "evil.example",
        "ftp://files.example/x",
        "https:\\\\evil.example",
        "https:/\\evil.example",
        "http://",
        "https:///path-only",
        "https://acme.example/\r\nSet-Cookie: x=1",
        "https://acme.example/ space",
        "https://acmé.example/",
        "https://acme.example:port/",
        "",
        "https://acme.example/" + "x" * 4096,
    ],
)
def test_only_absolute_http_urls_are_targets(target: str) -> None:
    with pytest.raises(LinkError):
        check_target(target)
    with pytest.raises(LinkError):
        sign(Link(target, lead_id="l"), KEY)
    # a key holder's hand-made token with such a target verifies, but is refused: 400
    with pytest.raises(InvalidLink):
        verify(_forge({"u": target, "l": "l"}), [KEY])


@pytest.mark.parametrize(
    "target",
    [
        "https://acme.example/",
        "HTTP://ACME.example:8080/a?b=c&d=%C3%A9#f",
        "https://[2001:db8::1]/",
    ],
)
def test_http_and_https_targets_are_kept_as_given(target: str) -> None:
    assert verify(sign(Link(target, lead_id="l"), KEY), [KEY]).target == target


# ----------------------------------------------------------------------------- tampering


def _swap_payload(token: str, **changes: str) -> str:
    version, _, signature = token.split(".")
    payload = {**_payload(token), **changes}
    return f"{version}.{_b64(orjson.dumps(payload))}.{signature}"


def test_a_changed_target_or_person_does_not_verify() -> None:
    token = sign(Link("https://acme.example/pricing", lead_id="lead-1", message_id="m-1"), KEY)
    for changed in (
        _swap_payload(token, u="https://evil.example/"),
        _swap_payload(token, l="lead-2"),
        _swap_payload(token, m="m-2"),
        _swap_payload(token, c="added"),
    ):
        with pytest.raises(InvalidToken, match="does not verify"):
            verify(changed, [KEY])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated signature
        lambda t: t[: len(t) // 2],  # truncated in the payload
        lambda t: t.rsplit(".", 1)[0],  # no signature
        lambda t: t + ".x",  # a fourth part
        lambda t: "2" + t[1:],  # another version
        lambda t: t.replace(".", ".@@", 1),  # not base64url
        lambda t: t[:-1] + "=",  # padding
        lambda t: t.replace("-", "+").replace("_", "/"),  # standard base64 alphabet
        lambda t: "",
        lambda t: "not a token at all",
        lambda t: t + "A" * 9000,
    ],
)
def test_a_mangled_token_does_not_verify(mangle: object) -> None:
    token = sign(Link("https://acme.example/", lead_id="lead-1"), KEY)
    assert callable(mangle)
    mangled = mangle(token)
    if mangled == token:  # (a token without - or _ is unchanged by the alphabet swap)
        return
    with pytest.raises(InvalidToken):
        verify(mangled, [KEY])


def test_another_spelling_of_the_signature_is_not_the_same_token() -> None:
    token = sign(Link("https://acme.example/", lead_id="lead-1"), KEY)
    head, _, signature = token.rpartition(".")
    # 32 bytes are 43 base64 characters: the last one carries 2 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    variant = f"{head}.{signature[:-1]}{alphabet[last ^ 1]}"
    assert base64.urlsafe_b64decode(variant.rpartition(".")[2] + "=") == base64.urlsafe_b64decode(
        signature + "="
    )
    with pytest.raises(InvalidToken, match="canonical"):
        verify(variant, [KEY])


def test_a_wrong_key_or_no_key_does_not_verify() -> None:
    token = sign(Link("https://acme.example/", lead_id="lead-1"), KEY)
    with pytest.raises(InvalidToken, match="does not verify"):
        verify(token, ["w" * 40])
    with pytest.raises(InvalidToken, match="no link signing key"):
        verify(token, [])


def test_keys_rotate_the_first_signs_every_one_verifies() -> None:
    old_token = LinkSigner([OLD_KEY]).token("https://acme.example/", lead_id="lead-1")
    rotated = LinkSigner(f"{KEY}, {OLD_KEY}")
    new_token = rotated.token("https://acme.example/", lead_id="lead-1")
    assert new_token != old_token and new_token == sign(
        Link("https://acme.example/", lead_id="lead-1"), KEY
    )
    assert rotated.verify(old_token) == rotated.verify(new_token)
    retired = LinkSigner([KEY])
    assert retired.verify(new_token).lead_id == "lead-1"
    with pytest.raises(InvalidToken):
        retired.verify(old_token)


def test_keys_are_long_and_never_shown() -> None:
    with pytest.raises(ConfigurationError, match="key 2 is shorter than 32") as refused:
        LinkSigner([KEY, "short-secret"])
    assert "short-secret" not in str(refused.value)
    with pytest.raises(ConfigurationError):
        sign(Link("https://a.example/", lead_id="l"), "short-secret")
    with pytest.raises(LinkError, match="no link signing key"):
        LinkSigner([]).token("https://a.example/", lead_id="l")


def test_the_keys_setting_is_a_secret_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_LINK_SIGNING_KEY", f" {KEY} ,{OLD_KEY},")
    monkeypatch.setenv("LEADSTREAM_LINK_BASE_URL", "https://collect.example.com")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.link_signing_key] == [KEY, OLD_KEY]
    assert KEY not in repr(settings) and OLD_KEY not in repr(settings)
    signer = LinkSigner.from_settings(settings)
    assert signer.keys == (KEY, OLD_KEY)
    assert signer.base_url == "https://collect.example.com"
    monkeypatch.setenv("LEADSTREAM_LINK_SIGNING_KEY", f'["{KEY}"]')
    assert LinkSigner.from_settings(Settings()).keys == (KEY,)
    monkeypatch.delenv("LEADSTREAM_LINK_SIGNING_KEY")
    assert not LinkSigner.from_settings(Settings()).configured
    assert Settings().collector_trust_forwarded_for is False


def test_urls_of_a_signer() -> None:
    signer = LinkSigner([KEY], "https://collect.example.com/")
    url = signer.click_url(
        "https://acme.example/pricing", lead_id="lead-1", message_id="m-1", link_id="cta"
    )
    prefix = "https://collect.example.com/r/"
    assert url.startswith(prefix)
    assert signer.verify(url.removeprefix(prefix)) == Link(
        "https://acme.example/pricing", lead_id="lead-1", message_id="m-1", link_id="cta"
    )
    pixel = signer.open_url(email="ada@example.com", message_id="m-1", campaign_id="c-1")
    assert pixel.startswith("https://collect.example.com/o/") and pixel.endswith(".gif")
    token = pixel.removeprefix("https://collect.example.com/o/").removesuffix(".gif")
    assert signer.verify(token) == Link(
        None, email="ada@example.com", message_id="m-1", campaign_id="c-1"
    )
    with pytest.raises(LinkError, match="no base URL"):
        LinkSigner([KEY]).click_url("https://acme.example/", lead_id="l")
    with pytest.raises(LinkError, match="not a base URL"):
        LinkSigner([KEY], "collect.example.com")
    with pytest.raises(LinkError, match="not an http"):
        signer.click_url("javascript:alert(1)", lead_id="l")


# ----------------------------------------------------------------------------- events


def test_a_click_with_a_message_is_email_clicked() -> None:
    link = Link(
        "https://acme.example/pricing", email="ada@example.com", message_id="m-1", campaign_id="c"
    )
    token = sign(link, KEY)
    result = click_conversion(
        link, token, received_at=NOW, user_agent=BROWSER, referer=None, machine=None
    )
    (event,) = result.events
    assert isinstance(event, EmailClicked)
    assert (event.source, event.url, event.message_id, event.campaign_id) == (
        "leadstream",
        "https://acme.example/pricing",
        "m-1",
        "c",
    )
    assert (event.anonymous_id, event.lead_id, event.occurred_at) == (
        "email:ada@example.com",
        None,
        NOW,
    )
    assert event.user_agent == BROWSER and event.machine is None and not event.machine_click


def test_a_click_without_a_message_is_clicked_on_the_referring_page() -> None:
    link = Link("https://acme.example/docs", lead_id="lead-1", link_id="nav-docs")
    result = click_conversion(
        link,
        sign(link, KEY),
        received_at=NOW,
        user_agent="curl/8.5",
        referer="https://partner.example/blog",
        machine="user agent: curl",
    )
    (event,) = result.events
    assert isinstance(event, Clicked)
    assert (event.href, event.target, event.url, event.lead_id) == (
        "https://acme.example/docs",
        "nav-docs",
        "https://partner.example/blog",
        "lead-1",
    )
    assert event.machine == "user agent: curl"


def test_an_open_is_email_opened_of_the_message() -> None:
    link = Link(None, lead_id="lead-1", message_id="m-1")
    result = open_conversion(
        link, sign(link, KEY), received_at=NOW, user_agent=None, machine="HEAD request"
    )
    (event,) = result.events
    assert isinstance(event, EmailOpened)
    assert (event.message_id, event.machine, event.machine_open) == ("m-1", "HEAD request", True)
    no_message = Link("https://acme.example/", lead_id="lead-1")
    refused = open_conversion(
        no_message, sign(no_message, KEY), received_at=NOW, user_agent=None, machine=None
    )
    assert not refused.events and "names no message" in refused.rejected[0].reason


def test_event_ids_repeat_only_for_a_repeated_request() -> None:
    token = sign(Link("https://acme.example/", lead_id="lead-1"), KEY)

    def eid(at: datetime, *, ua: str = BROWSER, machine: str | None = None, t: str = token) -> str:
        return event_id("click", t, received_at=at, user_agent=ua, machine=machine)

    slot_start = datetime.fromtimestamp(
        NOW.timestamp() // links.REPEAT_WINDOW_SECONDS * links.REPEAT_WINDOW_SECONDS, UTC
    )
    first = eid(slot_start)
    # a double click or a retry moments later: the same event
    assert eid(slot_start + timedelta(seconds=links.REPEAT_WINDOW_SECONDS - 1)) == first
    # a click in a later slot, another browser, a scanner's request, another link: new events
    assert eid(slot_start + timedelta(seconds=links.REPEAT_WINDOW_SECONDS)) != first
    assert eid(slot_start, ua="Mozilla/5.0 Firefox/125.0") != first
    assert eid(slot_start, machine="user agent: Mimecast") != first
    other = sign(Link("https://acme.example/other", lead_id="lead-1"), KEY)
    assert eid(slot_start, t=other) != first
    # the same link signed with another key (rotation) is the same link
    assert eid(slot_start, t=sign(Link("https://acme.example/", lead_id="lead-1"), OLD_KEY)) == (
        first
    )
    assert event_id("open", token, received_at=slot_start, user_agent=BROWSER, machine=None) != (
        first
    )
