"""Snowplow tracker protocol: GET pixel parameters (`/i?e=pv&...`), redirects (`/r/tp2?u=...`)
and tp2 POST bodies (`{"schema": ".../payload_data/...", "data": [{...}, ...]}`).

`e=pv` → `page_viewed`; self-describing events (`e=ue`) with the standard `link_click`,
`submit_form` and `site_search` schemas → `clicked`, `form_submitted`, `searched`; a redirect →
`clicked`. Page pings, structured events and other self-describing schemas are reported.
`uid` is the lead id; `duid` (or `tnuid`/`nuid`, or the collector's network user id cookie passed
as `network_user_id`) the anonymous id. The event time is `ttm` if sent, else the device time
corrected for the device clock (`received_at - (stm - dtm)`, Snowplow's derived timestamp), else
`dtm`, else `received_at`. The event id is `snowplow:<eid>`, or derived from the parameters
without an `eid`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from schemas.adapters.base import (
    Conversion,
    derived_event_id,
    epoch_to_datetime,
    identifier,
    parse_json_body,
    skip,
    text,
    utm_from_url,
    vendor_event_id,
)
from schemas.events import Clicked, EventBase, FormSubmitted, PageViewed, Searched

__all__ = ["SOURCE", "convert_body", "convert_params", "convert_pixel", "convert_tp2"]

SOURCE = "snowplow"

_UNCONVERTED = {
    "pp": "a page ping (time-on-page heartbeat); the page view carries the visit",
    "se": "structured events have no fixed meaning to map",
    "tr": "legacy ecommerce transactions are not lead signals",
    "ti": "legacy ecommerce transaction items are not lead signals",
}


def convert_body(
    body: bytes | str, *, received_at: datetime, network_user_id: str | None = None
) -> Conversion:
    """Events from a raw tp2 POST body."""
    result = Conversion()
    payload = parse_json_body(body, result)
    if payload is None:
        return result
    return convert_tp2(payload, received_at=received_at, network_user_id=network_user_id)


def convert_tp2(
    payload: Any, *, received_at: datetime, network_user_id: str | None = None
) -> Conversion:
    """Events from a parsed tp2 POST body (`payload_data`: a list of parameter objects)."""
    result = Conversion()
    schema = payload.get("schema") if isinstance(payload, dict) else None
    items = payload.get("data") if isinstance(payload, dict) else None
    if not (isinstance(schema, str) and "/payload_data/" in schema and isinstance(items, list)):
        result.reject("", "?", "not a Snowplow payload_data body")
        return result
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            result.reject(f"data[{index}]", "?", "not an object of string parameters")
            continue
        _convert_one(result, f"data[{index}]", item, received_at, network_user_id)
    return result


def convert_pixel(
    url_or_query: str, *, received_at: datetime, network_user_id: str | None = None
) -> Conversion:
    """Events from a GET pixel or redirect request: its full URL or just its query string."""
    query = urlsplit(url_or_query).query if "?" in url_or_query else url_or_query
    return convert_params(
        dict(parse_qsl(query, keep_blank_values=True)),
        received_at=received_at,
        network_user_id=network_user_id,
    )


def convert_params(
    params: Mapping[str, str], *, received_at: datetime, network_user_id: str | None = None
) -> Conversion:
    """Events from one request's tracker parameters."""
    result = Conversion()
    _convert_one(result, "", dict(params), received_at, network_user_id)
    return result


def _convert_one(
    result: Conversion,
    where: str,
    params: dict[str, str],
    received_at: datetime,
    network_user_id: str | None,
) -> None:
    kind = params.get("e") or ("redirect" if "u" in params else None)
    result.attempt(where, kind, lambda: [_event(params, received_at, network_user_id)])


def _occurred_at(params: dict[str, str], received_at: datetime) -> datetime:
    if true_time := epoch_to_datetime(params.get("ttm")):
        return true_time
    device, sent = epoch_to_datetime(params.get("dtm")), epoch_to_datetime(params.get("stm"))
    if device and sent:
        return received_at - max(sent - device, timedelta(0))
    return device or received_at


def _event(params: dict[str, str], received_at: datetime, network_user_id: str | None) -> EventBase:
    kind = params.get("e") or ("redirect" if "u" in params else None)
    if kind in _UNCONVERTED:
        raise skip(_UNCONVERTED[str(kind)])
    if kind not in ("pv", "ue", "redirect"):
        raise skip(f"unknown tracker event type e={str(kind)[:16]!r}")
    anonymous = (
        identifier(params.get("duid"))
        or identifier(params.get("tnuid"))
        or identifier(params.get("nuid"))
        or identifier(network_user_id)
    )
    common: dict[str, Any] = {
        "event_id": vendor_event_id(SOURCE, params.get("eid")) or derived_event_id(SOURCE, params),
        "occurred_at": _occurred_at(params, received_at),
        "lead_id": identifier(params.get("uid")),
        "anonymous_id": anonymous,
        "source": SOURCE,
        "session_id": identifier(params.get("sid")),
        "user_agent": text(params.get("ua"), 4096),
    }
    if common["lead_id"] is None and common["anonymous_id"] is None:
        raise skip("no user identifier: needs uid, duid, tnuid/nuid or the network user id")
    url = text(params.get("url"), 4096)
    if kind == "redirect":
        return Clicked(**common, href=text(params.get("u"), 4096))
    if kind == "pv":
        if url is None:
            raise skip("page view without url")
        return PageViewed(
            **common,
            url=url,
            path=urlsplit(url).path or None,
            referrer=text(params.get("refr"), 4096),
            title=text(params.get("page"), 4096),
            utm=utm_from_url(url),
        )
    return _self_describing(params, common, url)


def _self_describing(params: dict[str, str], common: dict[str, Any], url: str | None) -> EventBase:
    envelope = _json_param(params, "ue_px", "ue_pr")
    inner = envelope.get("data") if isinstance(envelope, dict) else None
    schema = inner.get("schema") if isinstance(inner, dict) else None
    data = inner.get("data") if isinstance(inner, dict) else None
    if not isinstance(schema, str) or not isinstance(data, dict):
        raise skip("self-describing event without a readable ue_px/ue_pr")
    name = schema.removeprefix("iglu:").split("/jsonschema/")[0]
    if name == "com.snowplowanalytics.snowplow/link_click":
        return Clicked(
            **common,
            url=url,
            target=text(data.get("elementId") or data.get("elementContent")),
            href=text(data.get("targetUrl"), 4096),
        )
    if name == "com.snowplowanalytics.snowplow/submit_form":
        elements: list[Any] = data.get("elements") or []
        if not isinstance(elements, list):
            raise skip("submit_form without an elements list")
        fields = {
            str(e["name"])[:128]: str(e.get("value") or "")[:4096]
            for e in elements
            if isinstance(e, dict) and e.get("name")
        }
        form_id = identifier(data.get("formId")) or "form"
        return FormSubmitted(**common, url=url, form_id=form_id, fields=fields)
    if name == "com.snowplowanalytics.snowplow/site_search":
        terms: list[Any] = data.get("terms") or []
        if not isinstance(terms, list):
            raise skip("site_search without a terms list")
        return Searched(**common, url=url, query=" ".join(map(str, terms))[:1024])
    raise skip(f"self-describing event {schema[:128]!r} has no Leadstream event type")


def _json_param(params: dict[str, str], encoded: str, plain: str) -> Any:
    try:
        if params.get(encoded):
            raw = params[encoded]
            return orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if params.get(plain):
            return orjson.loads(params[plain])
    except (binascii.Error, ValueError):
        return None
    return None
