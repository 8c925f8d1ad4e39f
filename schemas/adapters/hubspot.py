"""HubSpot webhooks (CRM change events): a JSON array of subscription events.

`contact.propertyChange` of `lifecyclestage` → `stage_set` when a person made the change (changes
by integrations, workflows or the API are reported: they may echo Leadstream's own writes),
`contact.deletion` and `contact.privacyDeletion` → `lead_erased`, `contact.merge` → one
`leads_merged` per merged contact. `contact.creation` and other changes carry no attributes (the
contact must be read from HubSpot's API) and are reported. The lead id is `hubspot:<objectId>`.
The type key is read as `subscriptionType` or `eventType` (both occur). The event id is
`hubspot:<eventId>` (with `-<n>` for the n-th contact of a merge), or derived from the event
without an `eventId`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from schemas.adapters.base import (
    Conversion,
    convert_json_body,
    derived_event_id,
    epoch_to_datetime,
    identifier,
    skip,
    vendor_event_id,
)
from schemas.events import EventBase, LeadErased, LeadsMerged, StageSet
from schemas.stages import HUBSPOT_LIFECYCLESTAGE, Stage

__all__ = ["SOURCE", "convert", "convert_body", "lead_id"]

SOURCE = "hubspot"
_AUTOMATED = frozenset({"INTEGRATION", "API", "AUTOMATION_PLATFORM", "WORKFLOWS"})

# HubSpot value → our stage; where two stages share a HubSpot value, the plainer one wins.
_STAGES: dict[str, Stage] = {}
for _stage, _value in HUBSPOT_LIFECYCLESTAGE.items():
    _STAGES.setdefault(_value, _stage)


def lead_id(object_id: object) -> str | None:
    """Our lead id of a HubSpot contact id."""
    contact = identifier(object_id)
    return f"hubspot:{contact}" if contact else None


def convert_body(body: bytes | str, *, received_at: datetime) -> Conversion:
    """Events from a raw HubSpot webhook body."""
    return convert_json_body(body, convert, received_at=received_at)


def convert(payload: Any, *, received_at: datetime) -> Conversion:
    """Events from a parsed HubSpot webhook body (a list of events, or one)."""
    result = Conversion()
    for index, item in enumerate(payload if isinstance(payload, list) else [payload]):
        if not isinstance(item, dict):
            result.reject(f"[{index}]", "?", "not a JSON object")
            continue
        kind = item.get("subscriptionType") or item.get("eventType")
        result.attempt(f"[{index}]", kind, functools.partial(_events, item, received_at))
    return result


def _event_id(item: dict[str, Any]) -> str:
    return vendor_event_id(SOURCE, item.get("eventId")) or derived_event_id(SOURCE, item)


def _events(item: dict[str, Any], received_at: datetime) -> EventBase | list[EventBase]:
    kind = item.get("subscriptionType") or item.get("eventType")
    common: dict[str, Any] = {
        "event_id": _event_id(item),
        "occurred_at": epoch_to_datetime(item.get("occurredAt")) or received_at,
        "lead_id": lead_id(item.get("objectId")),
        "source": SOURCE,
    }
    if kind in ("contact.deletion", "contact.privacyDeletion"):
        return LeadErased(**common, reason=kind)
    if kind == "contact.merge":
        merged = item.get("mergedObjectIds")
        if not isinstance(merged, list) or not merged:
            raise skip("contact.merge without mergedObjectIds")
        survivor = lead_id(item.get("primaryObjectId")) or common["lead_id"]
        others = [lead_id(other) for other in merged]
        return [
            LeadsMerged(
                **{**common, "lead_id": survivor, "event_id": f"{common['event_id']}-{index}"},
                merged_lead_id=other or "",
            )
            for index, other in enumerate(others)
        ]
    if kind == "contact.propertyChange" and item.get("propertyName") == "lifecyclestage":
        if item.get("changeSource") in _AUTOMATED:
            raise skip(
                f"lifecyclestage set by {item['changeSource']} (an integration, possibly "
                "Leadstream's own CRM connector), not by a person"
            )
        stage = _STAGES.get(str(item.get("propertyValue")))
        if stage is None:
            raise skip(f"unknown lifecyclestage {str(item.get('propertyValue'))[:64]!r}")
        return StageSet(**common, stage=stage, reason="set in HubSpot")
    if kind == "contact.creation":
        raise skip("contact.creation carries no attributes: read the contact from HubSpot's API")
    raise skip(f"HubSpot event {str(kind)[:64]!r} is not converted")
