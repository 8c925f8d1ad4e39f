"""A scorecard as a Leadstream model file, and a table row as the events the stream would see.

The mapping between a table and the stream (documented in the README, "Calibrating a model from
history"):

- an attribute column `Foo Bar.baz` is the profile attribute `custom.Foo_Bar_baz` (dots and
  spaces become `_`): a `profile_updated` event carries it in `traits.custom`, and each of its
  bins is a fit rule (`range: {gt, le}` for numbers, `in`/`equals` for categories, `equals:
  "(missing)"` for the bin of missing values, which the event then carries as that text);
- a count column `visits` is a `clicked` event with `target: visits` per time the lead did it.
  A bin step of `d` points at the `t`-th time is two engagement rules on those events:
  `d` points for each of the first `t` (cap `max_count: t`) and `-d` for each of the first
  `t - 1`, which adds up to `d` from the `t`-th time on. Their decay group never decays and the
  cap window is a century: a table has no timestamps to learn a decay from.

`stream.calibrate.rows` reads the mapping back from a model file to turn rows into events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import yaml

from stream.calibrate.rows import ACTIVITY_EVENT
from stream.calibrate.scorecard import Bin, Feature, Interaction, Scorecard
from stream.calibrate.values import MISSING
from stream.scoring import parse_models
from stream.scoring.spec import rule_code

__all__ = ["CAP_WINDOW", "model_file"]

CAP_WINDOW = "5200w"
"""The cap window of count rules: a century, i.e. "the first `t` times" for a lead's life."""


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "_", text.lower()).strip("_.-")
    return (slug or "x")[:40]


class _Ids:
    """Rule ids that are unique and whose state keys do not collide."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.codes: set[str] = set()

    def __call__(self, base: str) -> str:
        candidate, n = base, 2
        while candidate in self.used or rule_code(candidate) in self.codes:
            candidate, n = f"{base}-{n}", n + 1
        self.used.add(candidate)
        self.codes.add(rule_code(candidate))
        return candidate


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else float(x)


def _describe(feature: Feature, index: int) -> str:
    b = feature.bins[index]
    return f"{feature.column.name} {b.label}: {100 * b.rate:.1f}% of {b.rows} converted"


def _test(feature: Feature, b: Bin) -> dict[str, Any]:
    """The test of a value in bin `b`: `{"field": ..., "range"|"equals"|"in": ...}`."""
    test: dict[str, Any] = {"field": f"custom.{feature.column.key}"}
    if b.values == (MISSING,):
        test["equals"] = MISSING
    elif feature.numeric:
        bounds: dict[str, float | int] = {}
        if b.gt is not None:
            bounds["gt"] = _number(b.gt)
        if b.le is not None:
            bounds["le"] = _number(b.le)
        test["range"] = bounds or {"gt": -math.inf}  # one bin for every number: present
    elif len(b.values) == 1:
        test["equals"] = b.values[0]
    else:
        test["in"] = list(b.values)
    return test


def _fit_rules(feature: Feature, ids: _Ids) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    base = _slug(feature.column.key)
    for i, b in enumerate(feature.bins):
        if b.points == 0:
            continue
        rule: dict[str, Any] = {"id": ids(f"{base}.{i + 1}"), **_test(feature, b)}
        rule["points"] = b.points
        rule["description"] = _describe(feature, i)
        rules.append(rule)
    return rules


def _pair_rules(pair: Interaction, ids: _Ids) -> list[dict[str, Any]]:
    """A fit rule with `and` per cell of a pair worth points."""
    rules: list[dict[str, Any]] = []
    base = f"{_slug(pair.a.column.key)[:20]}.x.{_slug(pair.b.column.key)[:20]}"
    for (i, j), cell in pair.cells.items():
        if cell.points == 0:
            continue
        what = (
            f"{pair.a.column.name} {pair.a.bins[i].label} and {pair.b.column.name} "
            f"{pair.b.bins[j].label}: "
            + (f"{100 * cell.rate:.1f}% of {cell.rows} converted" if cell.rows else "not seen")
        )
        rules.append(
            {
                "id": ids(f"{base}.{i + 1}.{j + 1}"),
                **_test(pair.a, pair.a.bins[i]),
                "and": [_test(pair.b, pair.b.bins[j])],
                "points": cell.points,
                "description": what,
            }
        )
    return rules


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count_rules(feature: Feature, ids: _Ids, group: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    key = feature.column.key
    where = (
        {"target": key}
        if not any(ch in key for ch in "*?[")
        else {"target": {"regex": f"^{re.escape(key)}$"}}
    )
    base = _slug(key)
    previous = 0
    for i, b in enumerate(feature.bins):
        step = b.points - previous
        previous = b.points
        if i == 0 or step == 0:
            continue
        times = int(b.gt or 0) + 1  # the bin starts at the t-th time
        what = f"{feature.column.name} {b.label} (from the {_ordinal(times)} time)"
        rules.append(
            {
                "id": ids(f"{base}.ge{times}"),
                "event": ACTIVITY_EVENT,
                "where": dict(where),
                "points": step,
                "group": group,
                "cap": {"max_count": times, "per": CAP_WINDOW},
                "description": f"{what}: {100 * b.rate:.1f}% of {b.rows} converted",
            }
        )
        if times > 1:
            rules.append(
                {
                    "id": ids(f"{base}.ge{times}.before"),
                    "event": ACTIVITY_EVENT,
                    "where": dict(where),
                    "points": -step,
                    "group": group,
                    "cap": {"max_count": times - 1, "per": CAP_WINDOW},
                    "description": f"takes back the first {times - 1} of {base}.ge{times}",
                }
            )
    return rules


def model_file(
    card: Scorecard,
    *,
    model_id: str,
    version: str,
    description: str,
    mql_at: float,
    sql_at: float,
    fit_grades: Sequence[float],
    engagement_grades: Sequence[float],
) -> str:
    """The scorecard as the text of a model file (validated before it is returned)."""
    ids = _Ids()
    group = "activity"
    fit: list[dict[str, Any]] = []
    engagement: list[dict[str, Any]] = []
    for feature in card.features:
        if feature.is_count:
            engagement += _count_rules(feature, ids, group)
        else:
            fit += _fit_rules(feature, ids)
    for pair in card.interactions:
        fit += _pair_rules(pair, ids)
    model: dict[str, Any] = {
        "id": model_id,
        "version": version,
        "description": description,
        "decay": {group: "never"},
        "fit": fit,
        "engagement": engagement,
        "stages": {
            "mql": {"promote_at": _number(mql_at), "basis": "total"},
            "sql": {"promote_at": _number(sql_at), "basis": "total"},
        },
        "grades": {
            "fit": [_number(v) for v in fit_grades],
            "engagement": [_number(v) for v in engagement_grades],
        },
        "spam": {"burst": None},
    }
    text = "# Calibrated by `leadstream calibrate`: points learned from past conversions.\n"
    text += yaml.safe_dump(
        {"format": 1, "models": [model]}, sort_keys=False, allow_unicode=True, width=100
    )
    parse_models(text, source="calibrated model")  # raises ModelFileError if it is not valid
    return text
