"""Amazon SES events published to Amazon SNS: the `Message` of an SNS `Notification`.

Both of SES's formats are read: event publishing through a configuration set (`eventType`) and
the older identity feedback notifications (`notificationType`).

- `Send` → `email_sent` per recipient (`mail.destination`); `Delivery` → `email_delivered` per
  `delivery.recipients`.
- `Bounce` → `email_bounced` per `bouncedRecipients`: `bounceType` `Permanent` is hard,
  `Transient` soft (SES sends it after its own retries: it is final for the message) and
  `Undetermined` soft too (SES could not tell why; only what SES calls permanent is hard). The
  reason is `<type>/<subtype>: <diagnostic code or status>`.
- `Complaint` → `email_spam_reported` per `complainedRecipients`; a `not-spam` feedback report,
  and a complaint SES made up because the address is on the account's suppression list
  (`complaintSubType: OnAccountSuppressionList`), are reported instead.
- `Open` → `email_opened`, `Click` → `email_clicked` (`click.link`); `machine` is judged by
  `machine.classify` from `userAgent` and `ipAddress`.
- `Subscription` (SES list management) → `email_unsubscribed` of the contact list when
  `unsubscribeAll` became true, else one `email_unsubscribed` / `email_subscribed` per topic
  whose status changed (`list_id` `<contact list>/<topic>`).
- `DeliveryDelay` (SES retries until `expirationTime`), `Reject` (not sent: SES found a virus),
  `Rendering Failure` (not sent), inbound `Received` and unknown types are reported.

The person is `email:<address>`; a message tag `lead_id` (`mail.tags.lead_id`) adds the lead
id. Times are the event's own timestamp (`mail.timestamp` for `Send`), else the SNS message's.

Decisions where the documentation is silent: opens, clicks and subscription changes do not say
which recipient acted, so they are converted only for a message with one recipient and reported
for one with several. Event ids are the SNS `MessageId` (the same on every SNS retry, scoped as
`ses:<MessageId>`), with `:<n>` for the n-th recipient of a per-recipient event; a bare SES event
without its SNS envelope gets an id derived from its content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

import orjson

from schemas.adapters import machine
from schemas.adapters.base import (
    Conversion,
    convert_json_body,
    derived_event_id,
    email_identity,
    identifier,
    iso_to_datetime,
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

__all__ = ["SNS_CONTROL_TYPES", "SOURCE", "convert", "convert_body"]

SOURCE: Final = "ses"

SNS_CONTROL_TYPES: Final = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})
"""SNS messages about the subscription itself, which carry no SES event."""

_NOT_CONVERTED: Final[dict[str, str]] = {
    "DeliveryDelay": "a temporary delay; SES retries and reports the final outcome",
    "Rendering Failure": "the template failed to render: not sent",
    "Received": "an inbound email, not an event about a sent one",
    "AmazonSnsSubscriptionSucceeded": "SES confirming the SNS subscription, not an email event",
}
_BOUNCE_KINDS: Final = {"Permanent": "hard", "Transient": "soft", "Undetermined": "soft"}


def convert_body(
    body: bytes | str, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from a raw SNS message body (or a bare SES event)."""
    return convert_json_body(body, convert, received_at=received_at, machine_ranges=machine_ranges)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Iterable[str] = ()
) -> Conversion:
    """Events from a parsed SNS `Notification` whose `Message` is an SES event, or from a bare
    SES event object. The signature is checked by the caller (`stream.web.sns`)."""
    result = Conversion()
    if not isinstance(payload, dict):
        result.reject("", "?", "not a JSON object")
        return result
    sns_id: str | None = None
    sns_time: datetime | None = None
    event: Any = payload
    if "Type" in payload:
        kind = payload.get("Type")
        if kind != "Notification":
            reason = (
                "an SNS subscription message, not an SES event"
                if kind in SNS_CONTROL_TYPES
                else f"unknown SNS message type {str(kind)[:64]!r}"
            )
            result.reject("", kind, reason)
            return result
        sns_id = identifier(payload.get("MessageId"))
        sns_time = iso_to_datetime(payload.get("Timestamp"))
        try:
            event = orjson.loads(payload.get("Message") or "")
        except (orjson.JSONDecodeError, TypeError):
            result.reject("Message", "?", "the SNS Message is not an SES event (not JSON)")
            return result
    if not isinstance(event, dict):
        result.reject("Message", "?", "the SNS Message is not a JSON object")
        return result
    _Reader(event, sns_id, sns_time or received_at, tuple(machine_ranges), result).read()
    return result


class _Reader:
    """Turns one SES event into events, adding each to `result`."""

    def __init__(
        self,
        event: dict[str, Any],
        sns_id: str | None,
        fallback_time: datetime,
        ranges: tuple[str, ...],
        result: Conversion,
    ) -> None:
        self.event = event
        self.kind = event.get("eventType") or event.get("notificationType")
        mail = event.get("mail")
        self.mail: dict[str, Any] = mail if isinstance(mail, dict) else {}
        self.sns_id = sns_id
        self.fallback_time = fallback_time
        self.ranges = ranges
        self.result = result

    def read(self) -> None:  # noqa: PLR0911 - one branch per SES event type
        kind = self.kind
        detail = self._detail()
        match kind:
            case "Send":
                return self._per_recipient(self.mail.get("destination"), EmailSent, {})
            case "Delivery":
                return self._per_recipient(detail.get("recipients"), EmailDelivered, {})
            case "Bounce":
                return self._bounce(detail)
            case "Complaint":
                return self._complaint(detail)
            case "Open":
                return self._engagement(detail, EmailOpened, {})
            case "Click":
                url = text(detail.get("link"), 4096)
                if url is None:
                    self.result.reject("", kind, "click without a link")
                    return None
                return self._engagement(detail, EmailClicked, {"url": url})
            case "Subscription":
                return self._subscription(detail)
        if kind == "Reject":
            why = text(detail.get("reason"), 128) or "no reason given"
            self.result.reject("", kind, f"SES rejected the message ({why}): not sent")
            return None
        reason = _NOT_CONVERTED.get(str(kind), f"unknown SES event type {str(kind)[:64]!r}")
        self.result.reject("", kind, reason)
        return None

    # --- shared parts

    def _detail(self) -> dict[str, Any]:
        """The event type's own object: `bounce`, `open`, `deliveryDelay`, ..."""
        kind = str(self.kind or "")
        name = kind[:1].lower() + kind[1:]
        found = self.event.get(name)
        return found if isinstance(found, dict) else {}

    def _common(self, address: object, detail: dict[str, Any], index: int | None) -> dict[str, Any]:
        stamp = detail.get("timestamp") if self.kind != "Send" else self.mail.get("timestamp")
        tags = self.mail.get("tags")
        lead = tags.get("lead_id") if isinstance(tags, dict) else None
        if isinstance(lead, list):
            lead = lead[0] if lead else None
        return {
            "event_id": self._event_id(index),
            "occurred_at": iso_to_datetime(stamp) or self.fallback_time,
            "lead_id": identifier(lead),
            "anonymous_id": email_identity(address),
            "source": SOURCE,
            "message_id": identifier(self.mail.get("messageId")),
        }

    def _event_id(self, index: int | None) -> str:
        part = "" if index is None else str(index)
        if self.sns_id is not None:
            scoped = vendor_event_id(SOURCE, f"{self.sns_id}:{part}" if part else self.sns_id)
            if scoped is not None:
                return scoped
        return derived_event_id(SOURCE, self.event, part=part)

    def _make(
        self,
        where: str,
        build: Callable[..., EventBase],
        address: object,
        index: int | None,
        **fields: Any,
    ) -> None:
        def make() -> EventBase:
            common = self._common(address, self._detail(), index)
            if common["anonymous_id"] is None and common["lead_id"] is None:
                raise skip("no recipient address and no lead_id tag")
            return build(**common, **fields)

        self.result.attempt(where, self.kind, make)

    def _recipients(self, items: object, key: str | None) -> list[object]:
        if not isinstance(items, list):
            return []
        if key is None:
            return list(items)
        return [item.get(key) if isinstance(item, dict) else None for item in items]

    def _per_recipient(
        self, items: object, build: Callable[..., EventBase], fields: dict[str, Any]
    ) -> None:
        addresses = self._recipients(items, None)
        if not addresses:
            self.result.reject("", self.kind, "no recipients")
        for index, address in enumerate(addresses):
            self._make(f"recipients[{index}]", build, address, index, **fields)

    def _single_recipient(self) -> object | None:
        destination = self.mail.get("destination")
        recipients = destination if isinstance(destination, list) else []
        if len(recipients) == 1:
            only: object = recipients[0]
            return only
        self.result.reject(
            "",
            self.kind,
            f"the message had {len(recipients)} recipients: SES does not say which one acted",
        )
        return None

    # --- event types

    def _bounce(self, detail: dict[str, Any]) -> None:
        kind = str(detail.get("bounceType") or "")
        bounce = _BOUNCE_KINDS.get(kind)
        if bounce is None:
            self.result.reject("", self.kind, f"unknown bounce type {kind[:32]!r}")
            return
        subtype = str(detail.get("bounceSubType") or "")
        items = detail.get("bouncedRecipients")
        if not isinstance(items, list) or not items:
            self.result.reject("", self.kind, "no bounced recipients")
            return
        for index, entry in enumerate(items):
            item: dict[str, Any] = entry if isinstance(entry, dict) else {}
            cause = item.get("diagnosticCode") or item.get("status")
            reason = f"{kind}/{subtype}" + (f": {cause}" if cause else "")
            self._make(
                f"recipients[{index}]",
                EmailBounced,
                item.get("emailAddress"),
                index,
                bounce=bounce,
                reason=text(reason, 4096),
            )

    def _complaint(self, detail: dict[str, Any]) -> None:
        if detail.get("complaintFeedbackType") == "not-spam":
            self.result.reject("", self.kind, "a not-spam feedback report")
            return
        if detail.get("complaintSubType") == "OnAccountSuppressionList":
            self.result.reject(
                "", self.kind, "the address is on the suppression list: not sent, no new complaint"
            )
            return
        addresses = self._recipients(detail.get("complainedRecipients"), "emailAddress")
        if not addresses:
            self.result.reject("", self.kind, "no complained recipients")
        for index, address in enumerate(addresses):
            self._make(f"recipients[{index}]", EmailSpamReported, address, index)

    def _engagement(
        self, detail: dict[str, Any], build: Callable[..., EventBase], fields: dict[str, Any]
    ) -> None:
        address = self._single_recipient()
        if address is None:
            return
        user_agent = text(detail.get("userAgent"), 4096)
        reason = machine.classify(
            user_agent=user_agent,
            ip=text(detail.get("ipAddress"), 64),
            user_agent_known="userAgent" in detail,
            extra_ranges=self.ranges,
        )
        self._make("", build, address, None, user_agent=user_agent, machine=reason, **fields)

    def _subscription(self, detail: dict[str, Any]) -> None:
        address = self._single_recipient()
        if address is None:
            return
        contact_list = identifier(detail.get("contactList"))
        new, old = detail.get("newTopicPreferences"), detail.get("oldTopicPreferences")
        new = new if isinstance(new, dict) else {}
        old = old if isinstance(old, dict) else {}
        why = text(detail.get("source"))
        if new.get("unsubscribeAll") is True and old.get("unsubscribeAll") is not True:
            self._make("", EmailUnsubscribed, address, None, list_id=contact_list, reason=why)
            return
        before = _topic_statuses(old)
        changed = [
            (topic, status)
            for topic, status in _topic_statuses(new).items()
            if before.get(topic) != status and status in ("OptIn", "OptOut")
        ]
        if not changed:
            self.result.reject("", self.kind, "no subscription changed")
        for index, (topic, status) in enumerate(changed):
            list_id = identifier(f"{contact_list}/{topic}" if contact_list else topic)
            if status == "OptOut":
                self._make(
                    f"topics[{index}]",
                    EmailUnsubscribed,
                    address,
                    index,
                    list_id=list_id,
                    reason=why,
                )
            else:
                self._make(f"topics[{index}]", EmailSubscribed, address, index, list_id=list_id)


def _topic_statuses(preferences: dict[str, Any]) -> dict[str, str]:
    topics = preferences.get("topicSubscriptionStatus")
    out: dict[str, str] = {}
    for item in topics if isinstance(topics, list) else []:
        if isinstance(item, dict) and (name := text(item.get("topicName"))):
            out[name] = str(item.get("subscriptionStatus"))
    return out
