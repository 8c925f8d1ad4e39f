"""Property-based tests of the codec.

1. Whatever bytes arrive, `decode` returns an event or raises `DecodeError`, nothing else.
2. Every message the generated JSON Schema allows decodes, and encode then decode gives it back;
   encode writes the bytes orjson writes from the model's JSON-mode dump.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.codec import (
    DecodeLimits,
    decode,
    decode_dead_letter,
    decode_score,
    decode_stage_change,
    encode,
)
from schemas.common import ContractModel
from schemas.errors import DecodeError
from schemas.events import EVENT_TYPES, EventBase
from schemas.examples import EVENT_EXAMPLES
from schemas.outputs import DeadLetter, LeadErasedRecord, ScoreUpdated, StageChanged
from schemas.stages import HUBSPOT_LIFECYCLESTAGE, SALESFORCE_LEAD_STATUS, Stage

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
BIG = DecodeLimits(max_bytes=10**7)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.dumps writes them as NaN/Infinity
    | st.text(),  # lone surrogates included: json.dumps escapes them as \ud800
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _decode_or_error(data: bytes, *, now: datetime | None = NOW) -> None:
    try:
        event = decode(data, now=now, limits=BIG)
    except DecodeError as error:
        assert error.kind is not None
        assert str(error)
    else:
        assert isinstance(event, EventBase)


@settings(deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_give_an_event_or_a_decode_error(data: bytes) -> None:
    _decode_or_error(data)


@settings(deadline=None)
@given(json_values)
def test_any_json_value_gives_an_event_or_a_decode_error(value: object) -> None:
    _decode_or_error(json.dumps(value).encode())


FIELD_NAMES = [
    "type",
    "event_id",
    "occurred_at",
    "lead_id",
    "anonymous_id",
    "source",
    "url",
    "traits",
    "utm",
    "fields",
    "bounce",
    "stage",
    "network",
    "merged_lead_id",
]
edits = st.lists(
    st.tuples(
        st.sampled_from(FIELD_NAMES) | st.text(min_size=1, max_size=20), st.none() | json_values
    ),
    max_size=3,
)
"""Field changes: (name, new value), where a new value of None deletes the field."""


@settings(deadline=None)
@given(
    event_type=st.sampled_from(sorted(EVENT_TYPES)),
    edits=edits,
    now=st.none() | st.datetimes(timezones=st.just(UTC)),
)
def test_edited_events_give_an_event_or_a_decode_error(
    event_type: str, edits: list[tuple[str, object]], now: datetime | None
) -> None:
    data: dict[str, Any] = EVENT_EXAMPLES[event_type].model_dump(mode="json")
    for name, value in edits:
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    _decode_or_error(json.dumps(data).encode(), now=now)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"type":"profile_updated","traits":{"company_size":' + b"9" * 5000 + b"}}",
        b'{"type":"page_viewed","duration_seconds":1e999}',
        b'{"type":"page_viewed","title":"\\ud800"}',
        b'{"type":"page_viewed","title":"\xed\xa0\x80"}',
        b'{"type":"page_viewed","title":"\xc3\x28"}',
        b'{"type":"page_viewed","occurred_at":"0001-01-01T00:00:00+01:00"}',
        b'{"type":"page_viewed","occurred_at":"9999-12-31T23:59:59-01:00"}',
        b"\x00",
        '{"type":"page_viewed","title":"\U0001f600"}'.encode("utf-16"),
    ],
)
def test_hostile_inputs_give_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data, now=NOW, limits=BIG)


# ------------------------------------------------------------- round trips from the schemas


def _from_schema(  # noqa: PLR0911 - one return per kind of schema
    schema: dict[str, Any], defs: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """Values allowed by `schema`, for the subset of JSON Schema that pydantic emits here."""
    if "$ref" in schema:
        return _from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema and "type" not in schema:
        return st.one_of([_from_schema(branch, defs) for branch in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(
            None if low is None else int(low), None if high is None else int(high)
        )
    if kind == "string":
        return _string(schema)
    if kind == "array":
        items = _from_schema(schema["items"], defs)
        return st.lists(items, max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object":
        return _object(schema, defs)
    raise AssertionError(f"no strategy for {schema}")


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 10_000)
    if schema.get("contentEncoding") == "base64url":
        return st.binary(max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode())
    if schema.get("format") == "date-time":
        offsets = st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        )
        # Hypothesis takes naive bounds and attaches the offsets itself.
        first, last = datetime(1900, 1, 2), datetime(2200, 1, 1)  # noqa: DTZ001
        moments = st.datetimes(first, last, timezones=offsets)
        return moments.map(lambda d: d.isoformat())
    if schema.get("format") == "uuid":
        return st.uuids().map(str)
    if "pattern" in schema:
        text = st.from_regex(schema["pattern"], fullmatch=True)
    else:
        text = st.text(min_size=low, max_size=min(high, 40))
    return text.filter(lambda s: low <= len(s) <= high)


def _object(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties")
    if properties is None:
        names = _string(schema.get("propertyNames", {}))
        return st.dictionaries(
            names, _from_schema(schema["additionalProperties"], defs), max_size=4
        )
    required = set(schema.get("required", []))
    fields = {name: _from_schema(sub, defs) for name, sub in properties.items()}
    return st.fixed_dictionaries(
        {name: fields[name] for name in fields if name in required},
        optional={name: fields[name] for name in fields if name not in required},
    )


def _repair(model: type[ContractModel], instance: dict[str, Any]) -> dict[str, Any]:
    """Satisfy the cross-field rules that JSON Schema cannot state."""
    if model is StageChanged:
        stage = Stage(instance["to_stage"])
        instance["hubspot_lifecyclestage"] = HUBSPOT_LIFECYCLESTAGE[stage]
        instance["salesforce_lead_status"] = SALESFORCE_LEAD_STATUS[stage]
    if model is DeadLetter:
        instance["original_size"] = max(instance["original_size"], 2**20)
    if instance.get("merged_lead_id") is not None and instance["merged_lead_id"] == instance.get(
        "lead_id"
    ):
        instance["merged_lead_id"] += "-2"
    return instance


_OUTBOUND_DECODERS: dict[type[ContractModel], Callable[[bytes], ContractModel]] = {
    ScoreUpdated: decode_score,
    LeadErasedRecord: decode_stage_change,
    StageChanged: decode_stage_change,
    DeadLetter: decode_dead_letter,
}


def _decoder(model: type[ContractModel]) -> Callable[[bytes], Any]:
    if model in _OUTBOUND_DECODERS:
        return _OUTBOUND_DECODERS[model]
    return lambda data: decode(data, now=None, limits=BIG)


ALL_MODELS: list[type[ContractModel]] = [*EVENT_TYPES.values(), *_OUTBOUND_DECODERS]


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_schema_instances_decode_and_round_trip(model: type[ContractModel]) -> None:
    """What the JSON Schema allows, the model accepts; encode then decode changes nothing."""
    schema = model.model_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    strategy = _from_schema(schema, schema.get("$defs", {}))
    decode_bytes = _decoder(model)

    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def check(instance: dict[str, Any]) -> None:
        instance = _repair(model, instance)
        assume(validator.is_valid(instance))
        message = decode_bytes(json.dumps(instance).encode())
        assert type(message) is model
        encoded = encode(message)
        # the same bytes as orjson over the model's JSON-mode dump (the encoding records had
        # before the serializer wrote them directly): a worker upgraded mid-stream sends again
        # exactly what it sent
        assert encoded == orjson.dumps(
            message.model_dump(mode="json", exclude_none=True), option=orjson.OPT_UTC_Z
        )
        again = decode_bytes(encoded)
        assert again == message
        assert encode(again) == encoded

    check()
