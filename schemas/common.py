"""Building blocks shared by every message: the base model and the constrained field types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ContractModel",
    "Email",
    "EventId",
    "Identifier",
    "Money",
    "Points",
    "ShortText",
    "Text",
    "Url",
    "UtcDatetime",
    "require_type",
]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("datetime is out of range once converted to UTC") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime (naive ones are rejected), normalised to UTC."""

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
"""A producer-chosen unique id of one message (no whitespace, at most 128 characters)."""

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^\S+$")]
"""An id of a lead, visitor, form, campaign, post, model, ... (no whitespace, at most 256)."""

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A name, title, label or reason."""

Text = Annotated[str, StringConstraints(max_length=4096)]
"""Free text such as a form field value or an error message."""

Url = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
"""A URL exactly as the browser or vendor reported it (not normalised)."""

Email = Annotated[
    str, StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
]
"""An email address (loosely checked: one `@`, no whitespace)."""

Money = Annotated[float, Field(ge=0, le=1e15)]
"""A non-negative amount of money."""

Points = Annotated[float, Field(ge=-1e9, le=1e9)]
"""A score or a number of points (may be negative)."""


def require_type(schema: dict[str, Any]) -> None:
    """In the JSON Schema, `type` is required: only Python callers may leave it to its default."""
    if "type" in schema.get("properties", {}):
        required = [name for name in schema.get("required", []) if name != "type"]
        schema["required"] = ["type", *required]


class ContractModel(BaseModel):
    """Base of every message and record: immutable, strictly typed, unknown fields are an error."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        use_enum_values=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        json_schema_extra=require_type,
        use_attribute_docstrings=True,
    )
