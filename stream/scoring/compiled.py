"""A scoring model prepared for the hot path: rules indexed by event type, tests precompiled.

Built once per model (`ScoringModel.compiled`); `apply` looks up the event's type and runs only
the rules that can match it.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemas.events import CLICKSTREAM_TYPES, CRM_FEEDBACK_TYPES, SOCIAL_TYPES, Traits
from schemas.stages import Stage
from stream.scoring.mail import Timing
from stream.scoring.spam import BUILTIN_DISPOSABLE_DOMAINS, email_domain
from stream.scoring.spec import MatchSpec, rule_code
from stream.scoring.stages import DEFAULT_GRAPH

if TYPE_CHECKING:
    from stream.scoring.spec import EngagementRule, FitRule, ScoringModel

__all__ = [
    "ACTION",
    "CLICKED",
    "DELIVERED",
    "ERASE",
    "FACT",
    "MAIL",
    "MERGE",
    "MISSING",
    "OPENED",
    "OTHER",
    "PROFILE",
    "SENT",
    "STAGE_SET",
    "CompiledModel",
    "Dispatch",
    "EngagementRuleC",
    "FitRuleC",
    "compile_fit_rule",
    "url_path",
]

LN2 = math.log(2.0)

# Dispatch kinds.
ACTION = 0
"""Something the person did (web, email open/click, social): scored and counted for bursts."""
OTHER = 1
"""Other events the model has rules for (email delivery outcomes, subscriptions, CRM points)."""
PROFILE = 2
FACT = 3
"""CRM feedback: moves the stage."""
STAGE_SET = 4
MERGE = 5
ERASE = 6
MAIL = 7
"""A message sent or delivered: remembered for `machine_timing`, never scored."""

# Dispatch.mail: an event's part in the machine-timing tests.
SENT, DELIVERED, OPENED, CLICKED = 1, 2, 3, 4
_MAIL_ROLES = {
    "email_sent": SENT,
    "email_delivered": DELIVERED,
    "email_opened": OPENED,
    "email_clicked": CLICKED,
}

_ACTION_TYPES = {*CLICKSTREAM_TYPES, *SOCIAL_TYPES, "email_opened", "email_clicked"}
_MACHINE_ATTR = {"email_opened": "machine_open", "email_clicked": "machine_click"}

Test = Callable[[object], bool]
Getter = Callable[[Any], object]


def url_path(url: str) -> str:
    """The path of a URL without query or fragment: `https://a.example/pricing?x=1` → `/pricing`."""
    scheme = url.find("://")
    start = url.find("/", scheme + 3) if scheme >= 0 else (0 if url.startswith("/") else -1)
    if start < 0:
        return "/"
    end = len(url)
    for mark in "?#":
        cut = url.find(mark, start)
        if 0 <= cut < end:
            end = cut
    return url[start:end] or "/"


def _get_path(event: Any) -> object:
    path = getattr(event, "path", None)
    if path:
        return path
    url = getattr(event, "url", None)
    return url_path(url) if url else None


def _getter(name: str) -> Getter:
    if name == "path":
        return _get_path
    if name.startswith("utm."):
        attr = name[4:]

        def get_utm(event: Any) -> object:
            utm = getattr(event, "utm", None)
            return getattr(utm, attr, None) if utm is not None else None

        return get_utm
    if name.startswith("fields."):
        key = name[7:]

        def get_field(event: Any) -> object:
            fields: Mapping[str, object] | None = getattr(event, "fields", None)
            return fields.get(key) if fields else None

        return get_field

    def get_attr(event: Any) -> object:
        return getattr(event, name, None)

    return get_attr


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _glob_test(pattern: str) -> Test:
    if not any(ch in pattern for ch in "*?["):
        folded = pattern.casefold()
        return lambda value: isinstance(value, str) and value.casefold() == folded
    regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE)
    return lambda value: isinstance(value, str) and regex.match(value) is not None


def _globs_test(patterns: list[str]) -> Test:
    """Any of several globs: one set lookup for the plain ones, one regex for the rest."""
    plain = frozenset(p.casefold() for p in patterns if not any(ch in p for ch in "*?["))
    globs = [p for p in patterns if any(ch in p for ch in "*?[")]
    regex = (
        re.compile("|".join(fnmatch.translate(g) for g in globs), re.IGNORECASE) if globs else None
    )

    def test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        if value.casefold() in plain:
            return True
        return regex is not None and regex.match(value) is not None

    return test


def _range_test(gt: float | None, ge: float | None, lt: float | None, le: float | None) -> Test:
    def test(value: object) -> bool:
        if not _is_number(value):
            return False
        number = float(value)  # type: ignore[arg-type]
        return (
            (gt is None or number > gt)
            and (ge is None or number >= ge)
            and (lt is None or number < lt)
            and (le is None or number <= le)
        )

    return test


def _value_test(spec: object) -> Test:  # noqa: PLR0911 - one return per kind of test
    if isinstance(spec, MatchSpec):
        if spec.regex is not None:
            regex = re.compile(spec.regex, re.IGNORECASE)
            return lambda value: isinstance(value, str) and regex.search(value) is not None
        if spec.glob is not None:
            return _glob_test(spec.glob)
        return _range_test(spec.gt, spec.ge, spec.lt, spec.le)
    if isinstance(spec, list):
        if all(isinstance(item, str) for item in spec):
            return _globs_test([str(item) for item in spec])
        tests = [_value_test(item) for item in spec]
        return lambda value: any(test(value) for test in tests)
    if isinstance(spec, bool):
        return lambda value: value is spec
    if isinstance(spec, int | float):
        return lambda value: _is_number(value) and value == spec
    assert isinstance(spec, str)
    return _glob_test(spec)


@dataclass(frozen=True, slots=True)
class EngagementRuleC:
    """An engagement rule ready to run."""

    id: str
    points: float
    group: str
    rate: float
    """Decay rate k = ln 2 / half-life per second (0 for a group that does not decay)."""
    tests: tuple[tuple[Getter, Test], ...]
    cap_count: int
    """0, or the maximum number of scored events per cap window."""
    cap_points: float
    """0, or the maximum number of points per cap window."""
    cap_per: float
    hand_raise: bool
    machine: bool
    """Also scores events a machine made."""
    match: Callable[[object], bool] | None = None
    """`matches` as one function, or `None` for a rule without tests (every event matches)."""

    def matches(self, event: object) -> bool:
        for get, test in self.tests:  # noqa: SIM110 - a plain loop is faster than all(...)
            if not test(get(event)):
                return False
        return True


def _matcher(tests: tuple[tuple[Getter, Test], ...]) -> Callable[[object], bool] | None:
    """All of `tests` as one function (the common single test without a loop)."""
    if not tests:
        return None
    if len(tests) == 1:
        ((get, test),) = tests
        return lambda event: test(get(event))

    def match(event: object) -> bool:
        for get, test in tests:  # noqa: SIM110 - a plain loop is faster than all(...)
            if not test(get(event)):
                return False
        return True

    return match


MISSING: Any = object()
"""What a fit rule's getter returns when the profile event does not carry its field."""


def _fit_getter(name: str) -> Callable[[Traits, int], object]:
    if name == "email_domain":
        return lambda traits, year: email_domain(traits.email) if traits.email else MISSING
    if name == "age":

        def age(traits: Traits, year: int) -> object:
            if traits.age is not None:
                return traits.age
            return year - traits.birth_year if traits.birth_year is not None else MISSING

        return age
    if name.startswith("consent."):
        attr = name[8:]

        def consent(traits: Traits, year: int) -> object:
            value = getattr(traits.consent, attr, None) if traits.consent else None
            return MISSING if value is None else value

        return consent
    if name.startswith("custom."):
        key = name[7:]
        return lambda traits, year: traits.custom.get(key, MISSING)

    def attribute(traits: Traits, year: int) -> object:
        value = getattr(traits, name)
        return MISSING if value is None else value

    return attribute


def _norm(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _fit_scorer(rule: FitRule) -> Callable[[object], float]:
    points = rule.points
    kind = rule.kind
    if kind == "equals":
        expected = _norm(rule.equals)
        return lambda value: points if _norm(value) == expected else 0.0
    if kind == "in":
        members = frozenset(_norm(v) for v in rule.in_ or ())
        if rule.field == "email_domain":

            def in_domains(value: object) -> float:
                if not isinstance(value, str):
                    return 0.0
                parts = value.split(".")
                hit = any(".".join(parts[i:]) in members for i in range(len(parts)))
                return points if hit else 0.0

            return in_domains
        return lambda value: points if _norm(value) in members else 0.0
    if kind == "range":
        assert rule.range is not None
        bounds = rule.range
        return lambda value: (
            points if _is_number(value) and bounds.contains(float(value)) else 0.0  # type: ignore[arg-type]
        )
    if kind == "regex":
        regex = re.compile(rule.regex or "", re.IGNORECASE)
        return lambda value: (
            points if isinstance(value, str) and regex.search(value) is not None else 0.0
        )
    above = float(rule.per_unit_above or 0.0)
    limit = abs(rule.max_points) if rule.max_points is not None else math.inf

    def per_unit(value: object) -> float:
        if not _is_number(value):
            return 0.0
        units = max(0.0, float(value) - above)  # type: ignore[arg-type]
        return math.copysign(min(abs(points) * units, limit), points) if units else 0.0

    return per_unit


def _all_getter(rule: FitRule) -> Callable[[Traits, int], object]:
    """The values of every field a rule with `and` tests (MISSING unless the event has all)."""
    getters = tuple(_fit_getter(name) for name in rule.fields)

    def values(traits: Traits, year: int) -> object:
        got = tuple(get(traits, year) for get in getters)
        return MISSING if any(value is MISSING for value in got) else got

    return values


def _all_scorer(rule: FitRule) -> Callable[[object], float]:
    """A rule with `and`: its points when every test holds on the values `_all_getter` read."""
    from stream.scoring.spec import FitRule  # noqa: PLC0415 - spec compiles models lazily

    tests = [_fit_scorer(rule.model_copy(update={"and_": None, "points": 1.0}))]
    tests += [
        _fit_scorer(FitRule.model_validate({"id": rule.id, "points": 1, **c.matchers()}))
        for c in rule.and_ or ()
    ]
    points = rule.points

    def score(values: object) -> float:
        assert isinstance(values, tuple)
        return points if all(test(v) for test, v in zip(tests, values, strict=True)) else 0.0

    return score


@dataclass(frozen=True, slots=True)
class FitRuleC:
    """A fit rule ready to run."""

    id: str
    field: str
    get: Callable[[Traits, int], object]
    score: Callable[[object], float]
    disqualify: bool


def compile_fit_rule(rule: FitRule) -> FitRuleC:
    """A fit rule ready to run."""
    return FitRuleC(
        id=rule.id,
        field=rule.field,
        get=_all_getter(rule) if rule.and_ else _fit_getter(rule.field),
        score=_all_scorer(rule) if rule.and_ else _fit_scorer(rule),
        disqualify=rule.disqualify,
    )


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What an event type means to one model."""

    kind: int
    rules: tuple[EngagementRuleC, ...]
    burst: bool
    """Counted towards bursts (an action of the person)."""
    machine_attr: str | None
    """The flag that marks a machine-made event of this type (`machine_open`)."""
    mail: int = 0
    """For the machine-timing tests: `SENT`, `DELIVERED`, `OPENED`, `CLICKED`, or 0."""
    engages: bool = field(init=False, default=False)
    """Scored or counted for bursts: `rules or burst`."""
    notes_mail: bool = field(init=False, default=False)
    """A sending or delivery the machine-timing tests remember (`0 < mail <= DELIVERED`)."""

    def __post_init__(self) -> None:
        _setattr = object.__setattr__
        _setattr(self, "engages", bool(self.rules) or self.burst)
        _setattr(self, "notes_mail", 0 < self.mail <= DELIVERED)


SPAM_BITS = {"disposable_email": 1, "invalid_email": 2, "gibberish_name": 4, "bot": 8}


class CompiledModel:
    """Everything `apply` needs from a `ScoringModel`, precomputed."""

    __slots__ = (
        "burst_max",
        "burst_within",
        "check_gibberish",
        "check_invalid",
        "code",
        "crm",
        "dispatch",
        "disposable",
        "dq_mask",
        "fit_by_id",
        "fit_rules",
        "grade_eng",
        "grade_fit",
        "graph",
        "hand_raise_min_fit",
        "hand_raise_within",
        "id",
        "ignore_machine",
        "initial",
        "min_change",
        "mql",
        "rates",
        "rule_of",
        "rules",
        "shadow",
        "spec",
        "sql",
        "timing",
        "top_rules",
        "version",
    )

    def __init__(self, spec: ScoringModel) -> None:
        self.spec = spec
        self.id = spec.id
        self.version = spec.version
        self.shadow = spec.shadow
        """A shadow model publishes no stage change; its scores are marked `shadow`."""
        group_rates = {
            name: (LN2 / half_life if half_life is not None else 0.0)
            for name, half_life in spec.decay.items()
        }
        self.rules: dict[str, EngagementRuleC] = {
            rule.id: self._engagement(rule, group_rates[rule.group]) for rule in spec.engagement
        }
        self.rates: dict[str, float] = {rid: rule.rate for rid, rule in self.rules.items()}
        self.fit_rules = tuple(compile_fit_rule(rule) for rule in spec.fit)
        self.fit_by_id = {rule.id: rule for rule in self.fit_rules}
        ids = [*self.rules, *self.fit_by_id]
        self.code: dict[str, str] = {rule_id: rule_code(rule_id) for rule_id in ids}
        """Rule id → its key in serialised states."""
        self.rule_of: dict[str, str] = {code: rule_id for rule_id, code in self.code.items()}

        spam = spec.spam
        self.disposable = frozenset(spam.disposable_domains) | (
            BUILTIN_DISPOSABLE_DOMAINS if spam.builtin_disposable_domains else frozenset()
        )
        self.check_invalid = spam.invalid_email_domains
        self.check_gibberish = spam.gibberish_names
        self.ignore_machine = spam.ignore_machine_events
        timing = spam.machine_timing
        self.timing: Timing | None = (
            Timing(
                timing.open_within,
                timing.click_within,
                timing.unopened_click_within,
                timing.next_link_within,
                timing.messages,
            )
            if timing is not None and spam.ignore_machine_events
            else None
        )
        """The machine-timing tests (`stream.scoring.mail`), or None when they are off."""
        self.burst_max = spam.burst.max_events if spam.burst is not None else 0
        self.burst_within = spam.burst.within if spam.burst is not None else 0.0
        self.dq_mask = sum(SPAM_BITS[signal] for signal in set(spam.disqualify))

        stages = spec.stages
        self.initial = stages.initial
        self.mql = stages.mql
        self.sql = stages.sql
        self.hand_raise_min_fit = stages.hand_raise.min_fit
        self.hand_raise_within = stages.hand_raise.within
        self.crm: dict[str, Stage] = {
            name: getattr(stages.crm, name) for name in CRM_FEEDBACK_TYPES if name != "stage_set"
        }
        self.graph: Mapping[Stage, frozenset[Stage]] = (
            {stage: frozenset(targets) for stage, targets in stages.graph.items()}
            if stages.graph is not None
            else DEFAULT_GRAPH
        )
        self.grade_fit = spec.grades.fit
        self.grade_eng = spec.grades.engagement
        self.min_change = spec.outputs.min_change
        self.top_rules = spec.outputs.top_rules
        self.dispatch = self._dispatch(spec)

    @staticmethod
    def _engagement(rule: EngagementRule, rate: float) -> EngagementRuleC:
        cap = rule.cap
        tests = tuple((_getter(name), _value_test(value)) for name, value in rule.where.items())
        return EngagementRuleC(
            id=rule.id,
            points=rule.points,
            group=rule.group,
            rate=rate,
            tests=tests,
            cap_count=(cap.max_count or 0) if cap is not None else 0,
            cap_points=(cap.max_points or 0.0) if cap is not None else 0.0,
            cap_per=cap.per if cap is not None else 0.0,
            hand_raise=rule.hand_raise,
            machine=rule.machine,
            match=_matcher(tests),
        )

    def _dispatch(self, spec: ScoringModel) -> dict[str, Dispatch]:
        by_type: dict[str, list[EngagementRuleC]] = {}
        for rule in spec.engagement:
            for event_type in rule.event_types:
                by_type.setdefault(event_type, []).append(self.rules[rule.id])
        table: dict[str, Dispatch] = {}
        bursts = self.burst_max > 0
        for event_type in _ACTION_TYPES | set(by_type):
            rules = tuple(by_type.get(event_type, ()))
            is_action = event_type in _ACTION_TYPES
            if not rules and not (is_action and bursts):
                continue
            kind = ACTION if is_action else FACT if event_type in self.crm else OTHER
            table[event_type] = Dispatch(
                kind=kind,
                rules=rules,
                burst=is_action and bursts,
                machine_attr=_MACHINE_ATTR.get(event_type),
                mail=_MAIL_ROLES.get(event_type, 0) if self.timing is not None else 0,
            )
        if self.timing is not None:
            for event_type in ("email_sent", "email_delivered"):
                if event_type not in table:
                    table[event_type] = Dispatch(
                        MAIL, (), burst=False, machine_attr=None, mail=_MAIL_ROLES[event_type]
                    )
        for event_type in self.crm:
            if event_type not in table:
                table[event_type] = Dispatch(FACT, (), burst=False, machine_attr=None)
        for event_type, kind in (
            ("identify", PROFILE),
            ("profile_updated", PROFILE),
            ("stage_set", STAGE_SET),
            ("leads_merged", MERGE),
            ("lead_erased", ERASE),
        ):
            table[event_type] = Dispatch(kind, (), burst=False, machine_attr=None)
        return table

    def grade(self, fit: float, engagement: float) -> str:
        """The fit letter and engagement digit: `A1` … `D4`."""
        a, b, c = self.grade_fit
        letter = "A" if fit >= a else "B" if fit >= b else "C" if fit >= c else "D"
        one, two, three = self.grade_eng
        digit = "1" if engagement >= one else "2" if engagement >= two else "3"
        if engagement < three:
            digit = "4"
        return letter + digit
