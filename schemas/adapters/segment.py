"""Segment: `track`, `identify` and `page` calls (and `{"batch": [...]}` of them).

Both key styles are read: the current one (`type`, `userId`, `anonymousId`, `messageId`) and the
older one of the Email spec (`action`, `user_id`, `anonymous_id`, `message_id`). Track events of
the Email spec, a few B2B ones and the generic UI ones map to our types (see `TRACK_EVENTS`; names
are matched ignoring case and repeated spaces); any other track event is reported, as are
`group`, `alias` and `screen` calls. Without a `timestamp` the time of receipt is used; without a
`messageId` a stable id is derived from the call's content alone (`canonical_call`), so the same
call gets the same id whichever endpoint it came through. A `messageId` is scoped like every
vendor's own id: the event id is `segment:<messageId>`, whether Segment or a client of the
Segment-compatible API chose it.

Who did it: `userId` is the lead id. The anonymous id is `anonymousId` when the call has one, else
the person's email address as `email:<address>` (`base.email_identity`): an identify's
`traits.email`, else the `context.traits.email` any call may carry (the Email spec's "intended
recipient"). An explicit `anonymousId` wins over the address because it is the id the visitor's
earlier activity is held under; `userId` always names the lead. A call that names nobody but
carries an address is accepted: its activity is held under the address until it is linked.

Identify: with a `userId` it is an `identify` linking the lead to its anonymous id (the address,
when there is no `anonymousId`). When it has both an `anonymousId` and an address, a second
`identify` (same lead, the address as anonymous id, no traits) links the address too, so what
is reported by address (email platforms, calls with only `context.traits.email`) reaches the
lead. Without a `userId` it is a `profile_updated` of the anonymous id: a link needs a lead id,
so an anonymous id and an address are not linked to each other.

Other Segment-compatible sources (RudderStack) use `convert(..., source=...)`: their events carry
that source and their message ids are scoped by it (`<source>:<messageId>`). Identify traits are
`traits`, else `context.traits` (where RudderStack puts them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
    utm_from_url,
    vendor_event_id,
)
from schemas.events import (
    Clicked,
    CtaClicked,
    DemoRequested,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSent,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
    FormSubmitted,
    Identify,
    PageViewed,
    ProfileUpdated,
    Searched,
    Traits,
    TrialRequested,
    VideoViewed,
    WebinarAttended,
)

__all__ = [
    "SOURCE",
    "TRACK_EVENTS",
    "canonical_call",
    "convert",
    "convert_body",
    "track_event_type",
    "traits_from_segment",
]

SOURCE = "segment"

TRACK_EVENTS: dict[str, str] = {
    "Email Sent": "email_sent",
    "Email Delivered": "email_delivered",
    "Email Opened": "email_opened",
    "Email Link Clicked": "email_clicked",
    "Email Bounced": "email_bounced",
    "Email Marked as Spam": "email_spam_reported",
    "Unsubscribed": "email_unsubscribed",
    "Subscribed": "email_subscribed",
    "Signed Up": "form_submitted",
    "Form Submitted": "form_submitted",
    "Demo Requested": "demo_requested",
    "Trial Started": "trial_requested",
    "Trial Requested": "trial_requested",
    "Products Searched": "searched",
    "Video Playback Completed": "video_viewed",
    "Video Content Completed": "video_viewed",
    "Webinar Attended": "webinar_attended",
    # Generic UI events. Segment's specs define none, but its documentation uses these names:
    # "Button Clicked" (spec/track.md, "a UI component") and the older "Clicked Button" (many
    # destination pages), "Link Clicked" (the Marketo source), "Form Submitted" (above). "CTA
    # Clicked" is the common name for a call to action, which has an event type of its own.
    "Button Clicked": "clicked",
    "Clicked Button": "clicked",
    "Link Clicked": "clicked",
    "CTA Clicked": "cta_clicked",
}
"""Segment track event name → our event type."""

_TRACK_EVENTS_FOLDED = {name.casefold(): ours for name, ours in TRACK_EVENTS.items()}
_TARGET_KEYS = ("label", "text", "button_text", "element_id", "button_id", "id", "name", "title")
"""Where a click's element (`clicked.target`) is looked for in the track's properties."""
_HREF_KEYS = ("href", "link_url", "url")
_CTA_ID_KEYS = ("cta_id", "id")
_CTA_LABEL_KEYS = ("label", "text", "cta", "title", "name")

_SIMPLE_EMAIL: dict[str, type[EventBase]] = {
    "email_sent": EmailSent,
    "email_delivered": EmailDelivered,
    "email_spam_reported": EmailSpamReported,
    "email_subscribed": EmailSubscribed,
    "email_unsubscribed": EmailUnsubscribed,
}


def convert_body(body: bytes | str, *, received_at: datetime) -> Conversion:
    """Events from a raw Segment HTTP body (one call or a batch)."""
    return convert_json_body(body, convert, received_at=received_at)


def convert(
    payload: Any,
    *,
    received_at: datetime,
    source: str = SOURCE,
    machine_ranges: Sequence[str] = (),
) -> Conversion:
    """Events from a parsed Segment call, or a `{"batch": [...]}` of calls, as `source`'s.

    A call whose `context.userAgent` is a scanner's or a program's, or whose `context.ip` is in
    a mail-security gateway's range (`machine.SCANNER_RANGES`, `machine_ranges`), makes events
    marked `machine` (a call without a user agent says nothing: server-side libraries send none).
    """
    result = Conversion()
    batch = payload.get("batch") if isinstance(payload, dict) else None
    calls: list[tuple[str, Any]] = (
        [(f"batch[{i}]", call) for i, call in enumerate(batch)]
        if isinstance(batch, list)
        else [("", payload)]
    )
    for where, call in calls:
        if not isinstance(call, dict):
            result.reject(where, "?", "not a JSON object")
            continue
        kind = _get(call, "type", "action")
        label = f"{kind} {call.get('event')!r}" if kind == "track" else kind
        result.attempt(
            where,
            label,
            functools.partial(_event, call, received_at, source, tuple(machine_ranges)),
        )
    return result


def track_event_type(name: object) -> str | None:
    """Our event type of a Segment track event name (`TRACK_EVENTS`, ignoring case and repeated
    spaces), or None."""
    if not isinstance(name, str):
        return None
    return _TRACK_EVENTS_FOLDED.get(" ".join(name.split()).casefold())


_NOT_CONTENT = frozenset({"type", "action", "writeKey"})


def canonical_call(call: dict[str, Any]) -> dict[str, Any]:
    """The call as its derived event id sees it: its content, its type under `type` whichever
    key style named it (`type`, the Email spec's `action`, or the path of `/v1/track`), and
    without `writeKey` (the sender's credential, which a batch carries once for all its calls).
    """
    content = {key: value for key, value in call.items() if key not in _NOT_CONTENT}
    return {**content, "type": _get(call, "type", "action")}


def _get(call: dict[str, Any], *names: str) -> Any:
    for name in names:
        if call.get(name) is not None:
            return call[name]
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _email(call: dict[str, Any], kind: object, context: dict[str, Any]) -> str | None:
    """The person's email identity: an identify's `traits.email`, else `context.traits.email`
    (an address that makes no usable id, e.g. one with a space, is ignored)."""
    own = _dict(call.get("traits")).get("email") if kind == "identify" else None
    context_email = _dict(context.get("traits")).get("email")
    return identifier(email_identity(own)) or identifier(email_identity(context_email))


def _event(
    call: dict[str, Any], received_at: datetime, source: str, machine_ranges: tuple[str, ...] = ()
) -> EventBase | list[EventBase]:
    kind = _get(call, "type", "action")
    context = _dict(call.get("context"))
    anonymous_id = identifier(_get(call, "anonymousId", "anonymous_id"))
    email = _email(call, kind, context)
    common: dict[str, Any] = {
        "event_id": vendor_event_id(source, _get(call, "messageId", "message_id"))
        or derived_event_id(source, canonical_call(call)),
        "occurred_at": iso_to_datetime(_get(call, "timestamp", "originalTimestamp"))
        or iso_to_datetime(_get(call, "receivedAt", "sentAt"))
        or received_at,
        "lead_id": identifier(_get(call, "userId", "user_id")),
        "anonymous_id": anonymous_id or email,
        "source": source,
        "machine": machine.classify(
            user_agent=text(context.get("userAgent") or context.get("user_agent"), 4096),
            ip=text(context.get("ip")),
            user_agent_known=False,
            extra_ranges=machine_ranges,
        ),
    }
    if kind not in ("track", "identify", "page"):
        raise skip(f"Segment {str(kind)[:32]!r} calls are not converted (track, identify, page)")
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("neither userId nor anonymousId (nor an email address in its traits)")
    if kind == "identify":
        traits = traits_from_segment(_dict(call.get("traits")) or _dict(context.get("traits")))
        if common["lead_id"] is None:
            return ProfileUpdated(**common, traits=traits)
        identified = Identify(**common, traits=traits)
        if email is None or email == common["anonymous_id"]:
            return identified
        link = {
            **common,
            "event_id": derived_event_id(source, canonical_call(call), part="email identity"),
            "anonymous_id": email,
        }
        return [identified, Identify(**link)]
    if kind == "page":
        return _page(call, context, common)
    return _track(call, context, common)


def _page(call: dict[str, Any], context: dict[str, Any], common: dict[str, Any]) -> EventBase:
    properties = _dict(call.get("properties"))
    page = _dict(context.get("page"))
    url = text(properties.get("url") or page.get("url"), 4096)
    if url is None:
        raise skip("page call without a url")
    return PageViewed(
        **common,
        url=url,
        path=text(properties.get("path") or page.get("path"), 4096),
        referrer=text(properties.get("referrer") or page.get("referrer"), 4096),
        title=text(properties.get("title") or page.get("title") or call.get("name"), 4096),
        utm=utm_from_url(url, _dict(context.get("campaign"))),
        user_agent=text(context.get("userAgent") or context.get("user_agent"), 4096),
    )


def _track(  # noqa: PLR0911, PLR0912 - one branch per event type
    call: dict[str, Any], context: dict[str, Any], common: dict[str, Any]
) -> EventBase:
    name = call.get("event")
    ours = track_event_type(name)
    if ours is None:
        raise skip(f"track event {str(name)[:64]!r} has no Leadstream event type")
    props = _dict(call.get("properties"))
    email: dict[str, Any] = {
        "message_id": identifier(props.get("email_id")),
        "campaign_id": identifier(props.get("campaign_id")),
        "list_id": identifier(props.get("list_id")),
    }
    if ours in _SIMPLE_EMAIL:
        return _SIMPLE_EMAIL[ours](**common, **email)
    agent = text(context.get("userAgent") or context.get("user_agent"), 4096)
    if ours in ("clicked", "cta_clicked"):
        return _click(ours, props, context, common, agent)
    match ours:
        case "email_opened":
            return EmailOpened(**common, **email, user_agent=agent)
        case "email_clicked":
            url = text(props.get("link_url"), 4096)
            if url is None:
                raise skip("Email Link Clicked without link_url")
            return EmailClicked(**common, **email, url=url, user_agent=agent)
        case "email_bounced":
            kind = props.get("bounce_type") or props.get("type")
            return EmailBounced(
                **common,
                **email,
                bounce="hard" if kind == "hard" else "soft",
                reason=None if kind in ("hard", "soft") else "bounce kind not reported (soft)",
            )
        case "form_submitted":
            fields = {
                key[:128]: str(value)[:4096]
                for key, value in props.items()
                if isinstance(value, str | int | float) and not isinstance(value, bool)
            }
            form_id = identifier(props.get("form_id")) or _slug(str(name))
            return FormSubmitted(**common, form_id=form_id, form_name=name, fields=fields)
        case "demo_requested":
            return DemoRequested(**common, product=text(props.get("product")))
        case "trial_requested":
            return TrialRequested(
                **common, product=text(props.get("product")), plan=text(props.get("plan"))
            )
        case "searched":
            return Searched(**common, query=str(props.get("query", ""))[:1024])
        case "video_viewed":
            video = identifier(props.get("asset_id") or props.get("content_asset_id"))
            if video is None:
                raise skip("video event without asset_id")
            return VideoViewed(**common, video_id=video, title=text(props.get("title"), 4096))
        case "webinar_attended":
            webinar = identifier(props.get("webinar_id"))
            if webinar is None:
                raise skip("webinar event without webinar_id")
            return WebinarAttended(
                **common,
                webinar_id=webinar,
                title=text(props.get("title"), 4096),
            )
    raise AssertionError(ours)  # pragma: no cover - TRACK_EVENTS and the cases agree


def _first_text(props: dict[str, Any], keys: tuple[str, ...], limit: int = 256) -> str | None:
    return next((t for key in keys if (t := text(props.get(key), limit)) is not None), None)


def _click(
    ours: str,
    props: dict[str, Any],
    context: dict[str, Any],
    common: dict[str, Any],
    agent: str | None,
) -> EventBase:
    """A generic UI click: the page it was on (`context.page.url`), what was clicked, where to."""
    page: dict[str, Any] = {
        "url": text(_dict(context.get("page")).get("url"), 4096),
        "user_agent": agent,
        "href": _first_text(props, _HREF_KEYS, 4096),
    }
    if ours == "clicked":
        return Clicked(**common, **page, target=_first_text(props, _TARGET_KEYS))
    label = _first_text(props, _CTA_LABEL_KEYS)
    cta_id = next((i for key in _CTA_ID_KEYS if (i := identifier(props.get(key)))), None)
    if cta_id is None and label is None:
        raise skip("CTA Clicked without cta_id, id or a label to name the call to action")
    return CtaClicked(**common, **page, cta_id=cta_id or _slug(str(label)), label=label)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "form"


def traits_from_segment(traits: dict[str, Any]) -> Traits:
    """Our fit attributes from Segment's reserved traits; other scalar traits go to `custom`."""
    company = traits.get("company")
    company_fields = _dict(company)
    address = _dict(traits.get("address"))
    first = text(traits.get("firstName") or traits.get("first_name"))
    last = text(traits.get("lastName") or traits.get("last_name"))
    name = text(traits.get("name"))
    if name and not (first or last):
        first, _, rest = name.partition(" ")
        last = rest or None
    country = text(address.get("country"))
    birthday = iso_to_datetime(traits.get("birthday")) if traits.get("birthday") else None
    reserved = {
        "email",
        "firstName",
        "first_name",
        "lastName",
        "last_name",
        "name",
        "phone",
        "title",
        "company",
        "industry",
        "employees",
        "address",
        "age",
        "birthday",
    }
    custom = {
        key[:128]: value[:4096] if isinstance(value, str) else value
        for key, value in traits.items()
        if key not in reserved
        and isinstance(value, str | bool | int | float)
        and (not isinstance(value, int) or isinstance(value, bool) or abs(value) <= 2**53)
    }
    if country and len(country) != 2:
        custom["address_country"] = country
    employees = company_fields.get("employee_count", traits.get("employees"))
    return Traits(
        email=text(traits.get("email"), 320),
        first_name=first,
        last_name=last,
        phone=text(traits.get("phone")),
        job_title=text(traits.get("title")),
        company=text(company if isinstance(company, str) else company_fields.get("name")),
        industry=text(traits.get("industry") or company_fields.get("industry")),
        company_size=employees
        if isinstance(employees, int) and not isinstance(employees, bool)
        else None,
        country=country.upper() if country and len(country) == 2 else None,
        region=text(address.get("state")),
        age=_int(traits.get("age")),
        birth_year=birthday.year if birthday else None,
        custom=dict(list(custom.items())[:100]),
    )
