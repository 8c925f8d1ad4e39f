"""Bytes ↔ models: the one place where Kafka record bytes become messages and back.

`decode` turns an inbound record value into an event or raises `DecodeError`, whose `kind` says why
(`ErrorKind`): any input bytes give one or the other, never another exception. Validation is one
pass of pydantic's JSON parser over the bytes (module-level `TypeAdapter`s); time checks compare
with a `now` the caller passes in. `encode` writes compact JSON with orjson.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.common import ContractModel
from schemas.errors import DecodeError, ErrorKind
from schemas.events import EventBase, InboundEvent
from schemas.internal import InternalMessage, not_carried
from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    ConnectorDeadLetter,
    DeadLetter,
    ScoreKey,
    ScoreRecord,
    StageChangeRecord,
)
from schemas.topics import (
    ACCOUNT_SCORES,
    ACCOUNT_STAGE_CHANGES,
    CONNECTOR_DEAD_LETTERS,
    DEAD_LETTERS,
    EVENT_TOPIC,
    INBOUND_TOPICS,
    SCORES,
    STAGE_CHANGES,
)

__all__ = [
    "DEFAULT_LIMITS",
    "EVENTS_FRAME_BYTES",
    "EVENTS_MAX_BYTES",
    "DecodeLimits",
    "decode",
    "decode_account_score",
    "decode_account_stage_change",
    "decode_connector_dead_letter",
    "decode_dead_letter",
    "decode_events_apart",
    "decode_internal",
    "decode_score",
    "decode_score_key",
    "decode_stage_change",
    "dumps",
    "encode",
    "encode_events",
    "event_key",
    "loads",
    "score_key",
]

ORJSON_OPTIONS: Final = orjson.OPT_UTC_Z
"""orjson options of every `encode`, defined once."""

OUTBOUND_MAX_BYTES: Final = 1024 * 1024
"""Size limit when decoding outbound records (a dead letter holds up to 256 KiB of original)."""


NOT_BEFORE: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The earliest `occurred_at` accepted by default."""


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What `decode` accepts beyond the schema."""

    max_bytes: int = 64 * 1024
    """Larger values are `too_large`."""
    max_future_skew: timedelta = timedelta(days=1)
    """`occurred_at` later than `now` plus this is `timestamp_in_future`."""
    max_age: timedelta | None = None
    """`occurred_at` earlier than `now` minus this is `timestamp_too_old`; `None`: no limit
    (replays and history backfills carry old events on purpose)."""
    not_before: datetime | None = NOT_BEFORE
    """`occurred_at` earlier than this is `timestamp_too_old` whatever the age limit: a date in
    1970 or the year 1 is a bug upstream, not history. `None`: no floor."""


DEFAULT_LIMITS: Final = DecodeLimits()

_INBOUND: Final[TypeAdapter[InboundEvent]] = TypeAdapter(InboundEvent)
_INBOUND_BY_TOPIC: Final[dict[str, TypeAdapter[Any]]] = {
    topic.name: TypeAdapter(topic.value) for topic in INBOUND_TOPICS
}
_SCORE: Final[TypeAdapter[ScoreRecord]] = TypeAdapter(SCORES.value)
_STAGE_CHANGE: Final[TypeAdapter[StageChangeRecord]] = TypeAdapter(STAGE_CHANGES.value)
_DEAD_LETTER: Final[TypeAdapter[DeadLetter]] = TypeAdapter(DEAD_LETTERS.value)
_CONNECTOR_DEAD_LETTER: Final[TypeAdapter[ConnectorDeadLetter]] = TypeAdapter(
    CONNECTOR_DEAD_LETTERS.value
)
_SCORE_KEY: Final[TypeAdapter[ScoreKey]] = TypeAdapter(ScoreKey)
_ACCOUNT_SCORE: Final[TypeAdapter[AccountScoreUpdated]] = TypeAdapter(AccountScoreUpdated)
_ACCOUNT_STAGE_CHANGE: Final[TypeAdapter[AccountStageChanged]] = TypeAdapter(AccountStageChanged)
_INTERNAL: Final[TypeAdapter[Any]] = TypeAdapter(InternalMessage)

_NOT_OBJECT_ERRORS: Final = frozenset({"dict_type", "model_type", "model_attributes_type"})
_TAG_ERRORS: Final = frozenset({"union_tag_invalid", "union_tag_not_found"})

T = TypeVar("T")


def decode(
    data: bytes | None,
    *,
    now: datetime | None,
    topic: str | None = None,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> InboundEvent:
    """The inbound event in `data`, or `DecodeError` (also for `None`, a tombstone's value).

    `topic`: accept only the event types of that inbound topic (`None`: any inbound event).
    `now`: the time to check `occurred_at` against (timezone-aware); `None` skips the time checks.
    """
    if now is not None and now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if topic is None:
        adapter: TypeAdapter[Any] = _INBOUND
    else:
        try:
            adapter = _INBOUND_BY_TOPIC[topic]
        except KeyError:
            raise ValueError(f"{topic!r} is not an inbound topic") from None
    event: EventBase = _validate(adapter, data, limits.max_bytes, topic, tagged=True)
    if now is not None:
        _check_time(event.occurred_at, now, limits)
    return event  # type: ignore[return-value]


def decode_score(data: bytes) -> ScoreRecord:
    """A value of `leads.scores.v1` (a tombstone, `None`, is the caller's to handle)."""
    return _validate(_SCORE, data, OUTBOUND_MAX_BYTES, SCORES.name, tagged=True)


def decode_stage_change(data: bytes) -> StageChangeRecord:
    """A value of `leads.stage-changes.v1`."""
    return _validate(_STAGE_CHANGE, data, OUTBOUND_MAX_BYTES, STAGE_CHANGES.name, tagged=True)


def decode_account_score(data: bytes) -> AccountScoreUpdated:
    """A value of `leads.account-scores.v1`."""
    return _validate(_ACCOUNT_SCORE, data, OUTBOUND_MAX_BYTES, ACCOUNT_SCORES.name, tagged=False)


def decode_account_stage_change(data: bytes) -> AccountStageChanged:
    """A value of `leads.account-stage-changes.v1`."""
    return _validate(
        _ACCOUNT_STAGE_CHANGE, data, OUTBOUND_MAX_BYTES, ACCOUNT_STAGE_CHANGES.name, tagged=False
    )


def decode_dead_letter(data: bytes) -> DeadLetter:
    """A value of `leads.dead-letters.v1`."""
    return _validate(_DEAD_LETTER, data, OUTBOUND_MAX_BYTES, DEAD_LETTERS.name, tagged=False)


def decode_connector_dead_letter(data: bytes) -> ConnectorDeadLetter:
    """A value of `leads.connector-dead-letters.v1`."""
    return _validate(
        _CONNECTOR_DEAD_LETTER, data, OUTBOUND_MAX_BYTES, CONNECTOR_DEAD_LETTERS.name, tagged=False
    )


def dumps(document: Any) -> bytes:
    """A plain JSON document (dicts, lists, strings, numbers) as bytes: table values."""
    return orjson.dumps(document, option=ORJSON_OPTIONS)


def loads(data: bytes) -> Any:
    """The plain JSON document in ``data`` (the inverse of `dumps`)."""
    return orjson.loads(data)


def decode_internal(data: bytes) -> Any:
    """A value of ``leads.internal.v1``: an inbound event or a control message."""
    return _validate(_INTERNAL, data, OUTBOUND_MAX_BYTES, "leads.internal.v1", tagged=True)


EVENTS_MAX_BYTES: Final = 512 * 1024
"""Largest ``events`` record a worker sends (its events' values and 29 bytes around them): half
the limit `decode_internal` reads, and of the broker's default largest record."""

_EVENTS_HEAD: Final = b'{"type":"events","events":['
_EVENTS_TAIL: Final = b"]}"
EVENTS_FRAME_BYTES: Final = len(_EVENTS_HEAD) + len(_EVENTS_TAIL)
"""Bytes an ``events`` record adds to its events' values (plus one comma between two)."""


def encode_events(values: Sequence[bytes]) -> bytes:
    """An ``events`` record of ``leads.internal.v1`` holding, in order, the events whose JSON
    values are ``values``: each one that `decode` accepted (as read, not encoded again) or that
    `encode` wrote. The values are copied byte for byte: every event validates as it did."""
    return _EVENTS_HEAD + b",".join(values) + _EVENTS_TAIL


def decode_events_apart(data: bytes) -> list[EventBase | tuple[DecodeError, bytes]]:
    """The events of an ``events`` record one by one, for a record `decode_internal` refused:
    each event, or why it is refused with its JSON (to dead-letter it alone). `DecodeError`
    when ``data`` is not an events record (not JSON, not an object of a list of events)."""
    if len(data) > OUTBOUND_MAX_BYTES:
        raise DecodeError(
            ErrorKind.TOO_LARGE, f"{len(data)} bytes is more than the limit of {OUTBOUND_MAX_BYTES}"
        )
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(ErrorKind.NOT_JSON, str(exc)) from exc
    if (
        not isinstance(document, dict)
        or document.get("type") != "events"
        or set(document) != {"type", "events"}
        or not isinstance(document["events"], list)
        or not document["events"]
    ):
        raise DecodeError(ErrorKind.SCHEMA_VIOLATION, "not an events record with events")
    out: list[EventBase | tuple[DecodeError, bytes]] = []
    for item in document["events"]:
        raw = orjson.dumps(item, option=ORJSON_OPTIONS)
        try:
            event: EventBase = _validate(_INBOUND, raw, OUTBOUND_MAX_BYTES, None, tagged=True)
        except DecodeError as exc:
            out.append((exc, raw))
            continue
        problem = not_carried(event)
        if problem is not None:
            out.append((DecodeError(ErrorKind.SCHEMA_VIOLATION, problem, field="type"), raw))
        else:
            out.append(event)
    return out


def decode_score_key(data: bytes) -> ScoreKey:
    """A key of `leads.scores.v1`."""
    return _validate(_SCORE_KEY, data, OUTBOUND_MAX_BYTES, SCORES.name, tagged=False)


def encode(message: ContractModel) -> bytes:
    """`message` as compact JSON (fields that are `None` are left out)."""
    return orjson.dumps(message.model_dump(mode="json", exclude_none=True), option=ORJSON_OPTIONS)


def event_key(event: EventBase) -> bytes:
    """The record key of an inbound event: `lead_id` when known, else `anonymous_id`."""
    return (event.lead_id or event.anonymous_id or "").encode()


@lru_cache(maxsize=65_536)
def score_key(lead_id: str, model: str) -> bytes:
    """The record key of `leads.scores.v1` for a lead under a model (the keys of the most
    recently scored leads are kept: a worker sends one per lead and model per batch)."""
    return encode(ScoreKey(lead_id=lead_id, model=model))


# ----------------------------------------------------------------------------- internals


def _validate(
    adapter: TypeAdapter[T], data: bytes | None, max_bytes: int, topic: str | None, *, tagged: bool
) -> T:
    if data is None:  # a tombstone: a record with a key and no value
        raise DecodeError(ErrorKind.NOT_JSON, "no value (a tombstone)")
    if len(data) > max_bytes:
        raise DecodeError(
            ErrorKind.TOO_LARGE, f"{len(data)} bytes is more than the limit of {max_bytes}"
        )
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        raise _classify(exc, topic, tagged=tagged) from exc
    except (RecursionError, OverflowError) as exc:  # pragma: no cover - the parser bounds depth
        raise DecodeError(ErrorKind.NOT_JSON, f"cannot be parsed: {type(exc).__name__}") from exc


def _classify(exc: ValidationError, topic: str | None, *, tagged: bool) -> DecodeError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        return DecodeError(ErrorKind.NOT_JSON, first["msg"])
    if not loc and kind in _NOT_OBJECT_ERRORS:
        return DecodeError(ErrorKind.NOT_OBJECT, "the value is not a JSON object")
    if not loc and kind in _TAG_ERRORS:
        return DecodeError(ErrorKind.UNKNOWN_TYPE, _unknown_type_detail(exc, topic), field="type")
    # Errors inside a discriminated union are located under the tag: drop it from the path.
    path = loc[1:] if tagged else loc
    field = _dotted(path)
    detail = first["msg"]
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return DecodeError(ErrorKind.SCHEMA_VIOLATION, detail, field=field or None)


def _unknown_type_detail(exc: ValidationError, topic: str | None) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "union_tag_not_found":
        return "no `type` field"
    tag = first.get("ctx", {}).get("tag")
    home = EVENT_TOPIC.get(tag) if isinstance(tag, str) else None
    if topic is not None and home is not None and home != topic:
        return f"type {tag!r} belongs on {home}, not on {topic}"
    return f"unknown type {str(tag)[:64]!r}"


def _dotted(path: tuple[int | str, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _check_time(occurred_at: datetime, now: datetime, limits: DecodeLimits) -> None:
    if occurred_at - now > limits.max_future_skew:
        raise DecodeError(
            ErrorKind.TIMESTAMP_IN_FUTURE,
            f"{occurred_at.isoformat()} is more than {limits.max_future_skew} after "
            f"{now.isoformat()}",
            field="occurred_at",
        )
    if limits.not_before is not None and occurred_at < limits.not_before:
        raise DecodeError(
            ErrorKind.TIMESTAMP_TOO_OLD,
            f"{occurred_at.isoformat()} is before {limits.not_before.isoformat()}",
            field="occurred_at",
        )
    if limits.max_age is not None and now - occurred_at > limits.max_age:
        raise DecodeError(
            ErrorKind.TIMESTAMP_TOO_OLD,
            f"{occurred_at.isoformat()} is more than {limits.max_age} before {now.isoformat()}",
            field="occurred_at",
        )
