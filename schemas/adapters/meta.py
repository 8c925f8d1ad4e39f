"""Meta (Facebook, Instagram) Lead Ads: Page `leadgen` webhooks and the lead they name.

A notification (`{"object": "page", "entry": [{"id", "time", "changes": [{"field": "leadgen",
"value": {"leadgen_id", "page_id", "form_id", "ad_id", "adgroup_id", "created_time"}}]}]}`) only
names the lead: `notices` reads each `leadgen` change into a lead to fetch and reports every
other change (another field, another object). Ids may come as JSON numbers or strings. The
collector fetches each lead from the Graph API (`GET /<version>/<leadgen_id>`:
`stream.web.lead_apis`) and `convert_lead` makes two events of it:

- `social_form_submitted`: network `facebook` (`instagram` when the lead says `platform: ig`),
  `account_id` the Page, `form_id`, `ad_id` (the notification's, else the lead's), `campaign_id`
  (the lead's, when the token may read it), `fields` the `field_data` answers (several values
  joined with commas);
- `profile_updated` with the answers as traits (`schemas.adapters.lead_forms`).

The person is `email:<address>` (the `email` answer, else `work_email`); a lead without one is
reported (Meta gives no other id of the person). Event ids are `meta:<leadgen_id>` and
`meta:<leadgen_id>/profile`; the time is the lead's `created_time`, else the notification's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.adapters.base import (
    Conversion,
    derived_event_id,
    email_identity,
    epoch_to_datetime,
    identifier,
    iso_to_datetime,
    skip,
    vendor_event_id,
)
from schemas.adapters.lead_forms import answer_email, traits_from_answers
from schemas.events import EventBase, ProfileUpdated, SocialFormSubmitted

__all__ = ["SOURCE", "LeadNotice", "convert_lead", "notices"]

SOURCE = "meta"


@dataclass(frozen=True)
class LeadNotice:
    """A lead a `leadgen` change names: what to fetch, and the change's value."""

    where: str
    leadgen_id: str
    page_id: str | None
    value: dict[str, Any] = field(compare=False)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def notices(payload: Any) -> tuple[list[LeadNotice], Conversion]:
    """The leads to fetch from a parsed notification body, and what was reported instead."""
    result = Conversion()
    found: list[LeadNotice] = []
    if not isinstance(payload, dict):
        result.reject("", "?", "not a JSON object")
        return found, result
    if payload.get("object") != "page":
        result.reject("", payload.get("object"), "not a Page notification (object is not page)")
        return found, result
    for i, entry in enumerate(_list(payload.get("entry"))):
        for j, item in enumerate(_list(_dict(entry).get("changes"))):
            where = f"entry[{i}].changes[{j}]"
            change = _dict(item)
            value = _dict(change.get("value"))
            if change.get("field") != "leadgen":
                result.reject(where, change.get("field"), "not a leadgen change")
            elif (leadgen_id := identifier(value.get("leadgen_id"))) is None:
                result.reject(where, "leadgen", "no leadgen_id")
            else:
                page = identifier(value.get("page_id")) or identifier(_dict(entry).get("id"))
                found.append(LeadNotice(where, leadgen_id, page, value))
    if not found and not result.rejected:
        result.reject("", "page", "no changes")
    return found, result


def _answers(lead: dict[str, Any]) -> dict[str, str]:
    answers: dict[str, str] = {}
    for item in _list(lead.get("field_data")):
        name = _dict(item).get("name")
        if isinstance(name, str) and name.strip():
            values = [str(v) for v in _list(item.get("values")) if v is not None]
            answers[name.strip()[:128]] = ", ".join(values)[:4096]
    return answers


def _event_id(vendor_id: str) -> str:
    return vendor_event_id(SOURCE, vendor_id) or derived_event_id(SOURCE, vendor_id)


def convert_lead(notice: LeadNotice, lead: dict[str, Any], *, received_at: datetime) -> Conversion:
    """The events of one fetched lead: the form submission and the profile it gives."""
    result = Conversion()
    result.attempt(notice.where, "leadgen", lambda: _events(notice, lead, received_at))
    return result


def _events(notice: LeadNotice, lead: dict[str, Any], received_at: datetime) -> list[EventBase]:
    answers = _answers(lead)
    person = email_identity(answer_email(answers))
    if person is None:
        raise skip("the lead has no email answer")
    value = notice.value
    form_id = identifier(value.get("form_id")) or identifier(lead.get("form_id"))
    if form_id is None:
        raise skip("the lead names no form")
    common: dict[str, Any] = {
        "occurred_at": iso_to_datetime(lead.get("created_time"))
        or epoch_to_datetime(value.get("created_time"))
        or received_at,
        "anonymous_id": person,
        "source": SOURCE,
    }
    submitted = SocialFormSubmitted(
        **common,
        event_id=_event_id(notice.leadgen_id),
        network="instagram" if lead.get("platform") == "ig" else "facebook",
        account_id=notice.page_id,
        form_id=form_id,
        ad_id=identifier(value.get("ad_id") or value.get("adgroup_id"))
        or identifier(lead.get("ad_id")),
        campaign_id=identifier(lead.get("campaign_id")),
        fields=dict(list(answers.items())[:200]),
    )
    profile = ProfileUpdated(
        **common,
        event_id=_event_id(f"{notice.leadgen_id}/profile"),
        traits=traits_from_answers(answers),
    )
    return [submitted, profile]
