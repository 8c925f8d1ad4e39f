"""Tracked links: the signed tokens of the collector's redirect (``GET /r/<token>``) and email
open pixel (``GET /o/<token>.gif``), the URLs that carry them, and the events they make.

A token is ``1.<payload>.<signature>``: ``1`` is the format version, ``payload`` the base64url
(no padding) of a compact JSON object, ``signature`` the base64url of the HMAC-SHA256 of
``1.<payload>`` under the link signing key (``LEADSTREAM_LINK_SIGNING_KEY``). The payload names
the target URL (``u``), exactly one of the lead id (``l``), an anonymous id (``a``) or an email
address (``e``, the identity ``email:<address>``), and optionally the message id (``m``), the
campaign id (``c``) and a link id (``k``). Anyone can read a token; only a key holder can make
one, so the redirect goes nowhere but where a key holder sent it (never an open redirect).

Verification is strict: the version, the base64url alphabet and its canonical form, then the
signature against every configured key (constant-time, no early exit, so rotation is: put the new
key first, keep the old one until the links signed with it no longer matter), and only then the
payload is parsed. A target must be an absolute ``http``/``https`` URL with a host, printable
ASCII without a backslash, at most 4096 characters: `sign` refuses anything else and the
collector checks it again.

In an email template::

    from stream.web.links import LinkSigner

    links = LinkSigner(os.environ["LEADSTREAM_LINK_SIGNING_KEY"], "https://collect.example.com")
    links.click_url("https://acme.example/pricing", email="ada@example.com", message_id="m-42")
    links.open_url(email="ada@example.com", message_id="m-42")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import orjson

from schemas.adapters import Conversion
from schemas.adapters.base import email_identity, text
from schemas.events import Clicked, EmailClicked, EmailOpened, EventBase
from stream.errors import ConfigurationError, LeadstreamError
from stream.settings import Settings

__all__ = [
    "CLICK_PATH",
    "MIN_KEY_CHARS",
    "OPEN_PATH",
    "REPEAT_WINDOW_SECONDS",
    "SOURCE",
    "VERSION",
    "InvalidLink",
    "InvalidToken",
    "Link",
    "LinkError",
    "LinkSigner",
    "check_target",
    "click_conversion",
    "click_url",
    "event_id",
    "open_conversion",
    "open_url",
    "sign",
    "verify",
]

VERSION: Final = "1"
"""The token format version, its first part."""
SOURCE: Final = "leadstream"
"""The `source` of the events tracked links make."""
CLICK_PATH: Final = "/r/"
OPEN_PATH: Final = "/o/"
REPEAT_WINDOW_SECONDS: Final = 10
"""Requests for the same link, by the same kind of client (user agent and machine reason),
within the same slot of this many seconds make one event: a retried or double request counts
once, a click a minute later is a new event."""
LINK_NAMESPACE: Final = uuid.UUID("a0c3ed33-cc0f-4d9f-b093-a9e82a7c08d9")
"""The uuid5 namespace of tracked-link event ids. Never change it."""
MIN_KEY_CHARS: Final = 32
"""The shortest signing key accepted (``secrets.token_urlsafe(32)`` makes a 43-character one)."""
MAX_TOKEN_CHARS: Final = 8192
MAX_URL_CHARS: Final = 4096
MAX_EMAIL_CHARS: Final = 250
"""So that `email:<address>` is an identifier (at most 256 characters)."""

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_UNSAFE_URL = re.compile(r"[^\x21-\x7e]|\\")
_ID = re.compile(r"^\S{1,256}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_FIELDS: Final = (
    ("u", "target"),
    ("l", "lead_id"),
    ("a", "anonymous_id"),
    ("e", "email"),
    ("m", "message_id"),
    ("c", "campaign_id"),
    ("k", "link_id"),
)
"""Payload key → `Link` field. Never reuse a key for another meaning."""


class LinkError(LeadstreamError):
    """A link that cannot be made or used, with the reason."""


class InvalidToken(LinkError):
    """A token that does not verify (malformed, truncated, tampered, another key): 404."""


class InvalidLink(LinkError):
    """A token that verifies but cannot be used (no target, a target that is not http(s)): 400."""


def check_target(url: object) -> str:
    """`url` when a tracked link may send people there, else `LinkError` saying why."""
    if not isinstance(url, str) or not url:
        raise LinkError("the target is not a URL")
    if len(url) > MAX_URL_CHARS:
        raise LinkError(f"the target is longer than {MAX_URL_CHARS} characters")
    if _UNSAFE_URL.search(url):
        raise LinkError(
            "the target has whitespace, a control or non-ASCII character or a backslash "
            "(percent-encode it)"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise LinkError(f"the target is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise LinkError("the target is not an http or https URL")
    if not parts.hostname:
        raise LinkError("the target has no host")
    return url


def _id(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise LinkError(f"{name} is not an id (1 to 256 characters, no whitespace)")
    return value


@dataclass(frozen=True)
class Link:
    """What a token says: where to send the person, who they are, which message and link.

    Exactly one of `lead_id`, `anonymous_id` and `email` is set; `email` is kept lower-cased.
    `target` may be None for a token meant only for an open pixel, which needs `message_id`.
    """

    target: str | None = None
    lead_id: str | None = None
    anonymous_id: str | None = None
    email: str | None = None
    message_id: str | None = None
    campaign_id: str | None = None
    link_id: str | None = None

    def __post_init__(self) -> None:
        if self.target is not None:
            check_target(self.target)
        for name in ("lead_id", "anonymous_id", "message_id", "campaign_id", "link_id"):
            _id(name, getattr(self, name))
        if self.email is not None:
            address = self.email.strip().lower() if isinstance(self.email, str) else None
            if address is None or not _EMAIL.fullmatch(address):
                raise LinkError("email is not an email address")
            if len(address) > MAX_EMAIL_CHARS:
                raise LinkError(f"email is longer than {MAX_EMAIL_CHARS} characters")
            object.__setattr__(self, "email", address)
        named = [v for v in (self.lead_id, self.anonymous_id, self.email) if v is not None]
        if len(named) != 1:
            raise LinkError("name exactly one of lead_id, anonymous_id and email")
        if self.target is None and self.message_id is None:
            raise LinkError("a link needs a target URL, or a message id for an open pixel")

    @property
    def identity(self) -> dict[str, Any]:
        """The event's `lead_id` and `anonymous_id` (an email address is `email:<address>`)."""
        return {
            "lead_id": self.lead_id,
            "anonymous_id": self.anonymous_id or email_identity(self.email),
        }


# ----------------------------------------------------------------------------- tokens


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(part: str) -> bytes:
    """The bytes of a canonical unpadded base64url string; `InvalidToken` otherwise."""
    if not _B64URL.fullmatch(part):
        raise InvalidToken("the token is not base64url")
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("the token is not base64url") from None
    if _b64encode(data) != part:  # a variant spelling of the same bytes is not the same token
        raise InvalidToken("the token is not canonical base64url")
    return data


def _mac(key: str, signed: str) -> bytes:
    return hmac.new(key.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def _check_key(key: str, position: int = 1) -> str:
    if len(key) < MIN_KEY_CHARS:  # the key itself is never shown
        raise ConfigurationError(
            f"LEADSTREAM_LINK_SIGNING_KEY: key {position} is shorter than {MIN_KEY_CHARS} "
            'characters (make one with: python -c "import secrets; '
            'print(secrets.token_urlsafe(32))")'
        )
    return key


def sign(link: Link, key: str) -> str:
    """The token of `link`, signed with `key`."""
    data = {
        short: getattr(link, name) for short, name in _FIELDS if getattr(link, name) is not None
    }
    signed = f"{VERSION}.{_b64encode(orjson.dumps(data))}"
    return f"{signed}.{_b64encode(_mac(_check_key(key), signed))}"


def verify(token: str, keys: Sequence[str]) -> Link:
    """The link of a token signed with one of `keys`.

    `InvalidToken` when it does not verify (nothing in it is read then), `InvalidLink` when it
    verifies but says something unusable.
    """
    if not keys:
        raise InvalidToken("no link signing key is configured (LEADSTREAM_LINK_SIGNING_KEY)")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise InvalidToken(f"the token is not a version {VERSION} token")
    version, payload, signature = parts
    given = _b64decode(signature)
    _b64decode(payload)  # refuse a malformed payload before spending a MAC on it
    signed = f"{version}.{payload}"
    accepted = False
    for key in keys:  # no early exit: the time does not tell which key matched
        accepted |= hmac.compare_digest(given, _mac(key, signed))
    if not accepted:
        raise InvalidToken("the signature does not verify")
    try:
        data = orjson.loads(_b64decode(payload))
    except orjson.JSONDecodeError:
        raise InvalidLink("the payload is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidLink("the payload is not a JSON object")
    values = {name: data.get(short) for short, name in _FIELDS}
    if any(value is not None and not isinstance(value, str) for value in values.values()):
        raise InvalidLink("a payload field is not a string")
    try:
        return Link(**values)
    except LinkError as exc:
        raise InvalidLink(str(exc)) from None


def _base(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise LinkError(f"{base_url!r} is not a base URL such as https://collect.example.com")
    return base_url.rstrip("/")


def click_url(base_url: str, token: str) -> str:
    """The tracked link: ``<base>/r/<token>``."""
    return f"{_base(base_url)}{CLICK_PATH}{token}"


def open_url(base_url: str, token: str) -> str:
    """The open pixel: ``<base>/o/<token>.gif``."""
    return f"{_base(base_url)}{OPEN_PATH}{token}.gif"


class LinkSigner:
    """Makes and reads tracked links with the configured keys.

    `keys`: the signing keys, a sequence or a comma-separated string (what
    ``LEADSTREAM_LINK_SIGNING_KEY`` holds); the first signs, every one verifies;
    `ConfigurationError` for a key shorter than `MIN_KEY_CHARS`. `base_url`: where people reach
    the collector, for `click_url` and `open_url`.
    """

    def __init__(self, keys: str | Sequence[str], base_url: str | None = None) -> None:
        if isinstance(keys, str):
            keys = [key.strip() for key in keys.split(",") if key.strip()]
        self.keys = tuple(_check_key(key, position) for position, key in enumerate(keys, 1))
        self.base_url = _base(base_url) if base_url is not None else None

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        return cls(
            [key.get_secret_value() for key in settings.link_signing_key], settings.link_base_url
        )

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def token(
        self,
        target: str | None,
        *,
        lead_id: str | None = None,
        anonymous_id: str | None = None,
        email: str | None = None,
        message_id: str | None = None,
        campaign_id: str | None = None,
        link_id: str | None = None,
    ) -> str:
        """The token of a link (`LinkError` for a bad target or identity, or without a key)."""
        if not self.keys:
            raise LinkError("no link signing key is configured (LEADSTREAM_LINK_SIGNING_KEY)")
        link = Link(target, lead_id, anonymous_id, email, message_id, campaign_id, link_id)
        return sign(link, self.keys[0])

    def click_url(
        self,
        target: str,
        *,
        lead_id: str | None = None,
        anonymous_id: str | None = None,
        email: str | None = None,
        message_id: str | None = None,
        campaign_id: str | None = None,
        link_id: str | None = None,
    ) -> str:
        """The tracked URL of `target`: a click makes `email_clicked` with a message id, else
        `clicked`."""
        token = self.token(
            check_target(target),
            lead_id=lead_id,
            anonymous_id=anonymous_id,
            email=email,
            message_id=message_id,
            campaign_id=campaign_id,
            link_id=link_id,
        )
        return click_url(self._base_url(), token)

    def open_url(
        self,
        *,
        message_id: str,
        lead_id: str | None = None,
        anonymous_id: str | None = None,
        email: str | None = None,
        campaign_id: str | None = None,
    ) -> str:
        """The open pixel of a message: loading it makes `email_opened`."""
        token = self.token(
            None,
            lead_id=lead_id,
            anonymous_id=anonymous_id,
            email=email,
            message_id=message_id,
            campaign_id=campaign_id,
        )
        return open_url(self._base_url(), token)

    def verify(self, token: str) -> Link:
        """See `verify`."""
        return verify(token, self.keys)

    def _base_url(self) -> str:
        if self.base_url is None:
            raise LinkError("no base URL: pass base_url (LEADSTREAM_LINK_BASE_URL)")
        return self.base_url


# ----------------------------------------------------------------------------- events


def event_id(
    kind: Literal["click", "open"],
    token: str,
    *,
    received_at: datetime,
    user_agent: str | None,
    machine: str | None,
) -> str:
    """The id of the event of one request for a link: the same for requests of the link by the
    same user agent and machine reason within one `REPEAT_WINDOW_SECONDS` slot (a retry, a
    double click: consumers keep one), different otherwise (a later click, a person's click
    after a scanner's)."""
    signed = token.rpartition(".")[0]  # the link, not its signature: a re-signed link is the same
    slot = int(received_at.timestamp() // REPEAT_WINDOW_SECONDS)
    parts = (kind, signed, str(slot), machine or "", user_agent or "")
    return str(uuid.uuid5(LINK_NAMESPACE, "\x1f".join(parts)))


def click_conversion(
    link: Link,
    token: str,
    *,
    received_at: datetime,
    user_agent: str | None,
    referer: str | None,
    machine: str | None,
) -> Conversion:
    """The event of a click on a tracked link: `email_clicked` when the link names a message,
    else `clicked` (its `href` the target, `target` the link id, `url` the ``Referer``)."""
    result = Conversion()
    if link.target is None:
        result.reject("", "click", "the link has no target URL")
        return result
    target = link.target
    common: dict[str, Any] = {
        "event_id": event_id(
            "click", token, received_at=received_at, user_agent=user_agent, machine=machine
        ),
        "occurred_at": received_at,
        "source": SOURCE,
        "machine": machine[:256] if machine else None,
        "user_agent": text(user_agent, 4096),
        **link.identity,
    }

    def make() -> EventBase:
        if link.message_id is not None:
            return EmailClicked(
                **common,
                url=target,
                message_id=link.message_id,
                campaign_id=link.campaign_id,
                machine_click=machine is not None,
            )
        return Clicked(**common, href=target, target=link.link_id, url=text(referer, 4096))

    result.attempt("", "email_clicked" if link.message_id else "clicked", make)
    return result


def open_conversion(
    link: Link,
    token: str,
    *,
    received_at: datetime,
    user_agent: str | None,
    machine: str | None,
) -> Conversion:
    """The `email_opened` event of a load of a message's open pixel."""
    result = Conversion()
    if link.message_id is None:
        result.reject("", "open", "the link names no message")
        return result
    result.attempt(
        "",
        "email_opened",
        lambda: EmailOpened(
            event_id=event_id(
                "open", token, received_at=received_at, user_agent=user_agent, machine=machine
            ),
            occurred_at=received_at,
            source=SOURCE,
            machine=machine[:256] if machine else None,
            user_agent=text(user_agent, 4096),
            message_id=link.message_id,
            campaign_id=link.campaign_id,
            machine_open=machine is not None,
            **link.identity,
        ),
    )
    return result
