"""Helpers the email-platform adapters (`postmark`, `ses`, `brevo`, `mailjet`) share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from schemas.adapters.base import identifier

__all__ = ["json_object", "lead_id_in"]


def json_object(value: object) -> dict[str, Any] | None:
    """`value` as a JSON object: a mapping as it is, a string holding a JSON object parsed."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


def lead_id_in(value: object) -> str | None:
    """The `lead_id` of the metadata a sender attached to a message (an object or its JSON)."""
    found = json_object(value)
    return identifier(found.get("lead_id")) if found is not None else None
