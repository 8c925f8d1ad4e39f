"""Postmark webhooks: one JSON object per request, its kind in `RecordType`.

- `Delivery` → `email_delivered`.
- `Open` → `email_opened` and `Click` → `email_clicked` (`OriginalLink`); `machine` is judged by
  `machine.classify` from `UserAgent` and the opener's address `Geo.IP`.
- `Bounce` → by Postmark's bounce type (`Type`, the "Bounce types" table of Postmark's Bounce
  API): `HardBounce` and `BadEmailAddress` are hard; `SoftBounce` (mailbox full, over quota),
  `SpamNotification` (rejected as spam or for its content), `Blocked` (an ISP's block) and
  `DMARCPolicy` are soft. `Transient` ("message delayed") and `DnsError` ("a temporary DNS
  error") are reported, not bounced: Postmark retries, and the final outcome arrives as its own
  event. `Unsubscribe` (the NDR is an unsubscribe or remove request) → `email_unsubscribed`,
  `SpamComplaint` → `email_spam_reported`. The other types (auto responders, address changes,
  challenge verifications, virus notifications, open relay tests, unclassified NDRs, and
  sender-side failures: manually deactivated, unconfirmed, SMTP API, inbound and template
  errors) say nothing about the address and are reported.
- `SpamComplaint` → `email_spam_reported`.
- `SubscriptionChange`: a suppression the recipient made (`Origin: Recipient`,
  `SuppressionReason: ManualSuppression`, which is how Postmark records an unsubscribe) →
  `email_unsubscribed` of the message stream; a reactivation the recipient made →
  `email_subscribed`. Suppressions after a hard bounce or a spam complaint are reported (their
  own `Bounce`/`SpamComplaint` webhook is the event), as are changes the sender or Postmark
  made (`Origin: Customer` or `Admin`).
- Anything else (an inbound message posted to this URL, an unknown `RecordType`) is reported.

The person is `email:<Recipient>` (`Email` for bounces and complaints); a `lead_id` in the
message's `Metadata` adds the lead id. Times are the record's own (`DeliveredAt`, `ReceivedAt`,
`BouncedAt`, `ChangedAt`), else the time the webhook was received.

Decisions where Postmark's documentation is silent: bounces and spam complaints carry Postmark's
bounce `ID`, which becomes the event id (`postmark:bounce-<ID>`); the other records have no id,
so a stable one is derived from the whole record (a retry of the same webhook is the same
event). `Tag` is a free label, not a campaign, and is not used. A JSON array of records is
accepted too (each reported as `[i]`), although Postmark posts one record per request.
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
    identifier,
    iso_to_datetime,
    skip,
    text,
    vendor_event_id,
)
from schemas.adapters.mailtools import lead_id_in
from schemas.events import (
    BounceKind,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
)

__all__ = ["BOUNCE_KINDS", "SOURCE", "convert", "convert_body"]

SOURCE: Final = "postmark"

BOUNCE_KINDS: Final[dict[str, BounceKind]] = {
    "HardBounce": "hard",
    "BadEmailAddress": "hard",
    "SoftBounce": "soft",
    "SpamNotification": "soft",
    "Blocked": "soft",
    "DMARCPolicy": "soft",
}
"""Postmark bounce `Type` → the bounce it is; types not listed make no bounce."""

_NOT_BOUNCES: Final[dict[str, str]] = {
    "Transient": "a temporary delay; Postmark retries and reports the final outcome",
    "DnsError": "a temporary DNS error; Postmark retries and reports the final outcome",
    "AutoResponder": "an automatic reply (out of office): the message was delivered",
    "AddressChange": "an address change notice, not a failed delivery",
    "Subscribe": "a subscribe request sent as a reply, not a failed delivery",
    "ChallengeVerification": "a challenge asking to verify the sender, not a failed delivery",
    "OpenRelayTest": "an open relay test, not a failed delivery",
    "VirusNotification": "a virus warning, not a failed delivery",
    "Unknown": "Postmark could not classify the bounce",
    "ManuallyDeactivated": "the address was deactivated by hand: not sent",
    "Unconfirmed": "the sender signature is not confirmed: not sent",
    "SMTPApiError": "a sender-side SMTP API error: not sent",
    "InboundError": "an inbound processing error, not about the recipient",
    "TemplateRenderingFailed": "the template failed to render: not sent",
}


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from the raw Postmark webhook body."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from a parsed Postmark webhook body (one record, or a list of them)."""
    ranges = tuple(machine_ranges)
    return convert_items(
        payload, "RecordType", functools.partial(_event, received_at=received_at, ranges=ranges)
    )


def _event(item: dict[str, Any], received_at: datetime, ranges: tuple[str, ...]) -> EventBase:
    kind = item.get("RecordType")
    if kind is None and ("FromFull" in item or "MailboxHash" in item):
        raise skip("an inbound message, not an event about a sent one")
    address = item.get("Email") if kind in ("Bounce", "SpamComplaint") else item.get("Recipient")
    common: dict[str, Any] = {
        "event_id": _event_id(item),
        "occurred_at": _time(item) or received_at,
        "lead_id": lead_id_in(item.get("Metadata")),
        "anonymous_id": email_identity(address),
        "source": SOURCE,
        "message_id": identifier(item.get("MessageID")),
    }
    if kind not in ("Delivery", "Open", "Click", "Bounce", "SpamComplaint", "SubscriptionChange"):
        raise skip(f"unknown Postmark record type {str(kind)[:64]!r}")
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no recipient address and no lead_id in the metadata")
    match kind:
        case "Delivery":
            return EmailDelivered(**common)
        case "Open":
            return EmailOpened(**common, **_engagement(item, ranges))
        case "Click":
            url = text(item.get("OriginalLink"), 4096)
            if url is None:
                raise skip("click without an OriginalLink")
            return EmailClicked(**common, url=url, **_engagement(item, ranges))
        case "Bounce":
            return _bounce(item, common)
        case "SpamComplaint":
            return EmailSpamReported(**common)
    return _subscription_change(item, common)


def _event_id(item: dict[str, Any]) -> str:
    if item.get("RecordType") in ("Bounce", "SpamComplaint"):
        bounce_id = identifier(item.get("ID"))
        if bounce_id is not None:
            return vendor_event_id(SOURCE, f"bounce-{bounce_id}") or derived_event_id(SOURCE, item)
    return derived_event_id(SOURCE, item)


def _time(item: dict[str, Any]) -> datetime | None:
    for name in ("DeliveredAt", "ReceivedAt", "BouncedAt", "ChangedAt"):
        if (found := iso_to_datetime(item.get(name))) is not None:
            return found
    return None


def _engagement(item: dict[str, Any], ranges: tuple[str, ...]) -> dict[str, Any]:
    user_agent = text(item.get("UserAgent"), 4096)
    geo = item.get("Geo")
    ip = text(geo.get("IP"), 64) if isinstance(geo, dict) else None
    reason = machine.classify(
        user_agent=user_agent,
        ip=ip,
        user_agent_known="UserAgent" in item,
        extra_ranges=ranges,
    )
    return {"user_agent": user_agent, "machine": reason}


def _bounce(item: dict[str, Any], common: dict[str, Any]) -> EventBase:
    kind = str(item.get("Type") or "")
    if kind == "SpamComplaint":
        return EmailSpamReported(**common)
    if kind == "Unsubscribe":
        return EmailUnsubscribed(**common, reason="unsubscribe request in reply to the message")
    bounce = BOUNCE_KINDS.get(kind)
    if bounce is None:
        raise skip(_NOT_BOUNCES.get(kind, f"unknown Postmark bounce type {kind[:64]!r}"))
    details = [str(item[k]) for k in ("Name", "Description", "Details") if item.get(k)]
    return EmailBounced(**common, bounce=bounce, reason=text(": ".join(details), 4096) or kind)


def _subscription_change(item: dict[str, Any], common: dict[str, Any]) -> EventBase:
    origin = item.get("Origin")
    reason = item.get("SuppressionReason")
    stream = identifier(item.get("MessageStream"))
    if origin != "Recipient":
        raise skip(f"a suppression change made by {str(origin)[:32]!r}, not by the recipient")
    if item.get("SuppressSending") is False:
        return EmailSubscribed(**common, list_id=stream)
    if reason in ("HardBounce", "SpamComplaint"):
        raise skip(f"a suppression after a {reason}: its own {reason} webhook is the event")
    if reason != "ManualSuppression":
        raise skip(f"a suppression for {str(reason)[:64]!r}")
    return EmailUnsubscribed(**common, list_id=stream, reason="unsubscribed")
