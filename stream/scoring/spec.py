"""Scoring models as data: the YAML model-file format, validated by pydantic.

A model file holds one or more scoring models (one per product line, region or segment: every
lead gets a score under each). The format is documented in the README (`## Scoring models`);
`parse_models` turns the text of a file into a validated `ModelSet` and raises `ModelFileError`
naming the file, the model, the rule and the field of every problem. Reading the file is left to
the caller (`stream.model_files.load_model_file`): this package does no I/O.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import math
import re
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.errors import LeadstreamError
from schemas.events import EVENT_TYPES, Traits, Utm
from schemas.stages import Stage

__all__ = [
    "ACCOUNT_FIT_FIELDS",
    "FIT_FIELDS",
    "AccountLevelSpec",
    "AccountSpec",
    "AccountStagesSpec",
    "BurstSpec",
    "CapSpec",
    "CrmSpec",
    "EngagementRule",
    "FitCondition",
    "FitRule",
    "GradeSpec",
    "HandRaiseSpec",
    "MachineTimingSpec",
    "MatchSpec",
    "ModelFileError",
    "ModelSet",
    "MqlSpec",
    "OutputSpec",
    "Problem",
    "RangeSpec",
    "RoleSpec",
    "ScoringModel",
    "SpamSpec",
    "SqlSpec",
    "StageSpec",
    "parse_duration",
    "parse_models",
    "rule_code",
    "suggest",
]

# ----------------------------------------------------------------------------------- errors


class Problem(BaseModel):
    """One thing wrong with a model file, and where."""

    model_config = ConfigDict(frozen=True)

    model: str | None = None
    """The model's id (or `#n` when it has none)."""
    rule: str | None = None
    """`fit rule 'x'` / `engagement rule 'y'`, when the problem is inside a rule."""
    field: str | None = None
    """The dotted path of the field inside the model or rule, e.g. `cap.max_count`."""
    message: str
    line: int | None = None
    """The line of the file the problem is on (1 is the first)."""

    def describe(self) -> str:
        where = [
            part
            for part in (
                f"line {self.line}" if self.line else None,
                f"model {self.model!r}" if self.model else None,
                self.rule,
                f"field {self.field!r}" if self.field else None,
            )
            if part
        ]
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ModelFileError(LeadstreamError):
    """A scoring-model file that cannot be used. `problems` says what is wrong and where."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = [f"{source}: {problem.describe()}" for problem in self.problems]
        super().__init__("\n".join(lines) if lines else f"{source}: invalid model file")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.source, self.problems))


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the choice closest to a misspelt `word`, else ``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------- values

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_POINTS = 1e6


def parse_duration(value: object) -> float:
    """`'90s'`, `'15m'`, `'12h'`, `'30d'`, `'2w'` → seconds (> 0)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
            if seconds > 0:
                return seconds
    raise ValueError(f"expected a duration such as '30d', '12h', '15m' or '90s', got {value!r}")


def rule_code(rule_id: str) -> str:
    """The 4-character key a rule has in serialised states (24 bits of its id's BLAKE2b hash).

    It depends on the rule's id only, so states survive edits to the model; a model whose rule
    ids collide is rejected (about 1 in 30,000 models of 30 rules).
    """
    digest = hashlib.blake2b(rule_id.encode(), digest_size=3).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _half_life(value: object) -> float | None:
    if value is None or value == "never":
        return None
    return parse_duration(value)


def _version(value: object) -> object:
    # YAML reads an unquoted 2025-06-01 as a date and 3 as an int: a version is text.
    if isinstance(value, date | int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _finite_points(value: float) -> float:
    if not math.isfinite(value) or abs(value) > MAX_POINTS:
        raise ValueError(f"points must be finite and within ±{MAX_POINTS:g}")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
HalfLife = Annotated[float | None, BeforeValidator(_half_life)]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
"""Lower-case id of a model, rule or decay group: letters, digits, `_ . -`, at most 64."""
Version = Annotated[str, BeforeValidator(_version), StringConstraints(pattern=r"^\S{1,64}$")]
Points = Annotated[float, Field(allow_inf_nan=False)]
Scalar = bool | int | float | str


class Spec(BaseModel):
    """Base of the model-file sections: immutable, unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------ fit rules

_TRAIT_TEXT = {
    "email",
    "first_name",
    "last_name",
    "phone",
    "country",
    "region",
    "industry",
    "company",
    "job_title",
    "seniority",
}
_TRAIT_NUMBERS = {"company_size", "annual_revenue", "age", "birth_year"}
_CONSENT = {"consent.email_marketing", "consent.tracking", "consent.profiling"}
FIT_FIELDS: frozenset[str] = frozenset({*_TRAIT_TEXT, *_TRAIT_NUMBERS, *_CONSENT, "email_domain"})
"""Profile attributes fit rules can test, besides `custom.<name>` (see `schemas.events.Traits`).

`email_domain` is the lower-cased domain of `email`; `age` falls back to the event's year minus
`birth_year` when only the birth year is known.
"""
assert {name for name in FIT_FIELDS if "." not in name} - {"email_domain"} <= set(
    Traits.model_fields
)

NUMERIC_FIT_FIELDS = frozenset(_TRAIT_NUMBERS)
TEXT_FIT_FIELDS = frozenset({*_TRAIT_TEXT, "email_domain"})


class RangeSpec(Spec):
    """A numeric range; give at least one bound."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.gt is None and self.ge is None and self.lt is None and self.le is None:
            raise ValueError("give at least one of gt, ge, lt, le")
        lows = [(b, True) for b in (self.gt,) if b is not None] + [
            (b, False) for b in (self.ge,) if b is not None
        ]
        highs = [(b, True) for b in (self.lt,) if b is not None] + [
            (b, False) for b in (self.le,) if b is not None
        ]
        for low, open_low in lows:
            for high, open_high in highs:
                if low > high or (low == high and (open_low or open_high)):
                    raise ValueError(f"no value is {self.describe()}: the rule could never match")
        return self

    def contains(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.lt is None or value < self.lt)
            and (self.le is None or value <= self.le)
        )

    def describe(self) -> str:
        parts = [
            f"{symbol} {bound:g}"
            for symbol, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
            if bound is not None
        ]
        return " and ".join(parts)


_MATCHERS = ("equals", "in", "range", "regex", "per_unit_above")


def _show(value: object) -> str:
    """A value as the model file writes it (`true`, not `True`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class FitCondition(Spec):
    """A further test of a fit rule (`and:`): one profile attribute tested one way, with
    exactly one of `equals`, `in`, `range` or `regex` (as in a fit rule)."""

    field: str
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    range: RangeSpec | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _valid_test(self) -> Self:
        try:
            FitRule.model_validate({"id": "and", "points": 1, **self.matchers()})
        except ValidationError as exc:
            messages = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError("; ".join(messages)) from None
        return self

    def matchers(self) -> dict[str, object]:
        """The condition's test as fit-rule keys (`{"field": ..., "in": [...]}`)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class FitRule(Spec):
    """Points for who the lead is: one profile attribute tested one way, or several (`and`).

    Exactly one of `equals`, `in`, `range`, `regex` or `per_unit_above` is given. Text is
    compared case-insensitively; `in` on `email_domain` also matches subdomains. With
    `per_unit_above: 25` the rule gives `points` per unit above 25 (e.g. +1 per year of age above
    25), at most `max_points`.

    `and` lists further conditions on other attributes (not with `per_unit_above`): the rule
    gives its points when all of them hold. It is evaluated on a profile event that carries
    every one of its fields; an event that lacks one leaves the rule's points as they were.
    """

    id: Name
    field: str
    points: Points
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    range: RangeSpec | None = None
    regex: str | None = None
    per_unit_above: float | None = None
    max_points: float | None = None
    and_: list[FitCondition] | None = Field(default=None, alias="and", min_length=1)
    disqualify: bool = False
    """A match disqualifies the lead (e.g. a competitor's domain)."""
    description: str | None = None

    _check_points = field_validator("points")(_finite_points)

    @field_validator("disqualify")
    @classmethod
    def _needs_points(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("points") == 0:
            raise ValueError("a disqualifying rule needs non-zero points (a match is non-zero)")
        return value

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value in FIT_FIELDS or re.fullmatch(r"custom\.[^\s.]{1,128}", value):
            return value
        known = ", ".join(sorted(FIT_FIELDS))
        raise ValueError(
            f"unknown profile field {value!r}{suggest(value, FIT_FIELDS)} "
            f"(known: {known}, custom.<name>)"
        )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_matcher(self) -> Self:
        given = [name for name in _MATCHERS if self.matcher_value(name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"field {self.field!r}: give exactly one of {', '.join(_MATCHERS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        kind = given[0]
        numeric_only = kind in ("range", "per_unit_above")
        if numeric_only and self.field in TEXT_FIT_FIELDS:
            raise ValueError(f"field {kind!r}: {self.field!r} is text, not a number")
        if kind == "regex" and self.field in NUMERIC_FIT_FIELDS:
            raise ValueError(f"field 'regex': {self.field!r} is a number, not text")
        if self.max_points is not None and kind != "per_unit_above":
            raise ValueError("field 'max_points': only used with per_unit_above")
        if self.and_ and kind == "per_unit_above":
            raise ValueError("field 'and': not with per_unit_above")
        if self.and_ and len({self.field, *(c.field for c in self.and_)}) <= len(self.and_):
            raise ValueError("field 'and': each condition tests another field")
        return self

    @property
    def fields(self) -> tuple[str, ...]:
        """The attributes the rule tests: `field`, then those of `and`."""
        return (self.field, *(c.field for c in self.and_ or ()))

    def matcher_value(self, name: str) -> object:
        return self.in_ if name == "in" else getattr(self, name)

    @property
    def kind(self) -> str:
        return next(name for name in _MATCHERS if self.matcher_value(name) is not None)

    def describe_test(self, *, full: bool = False) -> str:
        """The test in words, for tables: `industry in [saas, software]` (long lists and
        patterns shortened unless `full`)."""
        if self.and_:
            tests = [self.model_copy(update={"and_": None})]
            tests += [
                FitRule.model_validate({"id": "and", "points": 1, **c.matchers()})
                for c in self.and_
            ]
            return " and ".join(test.describe_test(full=full) for test in tests)
        kind = self.kind
        if kind == "equals":
            return f"{self.field} = {_show(self.equals)}"
        if kind == "in":
            values = self.in_ or []
            listed = values if full else values[:4]
            more = ", ..." if len(values) > len(listed) else ""
            return f"{self.field} in [{', '.join(_show(v) for v in listed)}{more}]"
        if kind == "range":
            assert self.range is not None
            return f"{self.field} {self.range.describe()}"
        if kind == "regex":
            regex = self.regex or ""
            return f"{self.field} ~ /{regex if full else _shorten(regex)}/"
        cap = f", max {self.max_points:g}" if self.max_points is not None else ""
        return f"{self.field}: per unit above {self.per_unit_above:g}{cap}"


# ----------------------------------------------------------------------- engagement rules


class MatchSpec(Spec):
    """A property test that is not plain equality: a regex, a glob or a numeric range."""

    regex: str | None = None
    glob: str | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            self.regex is not None,
            self.glob is not None,
            any(b is not None for b in (self.gt, self.ge, self.lt, self.le)),
        ]
        if sum(kinds) != 1:
            raise ValueError("give one of regex, glob or a range (gt, ge, lt, le)")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return self


WhereValue = Scalar | list[Scalar] | MatchSpec


class CapSpec(Spec):
    """At most `max_count` scored events or `max_points` points per rule per window `per`.

    Windows are consecutive, UTC-aligned stretches of `per` (days start at 00:00 UTC).
    """

    max_count: Annotated[int, Field(ge=1)] | None = None
    max_points: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    per: Duration

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.max_count is None) == (self.max_points is None):
            raise ValueError("give exactly one of max_count and max_points")
        return self

    def describe(self) -> str:
        if self.max_count is not None:
            limit = f"{self.max_count} event{'s' if self.max_count > 1 else ''}"
        else:
            limit = f"{self.max_points:g} points"
        return f"{limit} / {format_duration(self.per)}"


_BASE_FIELDS = {"source"}
_UTM_FIELDS = {f"utm.{name}" for name in Utm.model_fields}


def event_fields(event_type: str) -> set[str]:
    """The property names an engagement rule on `event_type` can test in `where`."""
    cls = EVENT_TYPES[event_type]
    names = {
        name
        for name in cls.model_fields
        if name
        not in {"type", "event_id", "occurred_at", "lead_id", "anonymous_id", "utm", "fields"}
    }
    names |= _BASE_FIELDS
    if "url" in cls.model_fields:
        names.add("path")
    if "utm" in cls.model_fields:
        names |= _UTM_FIELDS
    return names


def _where_field_ok(event_type: str, name: str) -> bool:
    if name in event_fields(event_type):
        return True
    return "fields" in EVENT_TYPES[event_type].model_fields and bool(
        re.fullmatch(r"fields\.\S{1,128}", name)
    )


UNSCORABLE_TYPES = frozenset(
    {"leads_merged", "lead_erased", "identify", "profile_updated", "stage_set"}
)


class EngagementRule(Spec):
    """Points for something the lead did: an event type plus property tests.

    `where` maps a property of the event to a test: a text value is a glob (`/pricing*`,
    case-insensitive), a list means any of its values, `{regex: ...}` a regular expression,
    `{ge: 50}` a numeric range; `true`/`false` and numbers compare equal. `path` is the URL's path
    (from `path`, else from `url`). Every rule that matches an event scores it.
    """

    id: Name
    event: str | list[str]
    """One event type or a list of them, e.g. `page_viewed`."""
    where: dict[str, WhereValue] = Field(default_factory=dict)
    points: Points
    group: Name
    """The decay group (see the model's `decay`)."""
    cap: CapSpec | None = None
    hand_raise: bool = False
    """A hand-raise (demo, trial, pricing request): with enough fit, the lead becomes SQL."""
    machine: bool = False
    """Score the rule's events also when a machine made them (see `spam.ignore_machine_events`):
    for example a point for a privacy proxy's open, which says the address is delivered."""
    description: str | None = None

    _check_points = field_validator("points")(_finite_points)

    @field_validator("event")
    @classmethod
    def _known_types(cls, value: str | list[str]) -> str | list[str]:
        for name in [value] if isinstance(value, str) else value:
            if name not in EVENT_TYPES:
                raise ValueError(f"unknown event type {name!r}{suggest(name, EVENT_TYPES)}")
            if name in UNSCORABLE_TYPES:
                raise ValueError(
                    f"{name!r} cannot be scored by an engagement rule "
                    "(profile events feed the fit rules; merges, erasure and stages set by "
                    "hand are not actions)"
                )
        if not value:
            raise ValueError("give at least one event type")
        return value

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.event,) if isinstance(self.event, str) else tuple(self.event)

    @model_validator(mode="after")
    def _where_fields_exist(self) -> Self:
        for name in self.where:
            missing = [t for t in self.event_types if not _where_field_ok(t, name)]
            if missing:
                fields = event_fields(missing[0])
                known = ", ".join(sorted(fields))
                raise ValueError(
                    f"field 'where.{name}': {missing[0]} has no property {name!r}"
                    f"{suggest(name, fields)} (known: {known})"
                )
        if self.cap is not None and self.cap.max_points is not None and self.points <= 0:
            raise ValueError("field 'cap.max_points': a points cap needs positive points")
        return self

    def describe_test(self, *, full: bool = False) -> str:
        """The event and its tests in words (long patterns shortened unless `full`)."""
        types = " | ".join(self.event_types)
        if not self.where:
            return types
        tests = []
        for name, value in self.where.items():
            if isinstance(value, MatchSpec):
                if value.regex is not None:
                    regex = value.regex if full else _shorten(value.regex)
                    tests.append(f"{name} ~ /{regex}/")
                elif value.glob is not None:
                    tests.append(f"{name} = {value.glob}")
                else:
                    bounds = RangeSpec(gt=value.gt, ge=value.ge, lt=value.lt, le=value.le)
                    tests.append(f"{name} {bounds.describe()}")
            elif isinstance(value, list):
                tests.append(f"{name} in [{', '.join(_show(v) for v in value)}]")
            else:
                tests.append(f"{name} = {_show(value)}")
        return f"{types} where {', '.join(tests)}"


# ---------------------------------------------------------------------------- stages


Basis = Literal["total", "engagement", "fit"]


class MqlSpec(Spec):
    """Marketing qualification with hysteresis: promote at >= `promote_at`; an MQL whose score
    falls below `demote_below` (engagement decays) is recycled."""

    promote_at: float
    demote_below: float | None = None
    basis: Basis = "total"
    min_fit: float | None = None
    min_engagement: float | None = None

    @model_validator(mode="after")
    def _band(self) -> Self:
        if self.demote_below is not None and self.demote_below > self.promote_at:
            raise ValueError("field 'demote_below': must not be above promote_at")
        return self


class SqlSpec(Spec):
    """Sales qualification by score: promote at >= `promote_at` (sales owns SQL afterwards)."""

    promote_at: float
    basis: Basis = "total"
    min_fit: float | None = None
    min_engagement: float | None = None


class HandRaiseSpec(Spec):
    """A hand-raise rule's event makes the lead SQL when its fit is at least `min_fit`: then,
    or when profile data dated at most `within` after it arrives (enrichment often comes
    later)."""

    min_fit: float = 0.0
    within: Duration = 30 * 86_400.0


class CrmSpec(Spec):
    """The stage each CRM feedback event moves a lead to."""

    sales_accepted: Stage = Stage.SQL
    sales_rejected: Stage = Stage.RECYCLED
    opportunity_created: Stage = Stage.OPPORTUNITY
    closed_won: Stage = Stage.CUSTOMER
    closed_lost: Stage = Stage.RECYCLED
    disqualified: Stage = Stage.DISQUALIFIED


class StageSpec(Spec):
    """Lifecycle stages: thresholds, hand-raises, CRM feedback and the allowed transitions."""

    initial: Stage = Stage.LEAD
    mql: MqlSpec | None = None
    sql: SqlSpec | None = None
    hand_raise: HandRaiseSpec = Field(default_factory=HandRaiseSpec)
    crm: CrmSpec = Field(default_factory=CrmSpec)
    graph: dict[Stage, list[Stage]] | None = None
    """Allowed transitions (stage → stages it may move to); the default graph when omitted."""

    @model_validator(mode="after")
    def _sql_not_below_mql(self) -> Self:
        mql, sql = self.mql, self.sql
        if (
            mql is not None
            and sql is not None
            and sql.basis == mql.basis
            and sql.promote_at < mql.promote_at
        ):
            raise ValueError(
                f"field 'sql.promote_at': {sql.promote_at:g} is below the MQL threshold "
                f"mql.promote_at {mql.promote_at:g} (both on the {sql.basis} score): a lead "
                "would reach SQL before MQL; give an SQL threshold at or above the MQL one"
            )
        return self


class GradeSpec(Spec):
    """Fit bands A-D and engagement bands 1-4: `fit: [15, 8, 0]` means A >= 15, B >= 8,
    C >= 0, D below; `engagement: [60, 30, 10]` means 1 >= 60, ..., 4 below 10."""

    fit: tuple[float, float, float]
    engagement: tuple[float, float, float]

    @field_validator("fit", "engagement")
    @classmethod
    def _descending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not value[0] >= value[1] >= value[2]:
            raise ValueError("band thresholds must be in descending order")
        return value


# ------------------------------------------------------------------------------- spam

SpamSignal = Literal["disposable_email", "invalid_email", "gibberish_name", "bot"]
_DEFAULT_DISQUALIFY: tuple[SpamSignal, ...] = (
    "disposable_email",
    "invalid_email",
    "gibberish_name",
)


class BurstSpec(Spec):
    """More than `max_events` actions within `within` is a bot: the burst does not score."""

    max_events: Annotated[int, Field(ge=2, le=1000)]
    within: Duration


class MachineTimingSpec(Spec):
    """When the timing of an email open or click says a machine made it.

    Judged per message from the lead's recent deliveries (`email_delivered`, else `email_sent`):
    mail privacy proxies fetch images as a message is delivered, and security gateways follow
    every link of a message seconds after delivery, one link after another. A person needs
    longer. `null` for any of them turns that test off.
    """

    open_within: Duration | None = 1.0
    """An open this soon after delivery."""
    click_within: Duration | None = 10.0
    """A click this soon after delivery."""
    unopened_click_within: Duration | None = 30.0
    """A click this soon after delivery when no person's open of the message came first."""
    next_link_within: Duration | None = 2.0
    """A click on another link of the message this soon after the previous click."""
    messages: Annotated[int, Field(ge=1, le=16)] = 4
    """How many of the lead's latest messages are remembered (each only until every test
    above has expired for it)."""


class SpamSpec(Spec):
    """Spam, fake-data and bot signals."""

    disposable_domains: list[str] = Field(default_factory=list)
    """Added to the built-in list of throwaway-address providers."""
    builtin_disposable_domains: bool = True
    invalid_email_domains: bool = True
    gibberish_names: bool = True
    ignore_machine_events: bool = True
    """Events a machine made (privacy proxies' opens, link scanners' clicks, prefetches: the
    event's `machine` field, a vendor's flag, or `machine_timing`) score only by rules that say
    `machine: true`. `false` scores them as a person's and turns `machine_timing` off."""
    machine_timing: MachineTimingSpec | None = Field(default_factory=MachineTimingSpec)
    """Machine opens and clicks told by their timing; `null` turns the judgement off."""
    burst: BurstSpec | None = Field(
        default_factory=lambda: BurstSpec.model_validate({"max_events": 12, "within": "10s"})
    )
    """Bot bursts; `null` turns detection off."""
    disqualify: list[SpamSignal] = Field(default_factory=lambda: list(_DEFAULT_DISQUALIFY))
    """Signals that disqualify the lead (the others are only flagged)."""

    @field_validator("disposable_domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower() for domain in value]


class OutputSpec(Spec):
    """When a score update is published, and what it carries."""

    min_change: Annotated[float, Field(ge=0)] = 0.5
    """Publish a score update only when fit or engagement moved at least this much since the
    last one (or the grade or stage changed); 0 publishes one for every applied event."""
    top_rules: Annotated[int, Field(ge=0, le=20)] = 3


# ------------------------------------------------------------------------------ models


class ScoringModel(Spec):
    """One scoring model: fit, engagement and negative rules, decay, stages and grades."""

    id: Name
    version: Version
    description: str | None = None
    shadow: bool = False
    """A challenger: scored in the same pass and published with its id, never moving stages
    (no stage change is published for it; its records carry `shadow: true`)."""
    decay: dict[Name, HalfLife]
    """Decay groups: name → half-life (`30d`), or `never` for points that do not fade."""
    fit: list[FitRule] = Field(default_factory=list)
    engagement: list[EngagementRule] = Field(default_factory=list)
    stages: StageSpec = Field(default_factory=StageSpec)
    grades: GradeSpec
    spam: SpamSpec = Field(default_factory=SpamSpec)
    outputs: OutputSpec = Field(default_factory=OutputSpec)

    _compiled: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: dict[str, str] = {}
        for kind, rules in (("fit", self.fit), ("engagement", self.engagement)):
            for rule in rules:
                if rule.id in seen:
                    raise ValueError(
                        f"{kind} rule {rule.id!r}, field 'id': the id is already used by a "
                        f"{seen[rule.id]} rule (rule ids are unique within a model)"
                    )
                seen[rule.id] = kind
        codes: dict[str, str] = {}
        for rule_id, kind in seen.items():
            code = rule_code(rule_id)
            if code in codes:
                raise ValueError(
                    f"{kind} rule {rule_id!r}, field 'id': its state key collides with rule "
                    f"{codes[code]!r}'s (a 1-in-a-million chance); rename one of them"
                )
            codes[code] = rule_id
        for erule in self.engagement:
            if erule.group not in self.decay:
                known = ", ".join(self.decay) or "none"
                raise ValueError(
                    f"engagement rule {erule.id!r}, field 'group': unknown decay group "
                    f"{erule.group!r}{suggest(erule.group, self.decay)} (known: {known})"
                )
            if erule.points < 0 and self.decay[erule.group] is not None:
                raise ValueError(
                    f"engagement rule {erule.id!r}, field 'group': negative points need a "
                    f"decay group that does not decay (decaying negative points would make "
                    f"scores rise without events); {erule.group!r} has a half-life"
                )
        if self.stages.graph is not None:
            graph = self.stages.graph
            if self.stages.initial not in graph:
                raise ValueError(
                    f"field 'stages.graph': the initial stage {self.stages.initial.value!r} "
                    "has no entry"
                )
        return self

    @model_validator(mode="after")
    def _compile(self) -> Self:
        # After `_consistent` (validators run in the order they are defined): only a model
        # that passed every check is compiled.
        from stream.scoring.compiled import CompiledModel  # noqa: PLC0415  (cycle)

        self._compiled = CompiledModel(self)
        return self

    @property
    def compiled(self) -> Any:
        """The model prepared for scoring (a `stream.scoring.compiled.CompiledModel`)."""
        # Read the private attribute directly: pydantic's attribute fallback costs ~2 µs.
        private = self.__pydantic_private__
        return private["_compiled"] if private else self._compiled

    def __hash__(self) -> int:
        return hash((self.id, self.version))


# ----------------------------------------------------------------------------- accounts

ACCOUNT_FIT_FIELDS = frozenset({"industry", "company_size", "annual_revenue", "country", "region"})
"""Firmographic attributes account fit rules can test (the latest value any member gave)."""


class RoleSpec(Spec):
    """A buying-group role, recognised from a member's job title."""

    id: Name
    regex: str
    """Tested case-insensitively against the job title."""
    points: Points = 0.0
    """Points the account gets while at least one member holds the role."""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class AccountLevelSpec(Spec):
    """One score-driven account stage, with hysteresis: reached at `promote_at` (when the
    account also covers `min_roles` roles and has `min_contacts` engaged contacts), left when
    the score falls below `demote_below`."""

    promote_at: float
    demote_below: float
    min_roles: Annotated[int, Field(ge=0)] = 0
    min_contacts: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _band(self) -> Self:
        if self.demote_below > self.promote_at:
            raise ValueError("field 'demote_below': must not be above promote_at")
        return self


class AccountStagesSpec(Spec):
    """Account stages driven by the score; `opportunity` and `customer` follow the members'
    CRM stages."""

    engaged: AccountLevelSpec
    mqa: AccountLevelSpec

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.mqa.promote_at <= self.engaged.promote_at:
            raise ValueError("field 'mqa.promote_at': must be above engaged.promote_at")
        return self


class AccountSpec(Spec):
    """Account-based scoring: leads roll up to their company's account.

    A lead's account is its explicit `account_id` (profile or CRM feedback), else the domain of
    its business email (free-mail, disposable and invalid domains excluded). The account score
    is its fit (firmographics) + the sum of its members' decayed engagement under `model` +
    the points of the buying-group roles covered + `contact_points` per engaged contact (at
    most `max_contacts`): a member is engaged while its latest action is less than
    `engaged_within` old.
    """

    model: Name
    """The lead model whose engagement rolls up."""
    fit: list[FitRule] = Field(default_factory=list)
    roles: list[RoleSpec] = Field(default_factory=list)
    engaged_within: Duration = 30 * 86_400.0
    contact_points: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    max_contacts: Annotated[int, Field(ge=0, le=1000)] = 5
    stages: AccountStagesSpec
    excluded_domains: list[str] = Field(default_factory=list)
    """Email domains that never name an account, besides the built-in free-mail and
    disposable lists."""

    @field_validator("fit")
    @classmethod
    def _firmographic(cls, rules: list[FitRule]) -> list[FitRule]:
        for rule in rules:
            for name in rule.fields:
                if name not in ACCOUNT_FIT_FIELDS:
                    known = ", ".join(sorted(ACCOUNT_FIT_FIELDS))
                    raise ValueError(
                        f"account fit rule {rule.id!r}: field {name!r} is not firmographic "
                        f"(known: {known})"
                    )
        return rules

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[RoleSpec]) -> list[RoleSpec]:
        ids = [role.id for role in roles]
        if len(set(ids)) != len(ids):
            raise ValueError("role ids must be unique")
        return roles


class ModelSet(Spec):
    """The models of one file, in file order."""

    format: Literal[1] = 1
    """The version of the file format."""
    models: tuple[ScoringModel, ...]
    accounts: AccountSpec | None = None
    """Account-based scoring (`None`: leads are not rolled up to accounts)."""

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        if not self.models:
            raise ValueError("field 'models': give at least one model")
        ids = [model.id for model in self.models]
        for index, model_id in enumerate(ids):
            if model_id in ids[:index]:  # named at its second use, with that line
                raise ValueError(
                    f"field 'models.{index}.id': the id {model_id!r} is already used by an "
                    "earlier model (model ids must be unique)"
                )
        if self.accounts is not None and self.accounts.model not in ids:
            raise ValueError(
                f"field 'accounts.model': unknown model {self.accounts.model!r} "
                f"(known: {', '.join(ids)})"
            )
        if self.accounts is not None and self.get(self.accounts.model).shadow:
            raise ValueError(
                f"field 'accounts.model': {self.accounts.model!r} is a shadow model, which "
                "moves no stage: accounts roll up a live model"
            )
        return self

    _linker: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _link(self) -> Self:
        if self.accounts is not None:
            from stream.scoring.accountlink import Linker  # noqa: PLC0415  (cycle)

            self._linker = Linker(self.accounts, self.get(self.accounts.model).compiled)
        return self

    @property
    def linker(self) -> Any:
        """The account section compiled (a `stream.scoring.accountlink.Linker`), or `None`."""
        private = self.__pydantic_private__
        return private["_linker"] if private else self._linker

    _by_type: Any = PrivateAttr(default=None)

    @property
    def by_type(self) -> dict[str, tuple[tuple[ScoringModel, Any, Any], ...]]:
        """Event type → `(model, compiled model, dispatch)` for every model that has something
        to do with events of that type, in file order (`stream.scoring.compiled.Dispatch`)."""
        private = self.__pydantic_private__
        table = private.get("_by_type") if private else None
        if table is None:
            grouped: dict[str, list[tuple[ScoringModel, Any, Any]]] = {}
            for model in self.models:
                compiled = model.compiled
                for event_type, dispatch in compiled.dispatch.items():
                    grouped.setdefault(event_type, []).append((model, compiled, dispatch))
            table = {event_type: tuple(entries) for event_type, entries in grouped.items()}
            self._by_type = table
        return table

    def get(self, model_id: str) -> ScoringModel:
        """The model with this id (KeyError when there is none)."""
        for model in self.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)

    def no_model(self, model_id: str) -> str:
        """Why `model_id` names none of these models, for an error message: `has no model 'x'
        (did you mean 'y'?) (models: a, b)`."""
        ids = self.ids
        return f"has no model {model_id!r}{suggest(model_id, ids)} (models: {', '.join(ids)})"

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(model.id for model in self.models)

    def __len__(self) -> int:
        return len(self.models)

    def iter_models(self) -> Iterator[ScoringModel]:
        return iter(self.models)


def format_duration(seconds: float) -> str:
    """Seconds → the shortest exact unit: 2592000 → `30d`."""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# ------------------------------------------------------------------------------ parsing


class _Loader(yaml.SafeLoader):
    """YAML with two traps removed: only `true`/`false` are booleans (YAML 1.1 also reads
    `on`, `no`, `yes`, `off`, so a country code `NO` became false), and a key given twice in one
    mapping is an error rather than silently the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (line {mark.line + 1})", mark
                )
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _label(items: object, index: object, kind: str) -> str:
    if isinstance(items, list) and isinstance(index, int) and 0 <= index < len(items):
        item = items[index]
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            return str(item["id"])
    return f"#{index + 1}" if isinstance(index, int) else str(index)


def _dotted(parts: Sequence[object]) -> str | None:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or None


_RULE_IN_MESSAGE = re.compile(r"^(fit|engagement) rule '([^']*)', field '([^']*)': (.*)$", re.S)
_FIELD_IN_MESSAGE = re.compile(r"^field '([^']*)': (.*)$", re.S)

_YamlPath = tuple[object, ...]


def _lines(text: str) -> dict[_YamlPath, int]:
    """The line (from 1) of every key and list item of the YAML text, by its path."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    lines: dict[_YamlPath, int] = {}

    def walk(node: yaml.Node, path: _YamlPath, line: int) -> None:
        lines[path] = line
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, key.value), key.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), item.start_mark.line + 1)

    if root is not None:
        walk(root, (), root.start_mark.line + 1)
    return lines


def _line(lines: Mapping[_YamlPath, int], path: Sequence[object]) -> int | None:
    """The line of `path`, or of the nearest enclosing key or item the file has."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def _model_classes(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Optional, unions, lists, dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [cls for arg in typing.get_args(annotation) for cls in _model_classes(arg)]


def _known_keys(loc: Sequence[object]) -> set[str]:
    """The keys the format allows in the mapping at `loc` (empty when it is not a section)."""
    classes: list[type[BaseModel]] = [ModelSet]
    for part in loc:
        if isinstance(part, int):
            continue
        inner: list[type[BaseModel]] = []
        for cls in classes:
            for name, info in cls.model_fields.items():
                if part in (name, info.alias):
                    inner += _model_classes(info.annotation)
        if not inner:
            return set()
        classes = inner
    return {
        key
        for cls in classes
        for name, info in cls.model_fields.items()
        for key in (info.alias or name,)
    }


def _rule_index(raw: object, model: object, kind: str, rule_id: str) -> int | None:
    models = raw.get("models") if isinstance(raw, Mapping) else None
    if not isinstance(models, list) or not isinstance(model, int) or model >= len(models):
        return None
    rules = models[model].get(kind) if isinstance(models[model], Mapping) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, Mapping) and rule.get("id") == rule_id:
            return index
    return None


def _problem(error: Mapping[str, Any], raw: object, lines: Mapping[_YamlPath, int]) -> Problem:
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "required"
    elif error["type"] == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown field (not part of the format){suggest(key, _known_keys(loc[:-1]))}"
    if len(loc) < 2 or loc[0] != "models":
        match = _FIELD_IN_MESSAGE.match(message)
        if match and not loc:  # the file's own checks: "field 'models': ..."
            where: list[object] = [int(p) if p.isdigit() else p for p in match[1].split(".")]
            line = _line(lines, where)
            if len(where) > 2 and where[0] == "models" and isinstance(where[1], int):
                models = raw.get("models") if isinstance(raw, Mapping) else None
                model = _label(models, where[1], "model")
                return Problem(model=model, field=_dotted(where[2:]), message=match[2], line=line)
            return Problem(field=match[1], message=match[2], line=line)
        return Problem(field=_dotted(loc), message=message, line=_line(lines, loc))
    models = raw.get("models") if isinstance(raw, Mapping) else None
    model = _label(models, loc[1], "model")
    rest = loc[2:]
    path: list[object] = list(loc)
    rule: str | None = None
    if len(rest) >= 2 and rest[0] in ("fit", "engagement") and isinstance(rest[1], int):
        model_raw = models[loc[1]] if isinstance(models, list) else None
        rules = model_raw.get(rest[0]) if isinstance(model_raw, Mapping) else None
        rule = f"{rest[0]} rule {_label(rules, rest[1], 'rule')!r}"
        path = loc[:4]
        rest = rest[2:]
        path += rest
    match = _RULE_IN_MESSAGE.match(message)
    if match and rule is None:
        rule, field_name, message = f"{match[1]} rule {match[2]!r}", match[3], match[4]
        index = _rule_index(raw, loc[1], match[1], match[2])
        path = loc[:2] + ([match[1], index, *field_name.split(".")] if index is not None else [])
        return Problem(
            model=model, rule=rule, field=field_name, message=message, line=_line(lines, path)
        )
    match = _FIELD_IN_MESSAGE.match(message)
    field_name = _dotted(rest)
    if match:
        inner = match[1]
        field_name = f"{field_name}.{inner}" if field_name and rule is None else inner
        message = match[2]
        path += inner.split(".")
    return Problem(
        model=model, rule=rule, field=field_name, message=message, line=_line(lines, path)
    )


def parse_models(text: str, *, source: str = "<string>") -> ModelSet:
    """Parse and validate the text of a model file. `source` names it in error messages."""
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ModelFileError(
            source, [Problem(message=f"not valid YAML: {where}{problem}")]
        ) from exc
    if not isinstance(raw, Mapping):
        raise ModelFileError(
            source, [Problem(message="expected a mapping with a 'models' list at the top")]
        )
    try:
        return ModelSet.model_validate(raw)
    except ValidationError as exc:
        lines = _lines(text)
        problems = [_problem(error, raw, lines) for error in exc.errors()]
        raise ModelFileError(source, problems) from exc
