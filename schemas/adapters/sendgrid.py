"""SendGrid Event Webhook: a JSON array of events (a single object is accepted too).

`processed` → `email_sent`, `delivered`, `open`, `click`, `bounce` → `email_bounced` (hard or
soft, see `bounce_kind`), `spamreport`, `unsubscribe` and `group_unsubscribe` →
`email_unsubscribed`, `group_resubscribe` → `email_subscribed`.
`deferred` is reported, not converted: a temporary delay, the final outcome arrives as its own
event. `dropped` (SendGrid did not send) depends on its reason, the same way as Mailgun's
suppressions (`base.suppressed`): `Bounced Address` (suppressed after an earlier bounce) → a
hard `email_bounced` saying so; `Unsubscribed Address` and `Spam Reporting Address` (suppressed
after an unsubscribe or a spam report) and every other drop (`Invalid`, `Spam Content`, `Invalid
SMTPAPI header`, ...) are reported, not converted, with the reason. The person is
`email:<address>`; a custom argument `lead_id` adds the lead id. The event id is
`sendgrid:<sg_event_id>`, or derived from the item when it has none.

Opens and clicks made by a machine get `machine`, the reason (`schemas.adapters.machine`): from
SendGrid's own flag `sg_machine_open` (also kept as `machine_open`; clicks have no such flag),
the `useragent`, and the `ip` (published scanner ranges, plus `machine_ranges`). SendGrid sends
`useragent` and `ip` with every open and click, so an open or click without a user agent counts
as a machine's.
"""

from __future__ import annotations

import functools
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
    BounceKind,
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

__all__ = ["SOURCE", "bounce_kind", "convert", "convert_body"]

SOURCE = "sendgrid"

_HARD_CLASSIFICATIONS = frozenset({"Invalid Address"})
_SOFT_CLASSIFICATIONS = frozenset(
    {"Content", "Frequency or Volume Too High", "Reputation", "Technical Failure"}
)

_NOT_CONVERTED = {
    "deferred": "a temporary delay; the final delivered or bounce event follows",
}
_DROP_SUPPRESSIONS: dict[str, SuppressionList] = {
    "Bounced Address": "bounce",
    "Unsubscribed Address": "unsubscribe",
    "Spam Reporting Address": "complaint",
}
"""`dropped` reasons that name a suppression list (the glossary page "Drops",
`content/docs/glossary/drops.md` in GitHub sendgrid/docs; the Event Webhook reference lists the
other reasons)."""


_USER_AGENT_EVENTS = frozenset({"open", "click"})
"""The events SendGrid reports a `useragent` with (the Event Webhook reference's examples)."""


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Sequence[str] = ()
) -> Conversion:
    """Events from the raw SendGrid webhook body."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Sequence[str] = ()
) -> Conversion:
    """Events from a parsed SendGrid webhook body (a list of event objects, or one object).

    `machine_ranges`: more scanner ranges (CIDR, optionally `owner=CIDR`) for `machine`.
    """
    result = Conversion()
    items = payload if isinstance(payload, list) else [payload]
    for index, item in enumerate(items):
        where = f"[{index}]"
        if not isinstance(item, dict):
            result.reject(where, "?", "not a JSON object")
            continue
        kind = item.get("event")
        result.attempt(where, kind, functools.partial(_event, item, received_at, machine_ranges))
    return result


def _machine(
    item: dict[str, Any], agent: str | None, ranges: Sequence[str], *, flagged: bool
) -> str | None:
    return machine.classify(
        vendor_flag="sg_machine_open" if flagged else None,
        user_agent=agent,
        ip=text(item.get("ip"), 64),
        user_agent_known=item.get("event") in _USER_AGENT_EVENTS,
        extra_ranges=ranges,
    )


def _dropped(item: dict[str, Any], common: dict[str, Any]) -> EventBase:
    reason = text(item.get("reason"), 256)
    suppression = _DROP_SUPPRESSIONS.get(reason or "")
    if suppression is not None:
        return suppressed(suppression, "SendGrid", common, reason)
    raise skip(
        f"SendGrid dropped the message without sending it ({reason or 'no reason given'}): "
        "nothing happened to the person"
    )


def bounce_kind(item: dict[str, Any]) -> BounceKind:
    """Whether a SendGrid `bounce` event is a hard or a soft bounce.

    1. `type`, when SendGrid sends it: `bounce` (the receiving server refused the recipient
       permanently) is hard, `blocked` (refused temporarily) soft.
    2. Else `bounce_classification`, SendGrid's bucket of the receiving server's answer
       ("Bounce and Block Classifications",
       https://www.twilio.com/docs/sendgrid/ui/analytics-and-reporting/bounce-and-block-classifications):
       `Invalid Address` (the address is malformed or its mailbox does not exist; "often
       referred to as hard bounces") is hard; `Content`, `Reputation`, `Frequency or Volume Too
       High` and `Technical Failure` are about the message or the sender, not the address, and
       are soft. `Mailbox Unavailable` and `Unclassified` say neither, and go on to:
    3. the enhanced SMTP `status` (RFC 3463): `5.x.x` (permanent) is hard, `4.x.x` (transient)
       soft.
    4. Else hard: SendGrid documents a bounce as a permanent refusal
       (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event#bounce).
    """
    kind = item.get("type")
    if kind == "bounce":
        return "hard"
    if kind == "blocked":
        return "soft"
    classification = item.get("bounce_classification")
    if classification in _HARD_CLASSIFICATIONS:
        return "hard"
    if classification in _SOFT_CLASSIFICATIONS:
        return "soft"
    status = str(item.get("status") or "").strip()
    if status.startswith("4"):
        return "soft"
    return "hard"


def _event(  # noqa: PLR0911, PLR0912 - one branch per SendGrid event
    item: dict[str, Any], received_at: datetime, machine_ranges: Sequence[str] = ()
) -> EventBase:
    kind = item.get("event")
    if kind in _NOT_CONVERTED:
        raise skip(_NOT_CONVERTED[str(kind)])
    common: dict[str, Any] = {
        "event_id": vendor_event_id(SOURCE, item.get("sg_event_id"))
        or derived_event_id(SOURCE, item),
        "occurred_at": epoch_to_datetime(item.get("timestamp")) or received_at,
        "lead_id": identifier(item.get("lead_id")),
        "anonymous_id": email_identity(item.get("email")),
        "source": SOURCE,
        "message_id": identifier(item.get("sg_message_id")),
        "campaign_id": identifier(item.get("marketing_campaign_id") or item.get("singlesend_id")),
    }
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no recipient email and no lead_id custom argument")
    match kind:
        case "processed":
            return EmailSent(**common)
        case "dropped":
            return _dropped(item, common)
        case "delivered":
            return EmailDelivered(**common)
        case "open":
            flagged = item.get("sg_machine_open") is True
            agent = text(item.get("useragent"), 4096)
            return EmailOpened(
                **common,
                machine_open=flagged,
                user_agent=agent,
                machine=_machine(item, agent, machine_ranges, flagged=flagged),
            )
        case "click":
            url = text(item.get("url"), 4096)
            if url is None:
                raise skip("click event without a url")
            agent = text(item.get("useragent"), 4096)
            return EmailClicked(
                **common,
                url=url,
                user_agent=agent,
                machine=_machine(item, agent, machine_ranges, flagged=False),
            )
        case "bounce":
            return EmailBounced(
                **common, bounce=bounce_kind(item), reason=text(item.get("reason"), 4096)
            )
        case "spamreport":
            return EmailSpamReported(**common)
        case "unsubscribe":
            newsletter = item.get("newsletter")
            list_id = (
                identifier(newsletter.get("newsletter_user_list_id"))
                if isinstance(newsletter, dict)
                else None
            )
            return EmailUnsubscribed(**{**common, "list_id": list_id})
        case "group_unsubscribe":
            return EmailUnsubscribed(**common, list_id=identifier(item.get("asm_group_id")))
        case "group_resubscribe":
            return EmailSubscribed(**common, list_id=identifier(item.get("asm_group_id")))
    raise skip(f"unknown SendGrid event {str(kind)[:64]!r}")
