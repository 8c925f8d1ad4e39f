"""The one exception root of Leadstream.

It lives in the contract package so producers that import only `schemas` can catch every error
Leadstream raises on purpose; `stream.errors` re-exports it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DecodeError", "ErrorKind", "LeadstreamError"]


class LeadstreamError(Exception):
    """Base class of every error Leadstream raises on purpose."""


class ErrorKind(StrEnum):
    """Why a message could not be used; the `error_kind` of a dead letter."""

    NOT_JSON = "not_json"
    """Not valid UTF-8 JSON (or nested too deeply)."""
    NOT_OBJECT = "not_object"
    """Valid JSON, but not a JSON object."""
    UNKNOWN_TYPE = "unknown_type"
    """No `type`, or a `type` this topic does not carry."""
    SCHEMA_VIOLATION = "schema_violation"
    """A field is missing, unknown, or of the wrong type or value."""
    TOO_LARGE = "too_large"
    """Larger than the configured maximum message size."""
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    """`occurred_at` is later than now plus the allowed clock skew."""
    TIMESTAMP_TOO_OLD = "timestamp_too_old"
    """`occurred_at` is older than the configured maximum age."""
    HELD_TOO_MANY = "held_too_many"
    """An anonymous visitor's event gave way to newer ones before an identify linked it."""
    HELD_TOO_LONG = "held_too_long"
    """An anonymous visitor's events expired before an identify linked them."""
    PROCESSING_FAILED = "processing_failed"
    """A valid message whose processing failed (recorded by the stream processor)."""


class DecodeError(LeadstreamError):
    """Bytes that do not make a valid message. `kind` says why, `field` where (when known)."""

    def __init__(self, kind: ErrorKind, detail: str, *, field: str | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.field = field
        where = f" at {field}" if field else ""
        super().__init__(f"{kind.value}{where}: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_decode_error, (self.kind, self.detail, self.field))


def _rebuild_decode_error(kind: ErrorKind, detail: str, field: str | None) -> DecodeError:
    return DecodeError(kind, detail, field=field)
