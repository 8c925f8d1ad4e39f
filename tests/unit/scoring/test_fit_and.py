"""Fit rules with `and`: points when several attributes hold at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import ProfileUpdated, Traits
from stream.scoring import ModelFileError, apply_all, parse_models, score_at
from stream.scoring.explain import describe_model

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

MODEL = """
format: 1
models:
  - id: shop
    version: 1
    decay: {web: never}
    fit:
      - id: big-in-november
        field: custom.page_value
        range: {gt: 10}
        and:
          - {field: custom.month, in: [Nov, Dec]}
          - {field: industry, equals: retail}
        points: 12
      - {id: november, field: custom.month, equals: nov, points: 3}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
"""


def _profile(n: int, **traits: object) -> ProfileUpdated:
    return ProfileUpdated(
        event_id=f"e{n}",
        occurred_at=T0 + timedelta(minutes=n),
        lead_id="lead-1",
        source="test",
        traits=Traits(**traits),  # type: ignore[arg-type]
    )


def _fit(*events: ProfileUpdated) -> float:
    models = parse_models(MODEL)
    state = None
    for event in events:
        state = apply_all(state, event, models=models, lead_id="lead-1").state
    assert state is not None
    return score_at(state.models["shop"], T0 + timedelta(hours=1)).fit


@pytest.mark.parametrize(
    ("custom", "industry", "fit"),
    [
        ({"page_value": 25.5, "month": "nov"}, "Retail", 15),  # all hold, and `november`
        ({"page_value": 25.5, "month": "dec"}, "retail", 12),
        ({"page_value": 10, "month": "nov"}, "retail", 3),  # the range does not hold
        ({"page_value": 25.5, "month": "feb"}, "retail", 0),
        ({"page_value": 25.5, "month": "nov"}, "software", 3),
    ],
)
def test_the_points_come_only_when_every_condition_holds(
    custom: dict[str, object], industry: str, fit: float
) -> None:
    assert _fit(_profile(1, custom=custom, industry=industry)) == fit


def test_an_event_without_every_field_leaves_the_rule_as_it_was() -> None:
    matched = _profile(1, custom={"page_value": 30, "month": "nov"}, industry="retail")
    partial = _profile(2, custom={"page_value": 1})  # no month, no industry: not evaluated
    assert _fit(matched, partial) == 15
    assert _fit(_profile(1, custom={"page_value": 30}), _profile(2, industry="retail")) == 0
    changed = _profile(2, custom={"page_value": 1, "month": "nov"}, industry="retail")
    assert _fit(matched, changed) == 3


def test_it_is_explained_with_all_its_conditions() -> None:
    text = describe_model(parse_models(MODEL).get("shop"))
    assert "custom.page_value > 10 and custom.month in [Nov, Dec] and industry = retail" in text


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{id: r, field: age, per_unit_above: 25, points: 1, and: [{field: industry, "
            "equals: x}]}",
            "'and': not with per_unit_above",
        ),
        (
            "{id: r, field: industry, equals: x, points: 1, and: [{field: industry, equals: y}]}",
            "each condition tests another field",
        ),
        (
            "{id: r, field: industry, equals: x, points: 1, and: [{field: age, regex: '1'}]}",
            "'age' is a number, not text",
        ),
        (
            "{id: r, field: industry, equals: x, points: 1, and: [{field: age}]}",
            "give exactly one of",
        ),
        (
            "{id: r, field: industry, equals: x, points: 1, and: [{field: nope, equals: 1}]}",
            "unknown profile field 'nope'",
        ),
        ("{id: r, field: industry, equals: x, points: 1, and: []}", "at least 1 item"),
    ],
)
def test_invalid_conditions_are_rejected(rule: str, message: str) -> None:
    text = MODEL.replace("{id: november, field: custom.month, equals: nov, points: 3}", rule)
    with pytest.raises(ModelFileError) as info:
        parse_models(text, source="m.yaml")
    assert message in str(info.value)
