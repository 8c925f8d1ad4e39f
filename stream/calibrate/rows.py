"""A table row as the events the stream sees, read off a model file.

The mapping (README, "How the table maps to the stream") is found from the model's rules, so
that any model file can score a table, and so that the stream check of `leadstream calibrate`
and `leadstream score` send the same events a worker would get from an integration:

- a fit rule (or a condition of its `and`) on `custom.<key>` reads the column whose key is
  `<key>` (`table.column_keys`: dots and spaces become `_`), sent in `traits.custom` of a
  `profile_updated` event: as a number when a test on it is a range, as text when a test is
  `equals`/`in`/`regex` on text (a column tested only for `(missing)` is read as the table has
  it: numbers when at least 95% of its values are numbers). A missing value (blank, NaN, a
  placeholder such as `n/a`) is sent as the text `(missing)` when a test looks for it, and left
  out otherwise. The attributes crossed by rules with `and` come first, so that they travel in
  the same event (one carries at most 100);
- an engagement rule that scores `clicked` events whose `target` is a column's key counts that
  column: a count of `n` is `n` such events (missing is 0, a fraction is cut), or fewer when
  every rule they feed is capped by a count (events past the largest cap change nothing).

Every cell goes through `values` as in training. All of a row's events happen at `REPLAY_AT`
and its score is read then: a table has no times, so nothing decays.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.events import Clicked, EventBase, ProfileUpdated, Traits
from stream.calibrate.table import column_keys, column_numbers
from stream.calibrate.values import MISSING, category, count, number
from stream.scoring import ScoringModel
from stream.scoring.spec import FitCondition, FitRule

__all__ = [
    "ACTIVITY_EVENT",
    "MAX_CUSTOM",
    "REPLAY_AT",
    "Input",
    "Inputs",
    "attribute_value",
    "event_lead_id",
    "lead_events",
    "model_inputs",
]

ACTIVITY_EVENT = "clicked"
"""The event type a count column's activity is sent as (`target` names the column)."""
REPLAY_AT = datetime(2025, 1, 1, tzinfo=UTC)
"""When a table row's events happen (all at once; nothing decays)."""
MAX_CUSTOM = 100
"""`Traits.custom` holds at most this many attributes per event."""
SOURCE = "table"
"""The `source` of the events a table row becomes."""

Kind = Literal["number", "text", "number or text", "count"]


@dataclass(frozen=True)
class Input:
    """A column of the table a model reads, and how a cell of it is sent."""

    column: str
    key: str
    """`custom.<key>` for an attribute, the `target` of `clicked` events for a count."""
    kind: Kind
    missing: bool = False
    """Send a missing attribute as the text `(missing)` (a rule tests for it)."""
    last: int | None = None
    """A count: at most this many events change the score (None: every one may)."""
    paired: bool = False
    """An attribute crossed with another by a rule with `and`: sent first."""


@dataclass(frozen=True)
class Inputs:
    """What a model reads from a table."""

    inputs: tuple[Input, ...]
    """Attributes (crossed ones first), then counts."""
    unmatched: tuple[str, ...]
    """Attributes the model's rules test that no column of the table gives (`custom.x`)."""

    @property
    def columns(self) -> list[str]:
        return [i.column for i in self.inputs]


@dataclass
class _Tests:
    number: bool = False
    text: bool = False
    missing: bool = False
    paired: bool = False


def _note(tests: _Tests, test: FitRule | FitCondition) -> None:
    if test.range is not None or getattr(test, "per_unit_above", None) is not None:
        tests.number = True
    if test.regex is not None:
        tests.text = True
    values = [test.equals] if test.equals is not None else list(test.in_ or ())
    for value in values:
        if isinstance(value, str) and value.casefold() == MISSING:
            tests.missing = True
        elif isinstance(value, str):
            tests.text = True
        elif not isinstance(value, bool):
            tests.number = True


def _attribute_tests(model: ScoringModel) -> dict[str, _Tests]:
    """Per `custom.<key>` the model tests: the kinds of test."""
    found: dict[str, _Tests] = {}
    for rule in model.fit:
        parts: list[FitRule | FitCondition] = [rule, *(rule.and_ or ())]
        for part in parts:
            if part.field.startswith("custom."):
                tests = found.setdefault(part.field[len("custom.") :], _Tests())
                _note(tests, part)
                tests.paired = tests.paired or bool(rule.and_)
    return found


def _click(key: str) -> Clicked:
    return Clicked(event_id="probe", occurred_at=REPLAY_AT, lead_id="probe", source=SOURCE,
                   target=key)  # fmt: skip


def _count_limit(model: ScoringModel, key: str) -> tuple[bool, int | None]:
    """(whether a rule counts `clicked` events on `key`, the count past which none scores)."""
    click = _click(key)
    compiled = model.compiled.rules
    matching = [
        rule
        for rule in model.engagement
        if ACTIVITY_EVENT in rule.event_types and compiled[rule.id].matches(click)
    ]
    targeted = [rule for rule in matching if "target" in rule.where]
    if not targeted:
        return False, None
    caps = [rule.cap.max_count if rule.cap is not None else None for rule in matching]
    capped = [c for c in caps if c is not None]
    return True, (max(capped) if len(capped) == len(caps) else None)


def model_inputs(model: ScoringModel, frame: Any, *, target: str | None = None) -> Inputs:
    """The columns of `frame` (a pandas DataFrame) that `model` reads, and how."""
    keys = column_keys(list(map(str, frame.columns)), target)
    tested = _attribute_tests(model)
    attributes: list[Input] = []
    counts: list[Input] = []
    for column, key in keys.items():
        tests = tested.get(key)
        if tests is not None:
            kind: Kind
            if tests.number and tests.text:
                kind = "number or text"
            elif tests.number or tests.text:
                kind = "number" if tests.number else "text"
            else:  # only `(missing)` is tested: read the cells as the column holds them
                kind = "number" if column_numbers(frame[column]) is not None else "text"
            attributes.append(Input(column, key, kind, tests.missing, paired=tests.paired))
            continue
        counted, last = _count_limit(model, key)
        if counted:
            counts.append(Input(column, key, "count", last=last))
    attributes.sort(key=lambda i: not i.paired)
    found = {i.key for i in attributes}
    unmatched = tuple(f"custom.{key}" for key in tested if key not in found)
    return Inputs((*attributes, *counts), unmatched)


def _scalar(x: float) -> int | float:
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def attribute_value(cell: object, item: Input) -> bool | int | float | str | None:
    """What `traits.custom.<key>` carries for a cell (None: the attribute is left out)."""
    value: bool | int | float | str | None
    if item.kind == "text":
        value = category(cell)
    else:
        x = number(cell)
        if not math.isnan(x):
            value = _scalar(x)
        elif item.kind == "number or text":
            value = category(cell)
        else:
            value = None
    if value is None and item.missing:
        return MISSING
    return value


def event_lead_id(lead_id: str) -> str:
    """A lead id as events carry it: no whitespace, at most 256 characters."""
    return re.sub(r"\s+", "_", lead_id.strip())[:256] or "lead"


def lead_events(
    lead_id: str,
    row: Mapping[str, object],
    inputs: Sequence[Input],
    *,
    at: datetime = REPLAY_AT,
    ref: str = "",
) -> Iterator[EventBase]:
    """The events a row stands for: its attributes in `profile_updated` events (at most 100
    per event, one even when there is none, so that every lead has a score), then each count
    as that many `clicked` events. `ref` makes the event ids unique (the row's number)."""
    lead = event_lead_id(lead_id)
    prefix = ref or lead[:100]
    custom: dict[str, bool | int | float | str] = {}
    for item in inputs:
        if item.kind != "count":
            value = attribute_value(row.get(item.column), item)
            if value is not None:
                custom[item.key] = value
    items = list(custom.items())
    for start in range(0, max(len(items), 1), MAX_CUSTOM):
        yield ProfileUpdated(
            event_id=f"{prefix}:p{start}",
            occurred_at=at,
            lead_id=lead,
            source=SOURCE,
            traits=Traits(custom=dict(items[start : start + MAX_CUSTOM])),
        )
    for n, item in enumerate(inputs):
        if item.kind != "count":
            continue
        times = max(0, int(count(row.get(item.column))))
        if item.last is not None:
            times = min(times, item.last)
        for k in range(times):
            yield Clicked(
                event_id=f"{prefix}:c{n}.{k}",
                occurred_at=at,
                lead_id=lead,
                source=SOURCE,
                target=item.key,
            )
