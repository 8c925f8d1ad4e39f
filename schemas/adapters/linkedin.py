"""LinkedIn Lead Gen Forms: lead notifications (Lead Sync webhooks) and the lead they name.

A notification only names the form response: `{"type": "LEAD_ACTION", "leadGenFormResponse":
"urn:li:leadGenFormResponse:<id>", "leadGenForm", "owner", "associatedEntity", "leadType",
"leadAction": "CREATED" | "DELETED", "occurredAt"}`. `notices` reads the notifications (one, or
a list) into the responses to fetch and reports the rest: other `type`s, and `DELETED` (the
member withdrew the lead, e.g. unregistered from an event; nothing is scored or erased for it).
The collector then fetches each response from LinkedIn's `leadFormResponses` API (with the form's
questions: `stream.web.lead_apis`) and `convert_lead` makes two events of it:

- `social_form_submitted` (network `linkedin`): `form_id` is the form's URN without its version
  (`urn:li:leadGenForm:<id>`), `form_name` the form's name, `account_id` the owner (sponsored
  account or organization URN), `ad_id` the creative the lead came from
  (`associatedEntity.associatedCreative`), `campaign_id` the sponsored campaign
  (`leadMetadata.sponsoredLeadMetadata.campaign`), `fields` the answers (hidden fields too);
- `profile_updated` with the answers as traits (`schemas.adapters.lead_forms`) and the member
  (`submitter`) as `custom.linkedin_member`.

Answers are named by the question's `predefinedField` lower-cased (`EMAIL` → `email`), else by
the question's `name`, else `question_<questionId>`; a multiple-choice answer is its options'
text (or their numbers, when the form does not say) joined with commas. The person is
`email:<address>` (the `EMAIL` answer, else `WORK_EMAIL`), else the member's URN. A test lead
(`testLead: true`, from the form's preview) is converted with `machine: "vendor flag: testLead"`,
so it is shown but never scored. Event ids are `linkedin:<response id>` and
`linkedin:<response id>/profile`; the time is `submittedAt`, else the notification's
`occurredAt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.adapters.base import (
    Conversion,
    derived_event_id,
    email_identity,
    epoch_to_datetime,
    identifier,
    skip,
    text,
    vendor_event_id,
)
from schemas.adapters.lead_forms import answer_email, traits_from_answers
from schemas.events import EventBase, ProfileUpdated, SocialFormSubmitted

__all__ = ["NETWORK", "SOURCE", "LeadNotice", "convert_lead", "form_id_of", "notices"]

SOURCE = "linkedin"
NETWORK = "linkedin"
RESPONSE_URN = "urn:li:leadGenFormResponse:"
_FORM = re.compile(r"urn:li:leadGenForm:(\d+)")


@dataclass(frozen=True)
class LeadNotice:
    """A created lead a notification names: what to fetch, and the notification itself."""

    where: str
    response_id: str
    """The form response's id (the notification's URN without `urn:li:leadGenFormResponse:`)."""
    notification: dict[str, Any] = field(compare=False)


def notices(payload: Any) -> tuple[list[LeadNotice], Conversion]:
    """The leads to fetch from a parsed notification body, and what was reported instead."""
    result = Conversion()
    found: list[LeadNotice] = []
    items = list(enumerate(payload)) if isinstance(payload, list) else [(None, payload)]
    for index, item in items:
        where = "" if index is None else f"[{index}]"
        if not isinstance(item, dict):
            result.reject(where, "?", "not a JSON object")
            continue
        kind = f"{item.get('type')} {item.get('leadAction')}"
        if item.get("type") != "LEAD_ACTION":
            result.reject(where, kind, f"notification type {str(item.get('type'))[:64]!r}")
        elif item.get("leadAction") == "DELETED":
            result.reject(where, kind, "the member deleted the lead: nothing to score")
        elif item.get("leadAction") != "CREATED":
            result.reject(where, kind, "unknown leadAction")
        elif (response_id := _response_id(item.get("leadGenFormResponse"))) is None:
            result.reject(where, kind, "no leadGenFormResponse URN")
        else:
            found.append(LeadNotice(where, response_id, item))
    return found, result


def _response_id(urn: object) -> str | None:
    if isinstance(urn, str) and urn.startswith(RESPONSE_URN):
        return identifier(urn[len(RESPONSE_URN) :])
    return None


def form_id_of(value: object) -> str | None:
    """The form's id in a (versioned) lead form URN: `7234246` of
    `urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7234246,1)`."""
    found = _FORM.search(value) if isinstance(value, str) else None
    return found.group(1) if found else None


def _event_id(vendor_id: str) -> str:
    return vendor_event_id(SOURCE, vendor_id) or derived_event_id(SOURCE, vendor_id)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _localized(value: object) -> str | None:
    strings = _dict(_dict(value).get("localized"))
    return next((text(v) for v in strings.values() if text(v)), None)


def _answers(response: dict[str, Any], form: dict[str, Any]) -> dict[str, str]:
    questions = {
        q.get("questionId"): q
        for q in _list(_dict(form.get("content")).get("questions"))
        if isinstance(q, dict)
    }
    answers: dict[str, str] = {}
    for answer in _list(_dict(response.get("formResponse")).get("answers")):
        if not isinstance(answer, dict):
            continue
        question = _dict(questions.get(answer.get("questionId")))
        predefined = question.get("predefinedField")
        name = (
            predefined.lower()
            if isinstance(predefined, str) and predefined
            else text(question.get("name"), 128) or f"question_{answer.get('questionId')}"
        )
        details = _dict(answer.get("answerDetails"))
        if (value := _dict(details.get("textQuestionAnswer")).get("answer")) is not None:
            answers[name] = str(value)[:4096]
        elif (chosen := _dict(details.get("multipleChoiceAnswer")).get("options")) is not None:
            answers[name] = _options(chosen, question)[:4096]
    for hidden in _list(form.get("hiddenFields")):
        if isinstance(hidden, dict) and text(hidden.get("name"), 128):
            answers.setdefault(str(hidden["name"])[:128], str(hidden.get("value", ""))[:4096])
    return answers


def _options(chosen: object, question: dict[str, Any]) -> str:
    details = _dict(_dict(question.get("questionDetails")).get("multipleChoiceQuestionDetails"))
    labels = {
        option.get("id", index): _localized(option.get("text"))
        for index, option in enumerate(_list(details.get("options")))
        if isinstance(option, dict)
    }
    return ", ".join(str(labels.get(o) or o) for o in _list(chosen))


def convert_lead(
    notice: LeadNotice,
    response: dict[str, Any],
    form: dict[str, Any] | None,
    *,
    received_at: datetime,
) -> Conversion:
    """The events of one fetched lead: the form submission and the profile it gives."""
    result = Conversion()
    where = notice.where or "lead"
    result.attempt(
        where, "LEAD_ACTION CREATED", lambda: _events(notice, response, form, received_at)
    )
    return result


def _events(
    notice: LeadNotice, response: dict[str, Any], form: dict[str, Any] | None, received_at: datetime
) -> list[EventBase]:
    form = form or _dict(response.get("form"))
    answers = _answers(response, form)
    submitter = identifier(response.get("submitter"))
    person = email_identity(answer_email(answers)) or submitter
    if person is None:
        raise skip("the lead has no email answer and no submitter")
    notification = notice.notification
    form_urn = response.get("versionedLeadGenFormUrn") or notification.get("leadGenForm")
    form_number = form_id_of(form_urn) or identifier(form.get("id"))
    if form_number is None:
        raise skip("the lead names no form")
    owner = _dict(response.get("owner")) or _dict(notification.get("owner"))
    entity = _dict(response.get("associatedEntity")) or _dict(notification.get("associatedEntity"))
    metadata = _dict(_dict(response.get("leadMetadata")).get("sponsoredLeadMetadata"))
    common: dict[str, Any] = {
        "occurred_at": epoch_to_datetime(response.get("submittedAt"))
        or epoch_to_datetime(notification.get("occurredAt"))
        or received_at,
        "anonymous_id": person,
        "source": SOURCE,
    }
    submitted = SocialFormSubmitted(
        **common,
        event_id=_event_id(notice.response_id),
        network=NETWORK,
        account_id=identifier(owner.get("sponsoredAccount") or owner.get("organization")),
        form_id=f"urn:li:leadGenForm:{form_number}",
        form_name=text(form.get("name")),
        ad_id=identifier(entity.get("associatedCreative") or entity.get("sponsoredCreative")),
        campaign_id=identifier(metadata.get("campaign")),
        fields=dict(list(answers.items())[:200]),
        machine="vendor flag: testLead" if response.get("testLead") is True else None,
    )
    custom = {"linkedin_member": submitter} if submitter else {}
    profile = ProfileUpdated(
        **common,
        event_id=_event_id(f"{notice.response_id}/profile"),
        traits=traits_from_answers(answers, custom=custom),
    )
    return [submitted, profile]
