"""Customer.io reporting webhooks: one JSON event per request, `{"event_id", "object_type",
"metric", "timestamp", "data": {...}}` (a JSON array of such events is read too).

Email events (`object_type: email`): `sent` → `email_sent`, `delivered`, `opened`, `clicked`,
`bounced` (a hard bounce: Customer.io reports the provider's bounce and suppresses the address;
`failure_message` is the reason), `spammed` → `email_spam_reported`, `unsubscribed` and
`subscribed`. Person events (`object_type: customer`): `subscribed` → `email_subscribed`,
`unsubscribed` → `email_unsubscribed`. Everything else is reported with the reason: `drafted`,
`attempted`, `failed`, `dropped`, `undeliverable` (nothing reached the person), `converted` (a
conversion goal, not an action with a Leadstream type), subscription-preference changes and
every other channel (`sms`, `push`, `in_app`, `slack`, `webhook`, `whatsapp`).

Machines: an `opened` event with `prefetched: true` ("opened by Gmail, Apple Privacy Protection,
or a user agent identified as a machine") and a `clicked` event with `machine: true` are machine
events (`machine` is set by `schemas.adapters.machine.classify`, and `machine_open` /
`machine_click`). `proxied` (fetched through an image proxy) and `synthetic` (an open inferred
from a click) are not: Customer.io says neither means a machine. Customer.io reports no user
agent or address, so nothing else is judged here.

The person is `email:<address>` (`recipient`, else `email_address`, else `identifiers.email`);
with no address, `customerio:<identifiers.id>` (Customer.io's id of the person, which an
`identify` can link to a lead). Customer.io's ids are not assumed to be Leadstream lead ids. The
event id is `customerio:<event_id>`; the message is `delivery_id`; the campaign is
`campaign:<id>`, `broadcast:<id>`, `newsletter:<id>` or `transactional:<id>` (Customer.io numbers
each kind on its own). Without a usable `timestamp` the time of receipt is used.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from schemas.adapters import machine
from schemas.adapters.base import (
    Conversion,
    convert_json_body,
    derived_event_id,
    email_identity,
    epoch_to_datetime,
    identifier,
    skip,
    text,
    vendor_event_id,
)
from schemas.events import (
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSent,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
)

__all__ = ["SOURCE", "convert", "convert_body"]

SOURCE = "customerio"

_NOT_CONVERTED = {
    "drafted": "a draft: nothing was sent",
    "attempted": "Customer.io could not hand the message over yet and will retry",
    "failed": "the message could not be sent: nothing reached the person",
    "dropped": "Customer.io did not send the message (the person is suppressed)",
    "undeliverable": "the message was not sent (a message limit or delivery disabled)",
    "converted": "a conversion goal of the message: no Leadstream event type",
    "cio_subscription_preferences_changed": "topic preferences are not converted",
}
_CAMPAIGN_KEYS = ("campaign_id", "broadcast_id", "newsletter_id", "transactional_message_id")
_CAMPAIGN_KINDS = dict(
    zip(_CAMPAIGN_KEYS, ("campaign", "broadcast", "newsletter", "transactional"), strict=True)
)


def convert_body(body: bytes | str, *, received_at: datetime) -> Conversion:
    """Events from the raw body of a Customer.io reporting webhook."""
    return convert_json_body(body, convert, received_at=received_at)


def convert(payload: Any, *, received_at: datetime) -> Conversion:
    """Events from a parsed reporting webhook body (one event, or a list of them)."""
    result = Conversion()
    items = list(enumerate(payload)) if isinstance(payload, list) else [(None, payload)]
    for index, item in items:
        where = "" if index is None else f"[{index}]"
        if not isinstance(item, dict):
            result.reject(where, "?", "not a JSON object")
            continue
        kind = f"{item.get('object_type')} {item.get('metric')}"
        result.attempt(where, kind, functools.partial(_event, item, received_at))
    return result


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _campaign(data: dict[str, Any]) -> str | None:
    for key in _CAMPAIGN_KEYS:
        if (value := identifier(data.get(key))) is not None:
            return f"{_CAMPAIGN_KINDS[key]}:{value}"
    return None


def _person(data: dict[str, Any]) -> str | None:
    identifiers = _dict(data.get("identifiers"))
    address = (
        email_identity(data.get("recipient"))
        or email_identity(data.get("email_address"))
        or email_identity(identifiers.get("email"))
    )
    if address is not None:
        return address
    cio_id = identifier(identifiers.get("id") or data.get("customer_id"))
    return None if cio_id is None else f"customerio:{cio_id}"


def _event(item: dict[str, Any], received_at: datetime) -> EventBase:
    channel, metric = item.get("object_type"), item.get("metric")
    if metric in _NOT_CONVERTED:
        raise skip(_NOT_CONVERTED[str(metric)])
    if channel is None:
        raise skip("no object_type")
    if channel not in ("email", "customer"):
        raise skip(f"a {str(channel)[:32]!r} message: only email and person events are converted")
    data = _dict(item.get("data"))
    person = _person(data)
    if person is None:
        raise skip("no recipient address and no person id")
    common: dict[str, Any] = {
        "event_id": vendor_event_id(SOURCE, item.get("event_id")) or derived_event_id(SOURCE, item),
        "occurred_at": epoch_to_datetime(item.get("timestamp")) or received_at,
        "anonymous_id": person,
        "source": SOURCE,
        "message_id": identifier(data.get("delivery_id")),
        "campaign_id": _campaign(data),
    }
    match metric:
        case "subscribed":
            return EmailSubscribed(**common)
        case "unsubscribed":
            return EmailUnsubscribed(**common)
    if channel != "email":
        raise skip(f"person event {str(metric)[:32]!r} is not converted")
    return _email_event(metric, data, common)


def _email_event(metric: object, data: dict[str, Any], common: dict[str, Any]) -> EventBase:
    match metric:
        case "sent":
            return EmailSent(**common)
        case "delivered":
            return EmailDelivered(**common)
        case "opened":
            flag = "prefetched" if data.get("prefetched") is True else None
            why = machine.classify(vendor_flag=flag, user_agent_known=False)
            return EmailOpened(**common, machine=why, machine_open=why is not None)
        case "clicked":
            url = text(data.get("href"), 4096)
            if url is None:
                raise skip("clicked event without an href")
            flag = "machine" if data.get("machine") is True else None
            why = machine.classify(vendor_flag=flag, user_agent_known=False)
            return EmailClicked(**common, url=url, machine=why, machine_click=why is not None)
        case "bounced":
            return EmailBounced(
                **common, bounce="hard", reason=text(data.get("failure_message"), 4096)
            )
        case "spammed":
            return EmailSpamReported(**common)
    raise skip(f"unknown Customer.io email metric {str(metric)[:64]!r}")
