"""Mailchimp audience webhooks: `application/x-www-form-urlencoded` with bracketed keys.

`subscribe` → `email_subscribed` and `profile_updated` (the merge fields), `unsubscribe` →
`email_unsubscribed` (or `email_spam_reported` when the reason is `abuse`), `profile` →
`profile_updated`, `upemail` → `profile_updated` of the old address with the new one, `cleaned`
→ a hard `email_bounced` (or `email_spam_reported` for `abuse`). `campaign` (a sending status,
not about a person) is reported. The person is `email:<address>`. `fired_at` is taken as UTC.
Mailchimp sends no event id: a stable one is derived from the fields, so retries dedupe (it is
a uuid5 of the source and the fields, so it cannot collide with another source's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from schemas.adapters.base import (
    Conversion,
    derived_event_id,
    email_identity,
    identifier,
    skip,
    text,
)
from schemas.events import (
    EmailBounced,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
    ProfileUpdated,
    Traits,
)

__all__ = ["SOURCE", "convert", "parse_form"]

SOURCE = "mailchimp"
_KINDS = frozenset({"subscribe", "unsubscribe", "profile", "upemail", "cleaned"})


def parse_form(body: bytes | str) -> dict[str, str]:
    """The form fields of a Mailchimp webhook body (`data[merges][FNAME]` stays one flat key)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def convert(form: bytes | str | Mapping[str, str], *, received_at: datetime) -> Conversion:
    """Events from a Mailchimp webhook: the raw form body, or its fields already parsed."""
    fields = dict(form) if isinstance(form, Mapping) else parse_form(form)
    result = Conversion()
    kind = fields.get("type")
    result.attempt("", kind, lambda: _events(fields, received_at))
    return result


def _fired_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _traits(fields: Mapping[str, str], email: str | None) -> Traits:
    custom: dict[str, Any] = {}
    if interests := text(fields.get("data[merges][INTERESTS]"), 4096):
        custom["mailchimp_interests"] = interests
    return Traits(
        email=email,
        first_name=text(fields.get("data[merges][FNAME]")),
        last_name=text(fields.get("data[merges][LNAME]")),
        custom=custom,
    )


def _events(  # noqa: PLR0911 - one return per webhook type
    fields: dict[str, str], received_at: datetime
) -> list[EventBase]:
    kind = fields.get("type")
    if kind == "campaign":
        raise skip("a campaign's sending status, not an event about a person")
    if kind not in _KINDS:
        raise skip(f"unknown Mailchimp webhook type {str(kind)[:64]!r}")
    email = text(fields.get("data[old_email]") if kind == "upemail" else fields.get("data[email]"))
    common: dict[str, Any] = {
        "event_id": derived_event_id(SOURCE, fields),
        "occurred_at": _fired_at(fields.get("fired_at")) or received_at,
        "anonymous_id": email_identity(email),
        "source": SOURCE,
    }
    if common["anonymous_id"] is None:
        raise skip("no email address")
    list_id = identifier(fields.get("data[list_id]"))
    campaign_id = identifier(fields.get("data[campaign_id]"))
    reason = fields.get("data[reason]")
    match kind:
        case "subscribe":
            profile = {**common, "event_id": derived_event_id(SOURCE, fields, part="profile")}
            return [
                EmailSubscribed(**common, list_id=list_id),
                ProfileUpdated(**profile, traits=_traits(fields, email)),
            ]
        case "unsubscribe":
            if reason == "abuse":
                return [EmailSpamReported(**common, list_id=list_id, campaign_id=campaign_id)]
            action = fields.get("data[action]")
            why = "/".join(part for part in (action, reason) if part) or None
            return [
                EmailUnsubscribed(**common, list_id=list_id, campaign_id=campaign_id, reason=why)
            ]
        case "profile":
            return [ProfileUpdated(**common, traits=_traits(fields, email))]
        case "upemail":
            return [ProfileUpdated(**common, traits=Traits(email=fields.get("data[new_email]")))]
        case "cleaned":
            if reason == "abuse":
                return [EmailSpamReported(**common, list_id=list_id, campaign_id=campaign_id)]
            return [
                EmailBounced(
                    **common,
                    list_id=list_id,
                    campaign_id=campaign_id,
                    bounce="hard",
                    reason=f"cleaned: {reason}" if reason else "cleaned",
                )
            ]
    raise AssertionError(kind)  # pragma: no cover - _KINDS lists every case above
