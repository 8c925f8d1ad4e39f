"""Mailjet Event API: one event object, or (with grouped events, `Version: 2`) a JSON array of
the events of the last second, named by `event`.

- `sent` → `email_delivered`: Mailjet sends it "when the destination SMTP server has accepted
  the message", which is a delivery, not a send.
- `open` → `email_opened`, `click` → `email_clicked` (`url`); `machine` is judged by
  `machine.classify` from `agent` and `ip`.
- `bounce` → `email_bounced`: hard when `hard_bounce` is true, else soft; a bounce whose
  `error` Mailjet documents as temporary and retried (`greylisted`) or as its own passing
  failure (`system issue`, `protocol issue`, `connection issue`) is reported instead.
- `spam` → `email_spam_reported`, `unsub` → `email_unsubscribed` (of `mj_list_id`).
- `blocked` is reported: Mailjet did not send the message (a pre-blocked address, a duplicate
  in a campaign, ...), so nothing happened to the person.

The person is `email:<email>`; a `lead_id` in the event payload the sender attached
(`Payload`, a JSON object) adds the lead id. `mj_campaign_id` (0 means none) is the campaign,
`MessageID` the message, `time` (Unix seconds) the time.

Decisions where Mailjet's documentation is silent: Mailjet sends no event id, so a stable one
is derived from the whole event (a retry of the same call is the same event).
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
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSpamReported,
    EmailUnsubscribed,
    EventBase,
)

__all__ = ["RETRIED_ERRORS", "SOURCE", "convert", "convert_body"]

SOURCE: Final = "mailjet"

RETRIED_ERRORS: Final[dict[str, str]] = {
    "greylisted": "greylisted: a temporary refusal; Mailjet tries again",
    "system issue": "a temporary Mailjet system issue, not about the recipient",
    "protocol issue": "a temporary Mailjet protocol issue, not about the recipient",
    "connection issue": "a temporary Mailjet connection issue, not about the recipient",
}
"""Bounce `error`s Mailjet documents as temporary (its error table): reported, not bounced."""


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from the raw Mailjet Event API body."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from a parsed Mailjet body (one event object, or a list of them)."""
    ranges = tuple(machine_ranges)
    return convert_items(
        payload, "event", functools.partial(_event, received_at=received_at, ranges=ranges)
    )


def _event(item: dict[str, Any], received_at: datetime, ranges: tuple[str, ...]) -> EventBase:
    kind = item.get("event")
    if kind == "blocked":
        error = text(item.get("error"), 128)
        raise skip("Mailjet blocked the message, not sent" + (f" ({error})" if error else ""))
    campaign = item.get("mj_campaign_id")
    common: dict[str, Any] = {
        "event_id": derived_event_id(SOURCE, item),
        "occurred_at": epoch_to_datetime(item.get("time")) or received_at,
        "lead_id": lead_id_in(item.get("Payload")),
        "anonymous_id": email_identity(item.get("email")),
        "source": SOURCE,
        "message_id": identifier(item.get("MessageID")),
        "campaign_id": identifier(campaign) if campaign not in (0, "0", "") else None,
    }
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no recipient email and no lead_id in the event payload")
    match kind:
        case "sent":
            return EmailDelivered(**common)
        case "open":
            return EmailOpened(**common, **_engagement(item, ranges))
        case "click":
            url = text(item.get("url"), 4096)
            if url is None:
                raise skip("click without a url")
            return EmailClicked(**common, url=url, **_engagement(item, ranges))
        case "bounce":
            return _bounce(item, common)
        case "spam":
            return EmailSpamReported(**common)
        case "unsub":
            list_id = item.get("mj_list_id")
            return EmailUnsubscribed(
                **common, list_id=identifier(list_id) if list_id not in (0, "0", "") else None
            )
    raise skip(f"unknown Mailjet event {str(kind)[:64]!r}")


def _engagement(item: dict[str, Any], ranges: tuple[str, ...]) -> dict[str, Any]:
    user_agent = text(item.get("agent"), 4096)
    reason = machine.classify(
        user_agent=user_agent,
        ip=text(item.get("ip"), 64),
        user_agent_known="agent" in item,
        extra_ranges=ranges,
    )
    return {"user_agent": user_agent, "machine": reason}


def _bounce(item: dict[str, Any], common: dict[str, Any]) -> EventBase:
    error = str(item.get("error") or "").strip().lower()
    hard = item.get("hard_bounce") is True
    if not hard and error in RETRIED_ERRORS:
        raise skip(RETRIED_ERRORS[error])
    related = text(item.get("error_related_to"), 64)
    details = [part for part in (related, text(item.get("error"), 256)) if part]
    reason = ": ".join(details)
    if comment := text(item.get("comment"), 3072):
        reason = f"{reason} ({comment})" if reason else comment
    return EmailBounced(**common, bounce="hard" if hard else "soft", reason=reason or None)
