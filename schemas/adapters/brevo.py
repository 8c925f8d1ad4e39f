"""Brevo (formerly Sendinblue) transactional email webhooks: a JSON object per event, named by
`event`.

- `request` (Brevo's name for *sent*; `sent` is read too) → `email_sent`, `delivered` →
  `email_delivered`.
- `opened` and `unique_opened` → `email_opened`; `proxy_open` and `unique_proxy_open` (opens
  Brevo saw through a privacy proxy such as Apple Mail Privacy Protection) → `email_opened`
  with `machine_open` and `machine` set from Brevo's own flag. `click` → `email_clicked`
  (`link`). When Brevo reports the `user_agent`, `machine.classify` judges it.
- `hard_bounce` → a hard `email_bounced`; `soft_bounce` (the receiving server refused the
  message for now, after Brevo's retries) → soft; `invalid_email` (Brevo found the address
  invalid) → hard.
- `spam` (and `complaint`, the name Brevo's documentation also uses) → `email_spam_reported`,
  `unsubscribed` (and `unsubscribe`) → `email_unsubscribed`.
- `deferred` is reported, not bounced: the receiving server delayed the message and Brevo
  retries; `blocked` (Brevo did not send: the address is on the block list) and `error` (Brevo
  failed to send) are reported: nothing happened to the person.

The person is `email:<email>`; a `lead_id` in the `X-Mailin-custom` header (a JSON object) adds
the lead id.

Decisions where Brevo's documentation is silent or unclear: the time is `ts_event` (seconds,
UTC), else `ts_epoch` (milliseconds, UTC), else the time the webhook was received; `date` is in
the account's own time zone, which the payload does not name, and `ts` is not used. Brevo sends
no event id (its `id` is the webhook's, not the event's), so a stable one is derived from the
whole event (a retry of the same webhook is the same event). The `sending_ip` is Brevo's own
address, never the reader's, and is not used. A JSON array of events (Brevo's batched
webhooks) is accepted too, each reported as `[i]`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

from schemas.adapters import machine
from schemas.adapters.base import (
    Conversion,
    convert_items,
    convert_json_body,
    derived_event_id,
    email_identity,
    epoch_to_datetime,
    identifier,
    skip,
    text,
)
from schemas.adapters.mailtools import lead_id_in
from schemas.events import (
    BounceKind,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSent,
    EmailSpamReported,
    EmailUnsubscribed,
    EventBase,
)

__all__ = ["PROXY_OPENS", "SOURCE", "convert", "convert_body"]

SOURCE: Final = "brevo"

PROXY_OPENS: Final = frozenset({"proxy_open", "unique_proxy_open"})
"""Brevo's events for an open seen through a privacy proxy (a machine, not the reader)."""

_NOT_CONVERTED: Final[dict[str, str]] = {
    "deferred": "a temporary delay; Brevo retries and reports the final outcome",
    "blocked": "Brevo blocked the message (the address is on the block list): not sent",
    "error": "Brevo could not send the message: nothing reached the person",
}
_BOUNCES: Final[dict[str, BounceKind]] = {
    "hard_bounce": "hard",
    "soft_bounce": "soft",
    "invalid_email": "hard",
}


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from the raw Brevo webhook body."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from a parsed Brevo webhook body (one event object, or a list of them)."""
    ranges = tuple(machine_ranges)
    return convert_items(
        payload, "event", functools.partial(_event, received_at=received_at, ranges=ranges)
    )


def _event(  # noqa: PLR0911 - one return per Brevo event
    item: dict[str, Any], received_at: datetime, ranges: tuple[str, ...]
) -> EventBase:
    kind = item.get("event")
    if kind in _NOT_CONVERTED:
        raise skip(_NOT_CONVERTED[str(kind)])
    common: dict[str, Any] = {
        "event_id": derived_event_id(SOURCE, item),
        "occurred_at": (
            epoch_to_datetime(item.get("ts_event"))
            or epoch_to_datetime(item.get("ts_epoch"))
            or received_at
        ),
        "lead_id": lead_id_in(item.get("X-Mailin-custom")),
        "anonymous_id": email_identity(item.get("email")),
        "source": SOURCE,
        "message_id": identifier(item.get("message-id")),
    }
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no recipient email and no lead_id in X-Mailin-custom")
    match kind:
        case "request" | "sent":
            return EmailSent(**common)
        case "delivered":
            return EmailDelivered(**common)
        case "opened" | "unique_opened" | "proxy_open" | "unique_proxy_open":
            proxy = kind in PROXY_OPENS
            return EmailOpened(**common, machine_open=proxy, **_engagement(item, kind, ranges))
        case "click":
            url = text(item.get("link"), 4096)
            if url is None:
                raise skip("click without a link")
            return EmailClicked(**common, url=url, **_engagement(item, kind, ranges))
        case "hard_bounce" | "soft_bounce" | "invalid_email":
            reason = text(item.get("reason"), 4096) or str(kind)
            return EmailBounced(**common, bounce=_BOUNCES[str(kind)], reason=reason)
        case "spam" | "complaint":
            return EmailSpamReported(**common)
        case "unsubscribed" | "unsubscribe":
            return EmailUnsubscribed(**common)
    raise skip(f"unknown Brevo event {str(kind)[:64]!r}")


def _engagement(item: dict[str, Any], kind: object, ranges: tuple[str, ...]) -> dict[str, Any]:
    user_agent = text(item.get("user_agent"), 4096)
    reason = machine.classify(
        vendor_flag=str(kind) if kind in PROXY_OPENS else None,
        user_agent=user_agent,
        user_agent_known="user_agent" in item,
        extra_ranges=ranges,
    )
    return {"user_agent": user_agent, "machine": reason}
