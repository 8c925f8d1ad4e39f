"""What every adapter returns, and the helpers they share."""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from pydantic import ValidationError

from schemas.events import EmailBounced, EventBase, Utm

__all__ = [
    "Conversion",
    "Rejected",
    "SuppressionList",
    "convert_items",
    "convert_json_body",
    "derived_event_id",
    "email_identity",
    "epoch_to_datetime",
    "identifier",
    "iso_to_datetime",
    "parse_json_body",
    "skip",
    "suppressed",
    "text",
    "utm_from_url",
    "vendor_event_id",
]

_EVENT_ID_LENGTH = 128
"""The contract's longest event id (`schemas.common.EventId`)."""

ADAPTER_NAMESPACE = uuid.UUID("0b6a3f7e-5d0c-5c7e-8f4e-2a9d1c6b3e58")
"""The uuid5 namespace of event ids derived from vendor payloads. Never change it."""


@dataclass(frozen=True)
class Rejected:
    """A part of a vendor payload that made no event, and why."""

    where: str
    """Which part: `[2]` for the third item of a batch, `` for the whole payload."""
    vendor_kind: str
    """The vendor's name for it (event name, call type), or `?` when it has none."""
    reason: str


@dataclass
class Conversion:
    """The events made from one vendor payload, and what was rejected."""

    events: list[EventBase] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    """Where each of `events` came from (`[2]`, `batch[0]`, `` for the whole payload), in order."""

    def origin(self, index: int) -> str:
        """Where the event at `index` of `events` came from."""
        return self.origins[index] if index < len(self.origins) else ""

    def reject(self, where: str, vendor_kind: object, reason: str) -> None:
        self.rejected.append(Rejected(where, str(vendor_kind or "?"), reason))

    def attempt(
        self, where: str, vendor_kind: object, make: Callable[[], EventBase | list[EventBase]]
    ) -> None:
        """Add the events `make` builds; a payload that fails validation becomes a rejection."""
        try:
            made = make()
            events = made if isinstance(made, list) else [made]
            self.events.extend(events)
            self.origins.extend(where for _ in events)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            path = ".".join(str(part) for part in first["loc"])
            self.reject(where, vendor_kind, f"invalid {path or 'event'}: {first['msg']}")
        except _Skip as skip:
            self.reject(where, vendor_kind, str(skip))


class _Skip(Exception):
    """Raised inside an adapter to reject one item with a reason."""


def skip(reason: str) -> _Skip:
    return _Skip(reason)


SuppressionList = Literal["bounce", "unsubscribe", "complaint"]
"""Why a sending platform keeps an address from being sent to: an earlier bounce, unsubscribe or
spam report (SendGrid's `dropped` reasons, Mailgun's `suppress-*` failures)."""

_SUPPRESSED_AFTER = {"unsubscribe": "an unsubscribe", "complaint": "a spam report"}


def suppressed(
    kind: SuppressionList, vendor: str, common: dict[str, Any], detail: str | None = None
) -> EventBase:
    """A message the vendor did not send because the address is on one of its suppression lists,
    treated alike for every vendor:

    - after an earlier bounce: a hard `email_bounced`, its reason saying so. The address is known
      not to take mail, whether or not the bounce itself was ever reported to Leadstream.
    - after an earlier unsubscribe or spam report: reported (raises `skip`), not converted.
      Nothing happened to the person now, and the unsubscribe or report was an event of its own.
    """
    said = f" ({detail[:200]})" if detail else ""
    if kind == "bounce":
        return EmailBounced(
            **common,
            bounce="hard",
            reason=f"not sent: the address was suppressed after an earlier bounce{said}",
        )
    raise skip(
        f"{vendor} did not send: the address was suppressed after {_SUPPRESSED_AFTER[kind]}, "
        f"which was an event of its own; nothing happened to the person now{said}"
    )


def parse_json_body(body: bytes | str, result: Conversion) -> Any:
    """The parsed JSON body, or `None` after recording why it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        result.reject("", "?", f"body is not valid JSON: {exc}")
        return None


def convert_json_body(
    body: bytes | str, convert: Callable[..., Conversion], **options: Any
) -> Conversion:
    """`convert(payload, **options)` of the parsed JSON body, or why the body is not JSON."""
    result = Conversion()
    payload = parse_json_body(body, result)
    return result if payload is None else convert(payload, **options)


def convert_items(
    payload: Any, kind_key: str, make: Callable[[dict[str, Any]], EventBase | list[EventBase]]
) -> Conversion:
    """The events `make` builds from one JSON object, or from each object of a JSON array (`[i]`
    says which), each item that makes none rejected with the reason (its `kind_key` names it)."""
    result = Conversion()
    batched = isinstance(payload, list)
    for index, item in enumerate(payload if batched else [payload]):
        where = f"[{index}]" if batched else ""
        if not isinstance(item, dict):
            result.reject(where, "?", "not a JSON object")
            continue
        result.attempt(where, item.get(kind_key), functools.partial(make, item))
    return result


def derived_event_id(vendor: str, payload: object, *, part: str = "") -> str:
    """A stable event id for a vendor payload that has none: retries of it get the same id."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return str(uuid.uuid5(ADAPTER_NAMESPACE, f"{vendor}\x1f{part}\x1f{canonical.decode()}"))


def vendor_event_id(source: str, vendor_id: object) -> str | None:
    """The event id for a vendor's own event id: `<source>:<id>`, so that two sources' ids never
    collide; ids too long for that are hashed (`<source>:<uuid5>`). None when `vendor_id` is not
    a usable id."""
    usable = identifier(vendor_id)
    if usable is None:
        return None
    scoped = f"{source}:{usable}"
    if len(scoped) <= _EVENT_ID_LENGTH:
        return scoped
    hashed = uuid.uuid5(ADAPTER_NAMESPACE, "\x1f".join((source, "id", usable)))
    return f"{source}:{hashed}"


def email_identity(address: object) -> str | None:
    """The `anonymous_id` naming a person by email address: `email:<lower-cased address>`."""
    if not isinstance(address, str) or "@" not in address:
        return None
    return "email:" + address.strip().lower()


def epoch_to_datetime(value: object) -> datetime | None:
    """Unix seconds or milliseconds (number or numeric string) as a UTC datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    seconds = value / 1000 if abs(value) >= 1e11 else value  # 1e11 s is the year 5138
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        return None


def iso_to_datetime(value: object) -> datetime | None:
    """An ISO 8601 timestamp with an offset (`Z` allowed) as a datetime; naive ones are None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else None


def text(value: object, limit: int = 256) -> str | None:
    """A non-empty string cut to `limit`, or None."""
    if isinstance(value, str) and value.strip():
        return value.strip()[:limit]
    return None


def identifier(value: object) -> str | None:
    """A usable id (no whitespace, at most 256 characters), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and re.fullmatch(r"\S{1,256}", value):
        return value
    return None


def utm_from_url(url: str | None, campaign: Mapping[str, Any] | None = None) -> Utm | None:
    """Campaign parameters from a URL's `utm_*` query parameters (or a vendor's campaign object)."""
    values: dict[str, str] = {}
    if campaign:
        for name in ("source", "medium", "term", "content"):
            if (value := text(campaign.get(name))) is not None:
                values[name] = value
        if (value := text(campaign.get("name") or campaign.get("campaign"))) is not None:
            values["campaign"] = value
    if url:
        for key, value in parse_qsl(urlsplit(url).query):
            if key.startswith("utm_") and key[4:] in Utm.model_fields and text(value):
                values.setdefault(key[4:], value[:256])
    return Utm(**values) if values else None
