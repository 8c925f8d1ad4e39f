"""Mailgun webhooks (JSON, 2018+): `{"signature": {...}, "event-data": {...}}`.

`accepted` → `email_sent`, `delivered`, `failed` with severity `permanent` → a hard
`email_bounced`, `opened` and `clicked`, `unsubscribed`, `complained` → `email_spam_reported`.
A `failed` with severity `temporary` is reported, not converted: Mailgun retries the message,
and the final `delivered` or permanent `failed` event follows (as SendGrid's `deferred`). A
permanent `failed` whose `reason` is a suppression (Mailgun did not send) is treated the same
way as SendGrid's `dropped` (`base.suppressed`): `suppress-bounce` (suppressed after an earlier
bounce) → a hard `email_bounced` saying so; `suppress-unsubscribe` and `suppress-complaint` are
reported, not converted, with the reason. Other events (`stored`, `rejected`,
`list_member_uploaded`, ...) are reported. The person is `email:<recipient>`; a user variable
`lead_id` adds the lead id. The event id is `mailgun:<id>`, or derived from the event when it
has none.

Opens and clicks made by a machine get `machine`, the reason (`schemas.adapters.machine`): from
Mailgun's own flag `client-info.bot` (set to the bot's name; also kept as `machine_open` and
`machine_click`), `client-info.user-agent`, and the `ip` (published scanner ranges, plus
`machine_ranges`). Mailgun reports the client with every open and click, so one without a user
agent counts as a machine's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.adapters import machine
from schemas.adapters.base import (
    Conversion,
    SuppressionList,
    convert_json_body,
    derived_event_id,
    email_identity,
    epoch_to_datetime,
    identifier,
    skip,
    suppressed,
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
    EmailUnsubscribed,
    EventBase,
)

__all__ = ["SOURCE", "convert", "convert_body", "verify_signature"]

SOURCE = "mailgun"

_SUPPRESSIONS: dict[str, SuppressionList] = {
    "suppress-bounce": "bounce",
    "suppress-unsubscribe": "unsubscribe",
    "suppress-complaint": "complaint",
}
"""Permanent failures' `reason`s that name a suppression list (Mailgun's stats API lists them:
"recipients previously bounced / unsubscribed / complained", source/api-stats.rst in
mailgun/documentation)."""


def verify_signature(signing_key: str, *, timestamp: str, token: str, signature: str) -> bool:
    """Whether `signature` is Mailgun's HMAC-SHA256 of `timestamp + token` under `signing_key`.

    The caller also rejects stale timestamps and replayed tokens; this only checks the HMAC.
    """
    expected = hmac.new(
        signing_key.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


_USER_AGENT_EVENTS = frozenset({"opened", "clicked"})
"""The events Mailgun reports `client-info` (with the user agent) with (source/api-events.rst)."""


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Sequence[str] = ()
) -> Conversion:
    """Events from the raw Mailgun webhook body."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Sequence[str] = ()
) -> Conversion:
    """Events from a parsed Mailgun webhook body (or a bare `event-data` object).

    `machine_ranges`: more scanner ranges (CIDR, optionally `owner=CIDR`) for `machine`.
    """
    result = Conversion()
    if not isinstance(payload, dict):
        result.reject("", "?", "not a JSON object")
        return result
    data = payload.get("event-data", payload)
    if not isinstance(data, dict):
        result.reject("event-data", "?", "event-data is not a JSON object")
        return result
    result.attempt(
        "event-data", data.get("event"), lambda: [_event(data, received_at, machine_ranges)]
    )
    return result


def _event(  # noqa: PLR0911 - one return per Mailgun event
    data: dict[str, Any], received_at: datetime, machine_ranges: Sequence[str] = ()
) -> EventBase:
    kind = data.get("event")
    variables = data.get("user-variables")
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    campaigns = data.get("campaigns")
    campaign = campaigns[0] if isinstance(campaigns, list) and campaigns else None
    client = data.get("client-info")
    raw_bot = client.get("bot") if isinstance(client, dict) else None
    bot_name = text(str(raw_bot), 64) if raw_bot else None  # "" when no bot
    bot = bot_name is not None
    common: dict[str, Any] = {
        "event_id": vendor_event_id(SOURCE, data.get("id")) or derived_event_id(SOURCE, data),
        "occurred_at": epoch_to_datetime(data.get("timestamp")) or received_at,
        "lead_id": identifier(variables.get("lead_id")) if isinstance(variables, dict) else None,
        "anonymous_id": email_identity(data.get("recipient")),
        "source": SOURCE,
        "message_id": identifier(headers.get("message-id")) if isinstance(headers, dict) else None,
        "campaign_id": identifier(campaign.get("id")) if isinstance(campaign, dict) else None,
    }
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no recipient and no lead_id user variable")
    user_agent = text(client.get("user-agent"), 4096) if isinstance(client, dict) else None
    made_by = machine.classify(
        vendor_flag=f"client-info.bot={bot_name}" if bot_name else None,
        user_agent=user_agent,
        ip=text(data.get("ip"), 64),
        user_agent_known=kind in _USER_AGENT_EVENTS,
        extra_ranges=machine_ranges,
    )
    match kind:
        case "accepted":
            return EmailSent(**common)
        case "delivered":
            return EmailDelivered(**common)
        case "failed":
            return _failed(data, common)
        case "opened":
            return EmailOpened(**common, machine_open=bot, user_agent=user_agent, machine=made_by)
        case "clicked":
            url = text(data.get("url"), 4096)
            if url is None:
                raise skip("clicked event without a url")
            return EmailClicked(
                **common, url=url, machine_click=bot, user_agent=user_agent, machine=made_by
            )
        case "unsubscribed":
            return EmailUnsubscribed(**common)
        case "complained":
            return EmailSpamReported(**common)
    raise skip(f"Mailgun event {str(kind)[:64]!r} carries no signal about the recipient")


def _failed(data: dict[str, Any], common: dict[str, Any]) -> EventBase:
    severity = data.get("severity")
    if severity not in ("permanent", "temporary"):
        raise skip(f"failed event with unknown severity {str(severity)[:32]!r}")
    status = data.get("delivery-status")
    details = []
    if isinstance(status, dict):
        details = [str(status[k]) for k in ("code", "description", "message") if status.get(k)]
    reason = text(" ".join(details) or data.get("reason"), 4096)
    if severity == "temporary":
        detail = f" ({reason[:200]})" if reason else ""
        raise skip(
            "a temporary failure: Mailgun retries, and the final delivered or permanent failed "
            f"event follows{detail}"
        )
    suppression = _SUPPRESSIONS.get(str(data.get("reason")))
    if suppression is not None:
        return suppressed(suppression, "Mailgun", common, reason)
    return EmailBounced(**common, bounce="hard", reason=reason)
