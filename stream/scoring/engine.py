"""The scoring fold `apply(state, event, model) -> Transition(state, outputs)`, and time helpers.

Everything here is a pure function of its arguments: time is the event's `occurred_at`, and only
the timer helpers (`advance`, `score_at`) take a `now`, which the caller passes in.

Semantics in brief (the README's "Scoring models" section has the whole story):

- **Idempotent.** The ids of the last `SEEN_IDS` events applied to a lead are remembered; an event
  seen again changes nothing and produces no outputs.
- **Order-independent scores.** Fit rules are last-writer-wins per rule by event time; engagement
  decays exactly (see `stream.scoring.decay`), so without caps the scores do not depend on the
  order events arrive in. Caps and bursts are windows over event time, so their outcome can.
- **Stages.** After every event the stage is decided at the lead's time (`as_of`, the latest
  event time): CRM feedback and hand-set stages (the newest by event time wins; older ones are
  stale), new disqualifying signals, hand-raises with enough fit, then thresholds with
  hysteresis. Decay-driven transitions (an MQL falling below its demotion threshold is recycled)
  happen at the exact crossing time, whether the timer (`advance`) or a later event finds them.
  Every transition is checked against the model's graph.
- **Outputs.** A `StageChanged` for every transition (deterministic event id); a `ScoreUpdated`
  when the stage or grade changed or fit or engagement moved by at least `outputs.min_change`
  since the last published one (with `min_change: 0`, for every applied event), and always at a
  CRM outcome (marked with it, for the live evaluation of every model).
- **Shadow models** (`shadow: true`) are scored like the others and keep the stage they would
  have given, but publish no `StageChanged`; their score updates are marked `shadow`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from schemas.events import EventBase, StageSet, Traits
from schemas.outputs import (
    LeadErasedRecord,
    RuleContribution,
    ScoreSnapshot,
    ScoreUpdated,
    StageChanged,
    stage_change_event_id,
)
from schemas.stages import HUBSPOT_LIFECYCLESTAGE, SALESFORCE_LEAD_STATUS, Stage
from stream.scoring import decay
from stream.scoring.accountlink import merge_links
from stream.scoring.compiled import (
    CLICKED,
    ERASE,
    FACT,
    MAIL,
    MERGE,
    MISSING,
    OPENED,
    PROFILE,
    SENT,
    STAGE_SET,
    CompiledModel,
    Dispatch,
    EngagementRuleC,
)
from stream.scoring.mail import Entry as MailEntry
from stream.scoring.mail import judge_click, judge_open, note_delivery, prune
from stream.scoring.spam import (
    email_domain,
    is_disposable_domain,
    is_gibberish_name,
    is_invalid_domain,
)
from stream.scoring.spec import ModelSet, ScoringModel
from stream.scoring.stages import FUNNEL_RANK, MARKETING_STAGES, allowed
from stream.scoring.state import (
    BOT,
    CAP_LATE_WINDOWS,
    DISPOSABLE,
    FIT_DQ,
    FLAG_NAMES,
    GIBBERISH,
    HISTORY,
    HOLD,
    INVALID,
    MANUAL,
    RECENT,
    Caps,
    Contribution,
    LeadState,
    ModelState,
    StageEntry,
    event_hash,
    seen_add,
    seen_contains,
    seen_union,
)

__all__ = [
    "Output",
    "Score",
    "Transition",
    "advance",
    "advance_all",
    "apply",
    "apply_all",
    "apply_batch",
    "merge_lead_states",
    "merge_states",
    "next_crossing",
    "next_crossing_all",
    "score_at",
]

Output = ScoreUpdated | StageChanged | LeadErasedRecord
S = TypeVar("S", ModelState, LeadState)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MQL = Stage.MQL
_floor = math.floor
_MAX_POINTS = 1e9
_MAX_STEPS = 16
"""Decay transitions `advance` performs at most per call (a handful is the most a lead has)."""


class Transition(NamedTuple, Generic[S]):
    """The result of one step: the new state and what to publish.

    `state` is `None` when there is no state to keep: the lead was erased (delete it), or the
    event meant nothing to a lead that had no state (write nothing).
    """

    state: S | None
    outputs: tuple[Output, ...] = ()
    scored: tuple[Contribution, ...] = ()
    """The points rules gave for the event, after caps (for metrics and tests)."""


@dataclass(frozen=True, slots=True)
class Score:
    """A lead's score under one model at a moment."""

    model: str
    fit: float
    engagement: float
    total: float
    grade: str
    stage: Stage
    as_of: datetime


# ------------------------------------------------------------------------ helpers


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError(f"a timezone-aware datetime is required, got {moment!r}")
    return moment.timestamp()


def to_datetime(seconds: float) -> datetime:
    """Epoch seconds → an aware UTC datetime, to the nearest microsecond (exact for times that
    came from microsecond datetimes)."""
    return _EPOCH + timedelta(microseconds=round(seconds * 1e6))


def _round4(value: float) -> float:
    """`round(value, 4)`, exactly (the same float, signed zeros included), at a third of its cost.

    For |value| < 1e5 the product `value * 1e4` is within 1e-7 of the exact one, so unless its
    fraction is within 1e-4 of a half, rounding it to the nearest integer `n` gives the integer
    the exact product rounds to, and `n / 1e4` is the float nearest to the decimal `n / 10**4`,
    which is what `round` returns. Near halves, near zero (the sign of a zero) and beyond 1e5,
    `round` decides, except for a zero (it is its own rounding, sign included; a lead without
    fit or engagement points has many).
    """
    if value == 0.0:
        return value
    if -1e5 < value < 1e5:
        scaled = value * 10000.0
        whole = _floor(scaled)
        fraction = scaled - whole
        if not 0.4999 < fraction < 0.5001 and whole not in (0, -1):
            return (whole + 1 if fraction > 0.5 else whole) / 10000.0
    return round(value, 4)


def _round(value: float) -> float:
    """Published points: 4 decimals, within the contract's ±1e9 (and never -0.0)."""
    if -_MAX_POINTS < value < _MAX_POINTS:
        return _round4(value) + 0.0
    return _MAX_POINTS if value > 0 else -_MAX_POINTS


def _fmt(value: float) -> str:
    return f"{round(value, 2):g}"


# Our own outputs are built from values that are valid by construction; validating them again
# costs more than the rest of `apply`. The tests validate every output the engine produces.
_SU_FIELDS = frozenset(ScoreUpdated.model_fields)
_RC_FIELDS = frozenset(RuleContribution.model_fields)
_setattr = object.__setattr__
_new_tuple = tuple.__new__
_new_record = BaseModel.__new__
R = TypeVar("R", ScoreUpdated, RuleContribution, ScoreSnapshot, StageChanged)


def _trusted(cls: type[R], values: dict[str, Any], fields: frozenset[str]) -> R:
    """An instance of the contract model `cls` holding `values` (in field order), unvalidated;
    `fields`: the fields given explicitly."""
    record: R = _new_record(cls)
    _setattr(record, "__dict__", values)
    _setattr(record, "__pydantic_fields_set__", fields)
    _setattr(record, "__pydantic_extra__", None)
    _setattr(record, "__pydantic_private__", None)
    return record


_SC_FIELDS = frozenset(StageChanged.model_fields) - {"type"}
_SS_FIELDS = frozenset(ScoreSnapshot.model_fields)
_CRM = {stage: (HUBSPOT_LIFECYCLESTAGE[stage], SALESFORCE_LEAD_STATUS[stage]) for stage in Stage}


def _stage_changed(  # noqa: PLR0917 - positional: the fields of the record, in order
    lead_id: str,
    c: CompiledModel,
    from_stage: Stage | None,
    to_stage: Stage,
    reason: str,
    event_id: str | None,
    fit: float,
    eng: float,
    occurred_at: datetime,
) -> StageChanged:
    """`StageChanged.build` without re-validating values the engine made valid (a reason is
    at most 256 characters, points within ±1e9, `occurred_at` in UTC)."""
    snapshot = _trusted(
        ScoreSnapshot,
        {
            "fit": _round(fit),
            "engagement": _round(eng),
            "total": _round(fit + eng),
            "grade": c.grade(fit, eng),
        },
        _SS_FIELDS,
    )
    hubspot, salesforce = _CRM[to_stage]
    return _trusted(
        StageChanged,
        {
            "type": "stage_changed",
            "event_id": stage_change_event_id(
                lead_id=lead_id,
                model=c.id,
                model_version=c.version,
                triggering_event_id=event_id,
                from_stage=from_stage,
                to_stage=to_stage,
                occurred_at=occurred_at,
            ),
            "lead_id": lead_id,
            "model": c.id,
            "model_version": c.version,
            "from_stage": from_stage,
            "to_stage": to_stage,
            "reason": reason,
            "triggering_event_id": event_id,
            "score": snapshot,
            "occurred_at": occurred_at,
            "hubspot_lifecyclestage": hubspot,
            "salesforce_lead_status": salesforce,
        },
        _SC_FIELDS,
    )


def _done(state: S | None, out: list[Output], scored: list[Contribution]) -> Transition[S]:
    """`Transition(state, tuple(out), tuple(scored))` without the named tuple's constructor."""
    return _new_tuple(Transition, (state, tuple(out), tuple(scored)))


def _basis(basis: str, fit: float, eng: float) -> float:
    return fit + eng if basis == "total" else eng if basis == "engagement" else fit


def _decay_terms(st: ModelState, basis: str) -> tuple[list[decay.Term], float]:
    rates = st.c.rates
    constant = st.fit_total if basis == "total" else 0.0
    terms: list[decay.Term] = []
    for rule_id, (s, t) in st.eng.items():
        rate = rates[rule_id]
        if rate:
            terms.append((s, t, rate))
        else:
            constant += s
    return terms, constant


def _first_below(st: ModelState, basis: str, threshold: float, after: float) -> float | None:
    """When decay takes ``basis`` below ``threshold`` after ``after``, to the whole second.

    Decay crossings are reported rounded up to the whole second: a crossing time is part of a
    stage change's event id, and the exact root moves by microseconds between a state kept in
    memory and the same state read back from its compact stored form, which would give the same
    stage change two ids on two workers.
    """
    if basis == "fit":
        return after if st.fit_total < threshold else None
    terms, constant = _decay_terms(st, basis)
    return decay.first_second_below(terms, constant, threshold, after)


def _add(
    eng: dict[str, tuple[float, float]], rule_id: str, points: float, t: float, rate: float
) -> None:
    current = eng.get(rule_id)
    if current is None:
        eng[rule_id] = (points, t)
    else:
        eng[rule_id] = decay.add(current[0], current[1], points, t, rate)


# ---------------------------------------------------------------------- transitions


def _transition(
    st: ModelState,
    to_stage: Stage,
    reason: str,
    *,
    lead_id: str,
    event_id: str | None,
    at: float,
    occurred_at: datetime,
    fit: float,
    eng: float,
    out: list[Output],
) -> None:
    c = st.c
    from_stage = st.stage
    st.history = (*st.history, StageEntry(from_stage, to_stage, at, reason))[-HISTORY:]
    st.stage = to_stage
    if c.shadow:  # a challenger's stage is what it would have done: nothing is published
        return
    out.append(
        _stage_changed(
            lead_id, c, from_stage, to_stage, reason[:256], event_id, fit, eng, occurred_at
        )
    )


def _catch_up(st: ModelState, c: CompiledModel, t: float, lead_id: str, out: list[Output]) -> None:
    """Transitions decay caused between `st.as_of` and `t` (before anything new happens at `t`).

    The decayed sum only falls between events, so it fell below a threshold in `(as_of, t]` iff
    it is below it at `t`; the transition is stamped with the exact crossing time.
    """
    mql = c.mql
    if mql is None:
        return
    flags = st.flags
    demote = st.stage is Stage.MQL and not flags & MANUAL and mql.demote_below is not None
    if not (demote or flags & HOLD):
        return
    fit = st.fit_total
    eng = st.engagement_at(t)
    value = _basis(mql.basis, fit, eng)
    release = mql.demote_below if mql.demote_below is not None else mql.promote_at
    if flags & HOLD and value < release:
        st.flags &= ~HOLD
    if demote and mql.demote_below is not None and value < mql.demote_below:
        if not allowed(c.graph, Stage.MQL, Stage.RECYCLED):
            return
        at = _first_below(st, mql.basis, mql.demote_below, st.as_of)
        at = t if at is None or at > t else at
        eng_at = st.engagement_at(at)
        reason = f"{mql.basis} decayed below mql demotion threshold {_fmt(mql.demote_below)}"
        _transition(
            st,
            Stage.RECYCLED,
            reason,
            lead_id=lead_id,
            event_id=None,
            at=at,
            occurred_at=to_datetime(at),
            fit=fit,
            eng=eng_at,
            out=out,
        )


def _move(
    step: tuple[ModelState, EventBase, str, float, float, float, list[Output]],
    to_stage: Stage,
    reason: str,
) -> None:
    """`_transition` for the event being applied (`step`: what `_decide` was given)."""
    st, event, lead_id, t, fit, eng, out = step
    _transition(
        st,
        to_stage,
        reason,
        lead_id=lead_id,
        event_id=event.event_id,
        at=t,
        occurred_at=event.occurred_at,
        fit=fit,
        eng=eng,
        out=out,
    )


def _decide(  # noqa: PLR0912 - one branch per kind of transition, in order of precedence
    st: ModelState,
    event: EventBase,
    *,
    t: float,
    lead_id: str,
    fact: tuple[Stage, str] | None,
    old_flags: int,
    hand_check: bool,
    fit: float,
    eng: float,
    out: list[Output],
) -> None:
    """Stage transitions after an event, given the scores as of `st.as_of`.

    `hand_check`: whether this event can make the lead's latest hand-raise count (see
    `_apply_one`).
    """
    c = st.c
    graph = c.graph
    move = (st, event, lead_id, t, fit, eng, out)

    if fact is not None and t >= st.fact_at:
        target, reason = fact
        by_hand = isinstance(event, StageSet)
        if target is st.stage or allowed(graph, st.stage, target):
            st.fact_at = t
            flags = st.flags & ~(MANUAL | HOLD)
            if by_hand:
                flags |= MANUAL
            elif target is Stage.RECYCLED or target is Stage.LEAD:
                flags |= HOLD
            st.flags = flags
            if target is not st.stage:
                _move(move, target, reason)

    new_signals = st.flags & ~old_flags & (c.dq_mask | FIT_DQ)
    if (
        new_signals
        and st.stage is not Stage.DISQUALIFIED
        and allowed(graph, st.stage, Stage.DISQUALIFIED)
    ):
        names = ", ".join(name for bit, name in FLAG_NAMES.items() if new_signals & bit)
        reason = f"disqualified: {names}"
        _move(move, Stage.DISQUALIFIED, reason)

    hand = st.hand_raise
    if (
        hand is not None
        and hand_check
        and hand[0] >= st.fact_at
        and st.stage in MARKETING_STAGES
        and fit >= c.hand_raise_min_fit
        and allowed(graph, st.stage, Stage.SQL)
    ):
        reason = f"hand-raise {hand[1]} with fit {_fmt(fit)} >= {_fmt(c.hand_raise_min_fit)}"
        _move(move, Stage.SQL, reason)

    mql, sql = c.mql, c.sql
    if (mql is None and sql is None) or st.flags & MANUAL or st.stage not in MARKETING_STAGES:
        return
    if st.flags & HOLD:
        if mql is not None:
            release = mql.demote_below if mql.demote_below is not None else mql.promote_at
            still = _basis(mql.basis, fit, eng) >= release
        else:
            assert sql is not None
            still = _basis(sql.basis, fit, eng) >= sql.promote_at
        if still:
            return
        st.flags &= ~HOLD
    stage = st.stage
    if (
        sql is not None
        and (value := _basis(sql.basis, fit, eng)) >= sql.promote_at
        and (sql.min_fit is None or fit >= sql.min_fit)
        and (sql.min_engagement is None or eng >= sql.min_engagement)
        and allowed(graph, stage, Stage.SQL)
    ):
        reason = f"{sql.basis} {_fmt(value)} >= sql threshold {_fmt(sql.promote_at)}"
        _move(move, Stage.SQL, reason)
    elif mql is not None:
        value = _basis(mql.basis, fit, eng)
        if (
            stage is not Stage.MQL
            and value >= mql.promote_at
            and (mql.min_fit is None or fit >= mql.min_fit)
            and (mql.min_engagement is None or eng >= mql.min_engagement)
            and allowed(graph, stage, Stage.MQL)
        ):
            reason = f"{mql.basis} {_fmt(value)} >= mql threshold {_fmt(mql.promote_at)}"
            _move(move, Stage.MQL, reason)
        elif (
            stage is Stage.MQL
            and mql.demote_below is not None
            and value < mql.demote_below
            and allowed(graph, stage, Stage.RECYCLED)
        ):
            reason = f"{mql.basis} {_fmt(value)} < mql demotion threshold {_fmt(mql.demote_below)}"
            _move(move, Stage.RECYCLED, reason)


Pending = tuple[Any, ...] | ScoreUpdated
"""A score update decided but not yet built (`apply_batch` builds only each model's last), or
one taken at a CRM outcome, built."""


def _emit_score(
    st: ModelState,
    prev_stage: Stage | None,
    fit: float,
    eng: float,
    *,
    lead_id: str,
    event_id: str | None,
    values: list[tuple[float, float, str]] | None,
    as_of: datetime,
    out: list[Output],
    defer: dict[str, Pending] | None = None,
    outcome: str | None = None,
) -> None:
    """Publish a score update if a consumer would see a difference.

    `values` are the decayed engagement points per rule as of `st.as_of` (`None`: compute them).
    With `defer`, the update is not built: what it needs is kept in `defer` under the model's
    id, replacing the one kept before (`_build_score` builds it). With `outcome` (the type of
    the CRM outcome being applied) the update is always published, at once, marked with it.
    """
    c = st.c
    fit_r = _round4(fit) + 0.0 if -_MAX_POINTS < fit < _MAX_POINTS else _round(fit)
    eng_r = _round4(eng) + 0.0 if -_MAX_POINTS < eng < _MAX_POINTS else _round(eng)
    grade = c.grade(fit, eng)
    last = st.emitted
    if outcome is not None:
        record = _outcome_score(
            st,
            (fit, eng, fit_r, eng_r, grade),
            lead_id=lead_id,
            event_id=event_id,
            as_of=as_of,
            outcome=outcome,
        )
        if defer is None:
            out.append(record)
        else:  # built now: every outcome's score is published, in the order of the events
            defer.pop(c.id, None)  # this one is newer
            defer[f"{c.id}\x1f{event_id}"] = record
        return
    if last is not None and st.stage is prev_stage:
        change = c.min_change
        # min_change 0: every applied event is published (its `as_of` is news too)
        if (
            change > 0
            and abs(fit_r - last[0]) < change
            and abs(eng_r - last[1]) < change
            and grade == c.grade(last[0], last[1])
        ):
            return
    revision = st.revision = st.revision + 1
    st.emitted = (fit_r, eng_r)
    if defer is not None:
        rest = (st.fit, st.fit_items, fit, eng, fit_r, eng_r, grade, st.stage, as_of, revision)
        # The engagement terms are copied: the state goes on changing in place.
        terms: object = None
        if c.top_rules:
            terms = (st.eng.copy(), st.as_of) if values is None else values
        defer.pop(c.id, None)  # kept in the order of the events that gave them
        defer[c.id] = (c, lead_id, event_id, terms, *rest)
        return
    if c.top_rules:
        if values is None:
            values = _values(st.eng, c, st.as_of)[1]
    else:
        values = None
    out.append(
        _score_record(
            c,
            lead_id,
            event_id,
            values,
            st.fit,
            st.fit_items,
            fit,
            eng,
            fit_r,
            eng_r,
            grade,
            st.stage,
            as_of,
            revision,
        )
    )


def _outcome_score(
    st: ModelState,
    scores: tuple[float, float, float, float, str],
    *,
    lead_id: str,
    event_id: str | None,
    as_of: datetime,
    outcome: str,
) -> ScoreUpdated:
    """The score update taken at a CRM outcome (`outcome`: its type), the event being applied:
    the model's score of the lead at that moment, published whatever changed, so the live
    evaluation can pair every model's score with the outcome."""
    fit, eng, fit_r, eng_r, grade = scores
    c = st.c
    revision = st.revision = st.revision + 1
    st.emitted = (fit_r, eng_r)
    values = _values(st.eng, c, st.as_of)[1] if c.top_rules else None
    rest = (st.fit, st.fit_items, fit, eng, fit_r, eng_r, grade, st.stage, as_of, revision)
    return _score_record(c, lead_id, event_id, values, *rest, outcome=outcome)


def _score_record(  # noqa: PLR0917 - positional: the fields of a pending update, in order
    c: CompiledModel,
    lead_id: str,
    event_id: str | None,
    values: list[tuple[float, float, str]] | None,
    fit_points: dict[str, tuple[float, float]],
    fit_items: tuple[tuple[float, float, str], ...],
    fit: float,
    eng: float,
    fit_r: float,
    eng_r: float,
    grade: str,
    stage: Stage,
    as_of: datetime,
    revision: int,
    outcome: str | None = None,
) -> ScoreUpdated:
    top = _top_rules(c, fit_points, fit_items, values) if values is not None else ()
    total = fit_r + eng_r
    record = _new_record(ScoreUpdated)  # `_trusted`, inline
    _setattr(
        record,
        "__dict__",
        {
            "type": "score_updated",
            "lead_id": lead_id,
            "model": c.id,
            "model_version": c.version,
            "fit": fit_r,
            "engagement": eng_r,
            "total": (
                _round4(total) + 0.0 if -_MAX_POINTS < total < _MAX_POINTS else _round(fit + eng)
            ),
            "grade": grade,
            "stage": stage,
            "as_of": as_of,
            "revision": revision,
            "last_event_id": event_id,
            "top_rules": top,
            "shadow": True if c.shadow else None,
            "outcome": outcome,
        },
    )
    _setattr(record, "__pydantic_fields_set__", _SU_FIELDS)
    _setattr(record, "__pydantic_extra__", None)
    _setattr(record, "__pydantic_private__", None)
    return record


def _build_score(pending: Pending) -> ScoreUpdated:
    """The score update `_emit_score` kept in `defer`."""
    if isinstance(pending, ScoreUpdated):  # a score taken at an outcome is built at once
        return pending
    c, lead_id, event_id, terms, *rest = pending
    if isinstance(terms, tuple):
        eng_terms, now = terms
        terms = _values(eng_terms, c, now)[1]
    return _score_record(c, lead_id, event_id, terms, *rest)


def _values(
    eng: dict[str, tuple[float, float]], c: CompiledModel, now: float
) -> tuple[float, list[tuple[float, float, str]]]:
    """Engagement at `now`, and (when the model publishes top rules) each rule's
    `(|points|, points, rule)` decayed to `now`."""
    rates = c.rates
    exp = math.exp
    total = 0.0
    items: list[tuple[float, float, str]] = []
    if c.top_rules:
        for rule_id, (s, t) in eng.items():
            value = s * exp(-rates[rule_id] * (now - t)) if t != now else s
            total += value
            items.append((value if value >= 0.0 else -value, value, rule_id))
    else:
        total = _engagement(eng, c, now)
    return total, items


def _engagement(eng: dict[str, tuple[float, float]], c: CompiledModel, now: float) -> float:
    """Engagement at `now`, exactly as `_values` sums it."""
    rates = c.rates
    exp = math.exp
    total = 0.0
    for rule_id, (s, t) in eng.items():
        total += s * exp(-rates[rule_id] * (now - t)) if t != now else s
    return total


_FIT_CONTRIBUTIONS: dict[tuple[str, float], RuleContribution] = {}
"""Fit points change only with the profile, so their records are reused (a bounded cache, by
rule and exact points)."""


def _top_rules(
    c: CompiledModel,
    fit_points: dict[str, tuple[float, float]],
    fit_items: tuple[tuple[float, float, str], ...],
    items: list[tuple[float, float, str]],
) -> tuple[RuleContribution, ...]:
    count = c.top_rules
    if fit_items:
        items.extend(fit_items[:count])
    items.sort(reverse=True)
    top = []
    for size, value, rule_id in items[:count]:
        if size < 0.00005:
            break
        if rule_id in fit_points:
            key = (rule_id, value)
            record = _FIT_CONTRIBUTIONS.get(key)
            if record is None:
                if len(_FIT_CONTRIBUTIONS) > 4096:
                    _FIT_CONTRIBUTIONS.clear()
                rounded = _round4(value) if size < _MAX_POINTS else _round(value)
                record = _FIT_CONTRIBUTIONS[key] = _trusted(
                    RuleContribution, {"rule_id": rule_id, "points": rounded}, _RC_FIELDS
                )
        else:  # `_trusted`, inline
            record = _new_record(RuleContribution)
            _setattr(
                record,
                "__dict__",
                {
                    "rule_id": rule_id,
                    "points": _round4(value) if size < _MAX_POINTS else _round(value),
                },
            )
            _setattr(record, "__pydantic_fields_set__", _RC_FIELDS)
            _setattr(record, "__pydantic_extra__", None)
            _setattr(record, "__pydantic_private__", None)
        top.append(record)
    return tuple(top)


# ------------------------------------------------------------------------- events


def _profile(st: ModelState, c: CompiledModel, traits: Traits, t: float, year: int) -> None:
    """Fit rules (last writer by event time wins, per rule) and spam signals."""
    fit = None
    for rule in c.fit_rules:
        value = rule.get(traits, year)
        if value is MISSING:
            continue
        current = st.fit.get(rule.id)
        if current is not None and current[1] > t:
            continue  # a newer profile value is already in
        if fit is None:
            fit = dict(st.fit)
        fit[rule.id] = (rule.score(value), t)
    flags = st.flags
    if fit is not None:
        st.set_fit(fit)
        disqualifying = any(
            fit.get(rule.id, (0.0, 0.0))[0] for rule in c.fit_rules if rule.disqualify
        )
        flags = flags | FIT_DQ if disqualifying else flags & ~FIT_DQ
    if traits.email:
        domain = email_domain(traits.email)
        if is_disposable_domain(domain, c.disposable):
            flags |= DISPOSABLE
        if c.check_invalid and is_invalid_domain(domain):
            flags |= INVALID
    if c.check_gibberish and any(
        name and is_gibberish_name(name) for name in (traits.first_name, traits.last_name)
    ):
        flags |= GIBBERISH
    st.flags = flags


def _cap(  # noqa: PLR0912 - once per capped rule and event: one function, no helpers
    caps: Caps, rule: EngagementRuleC, points: float, t: float, as_of: float
) -> float:
    """The points `rule` may still give in `t`'s cap window, counting them in `caps` (the
    state's counters, a copy the caller owns; `as_of`: the state's time)."""
    per = rule.cap_per
    window = int(t // per)
    oldest = int(as_of // per) - CAP_LATE_WINDOWS
    if window < oldest:
        return 0.0  # too late: that window's counter is gone, assume the cap is used up
    rule_id = rule.id
    windows = caps.get(rule_id, ())
    used = 0.0
    newest = False
    if windows:
        last, last_used = windows[-1]
        if last == window:  # the usual case: the current window is the newest kept
            used = last_used
            newest = True
        else:
            for w, u in windows:
                if w == window:
                    used = u
                    break
    if rule.cap_count:
        if used >= rule.cap_count:
            return 0.0
        granted, used = points, used + 1
    else:
        room = rule.cap_points - used
        if room <= 0:
            return 0.0
        granted = min(points, room)
        used += granted
    if newest:
        kept = (*windows[:-1], (window, used))
        if kept[0][0] < oldest:
            kept = tuple(e for e in kept if e[0] >= oldest)
    elif not windows or windows[-1][0] < window:  # the newest window (they are kept in order)
        kept = (
            (*windows, (window, used))
            if not windows or windows[0][0] >= oldest
            else (*(e for e in windows if e[0] >= oldest), (window, used))
        )
    else:
        kept = tuple(sorted([*(e for e in windows if oldest <= e[0] != window), (window, used)]))
    caps[rule_id] = kept
    return granted


def _burst(st: ModelState, c: CompiledModel, t: float) -> bool:
    """Whether an action at `t` makes more than `max_events` within `within` of it."""
    within = c.burst_within
    near = 1
    for at, _ in st.window:
        if abs(at - t) <= within:
            near += 1
    return near > c.burst_max


def _void_burst(st: ModelState, c: CompiledModel, t: float) -> None:
    """Take back the points of the actions in the burst around `t`: a bot does not score."""
    within = c.burst_within
    rates = c.rates
    voided: set[tuple[str, float, float]] = set()
    window: list[tuple[float, tuple[tuple[str, float], ...]]] = []
    for at, grants in st.window:
        if grants and abs(at - t) <= within:
            for rule_id, points in grants:
                rate = rates.get(rule_id)
                if rate is None:
                    continue
                _add(st.eng, rule_id, -points, at, rate)
                s, ref = st.eng[rule_id]
                if rate and s < 0.0:  # decaying rules hold only positive points
                    st.eng[rule_id] = (0.0, ref)
                voided.add((rule_id, points, at))
            window.append((at, ()))
        else:
            window.append((at, grants))
    st.window = tuple(window)
    if voided:
        st.recent = tuple(r for r in st.recent if (r.rule_id, r.points, r.at) not in voided)


def _remember_action(
    st: ModelState, c: CompiledModel, t: float, grants: tuple[tuple[str, float], ...]
) -> None:
    """Add an action to the burst window; keep those within `within` of the newest, at most
    `max_events + 1` of them."""
    window = st.window
    oldest_kept = (t if not window or t > window[-1][0] else window[-1][0]) - c.burst_within
    if not window or window[-1][0] < oldest_kept:  # a sparse lead: only this action is near
        st.window = ((t, grants),)
        return
    if window[-1][0] <= t:
        kept = [e for e in window if e[0] >= oldest_kept]
        kept.append((t, grants))
    else:
        kept = sorted(
            (e for e in (*window, (t, grants)) if e[0] >= oldest_kept), key=lambda e: e[0]
        )
    st.window = tuple(kept[-(c.burst_max + 1) :])


def _engage(  # noqa: PLR0912, PLR0915 - once per action and model: inline, no helpers
    st: ModelState, dispatch: Dispatch, event: EventBase, t: float, scored: list[Contribution]
) -> bool:
    """Score an action; whether it was a hand-raise."""
    c = st.c
    machine = False
    if c.ignore_machine:
        code = (
            "i"
            if event.machine is not None
            or ((attr := dispatch.machine_attr) is not None and getattr(event, attr))
            else None
        )
        if dispatch.mail:
            code = _judge_timing(st, dispatch.mail, event, t, code)
        if code is not None:
            machine = True
            st.machine = (1 if st.machine is None else st.machine[0] + 1, code)
    burst = dispatch.burst and not machine
    if burst and len(st.window) >= c.burst_max and _burst(st, c, t):
        st.flags |= BOT
        _void_burst(st, c, t)
        _remember_action(st, c, t, ())
        return False
    raised = False
    grants: list[tuple[str, float]] = []
    eng = st.eng
    recent = st.recent
    exp = math.exp
    caps: Caps | None = None
    for rule in dispatch.rules:
        match = rule.match
        if (match is not None and not match(event)) or (machine and not rule.machine):
            continue
        points = rule.points
        if rule.cap_per:
            if caps is None:  # the counters are replaced, not changed: a copy for this event
                caps = st.caps = dict(st.caps)
            points = _cap(caps, rule, points, t, st.as_of)
        if rule.hand_raise:
            raised = True
            if st.hand_raise is None or t >= st.hand_raise[0]:
                st.hand_raise = (t, rule.id)
        if not points:
            continue
        rule_id = rule.id
        current = eng.get(rule_id)
        if current is None:
            eng[rule_id] = (points, t)
        else:  # `decay.add`, inline
            s, ref = current
            rate = rule.rate
            if t >= ref:
                eng[rule_id] = ((s * exp(-rate * (t - ref)) if rate else s) + points, t)
            else:
                eng[rule_id] = (s + (points * exp(-rate * (ref - t)) if rate else points), ref)
        grants.append((rule_id, points))
        contribution = _new_tuple(Contribution, (rule_id, points, t))
        scored.append(contribution)
        recent = (*recent[1 - RECENT :], contribution)
    st.recent = recent
    if burst:
        _remember_action(st, c, t, tuple(grants))
    return raised


def _judge_timing(
    st: ModelState, role: int, event: EventBase, t: float, code: str | None
) -> str | None:
    """Note an open or click in the lead's message memory; the reason code it is a machine's
    (`code` when it came marked, else what its timing says), or None."""
    message = getattr(event, "message_id", None)
    timing = st.c.timing
    if message is None or timing is None:
        return code
    key = event_hash(message)
    # What the stored state keeps (`prune` at its time), so a state read back judges the same.
    mail = prune(st.mail, timing, st.as_of) if st.mail else st.mail
    if role == OPENED:
        st.mail, reason = judge_open(mail, timing, key, t, machine=code is not None)
    elif role == CLICKED:
        link = event_hash(getattr(event, "url", "") or "")
        st.mail, reason = judge_click(mail, timing, key, link, t)
    else:
        return code
    return code or reason


def _note_mail(st: ModelState, role: int, event: EventBase, t: float) -> None:
    """Remember a message's sending or delivery for the machine-timing tests."""
    message = getattr(event, "message_id", None)
    timing = st.c.timing
    if message is not None and timing is not None:
        mail = prune(st.mail, timing, st.as_of) if st.mail else st.mail
        st.mail = note_delivery(mail, timing, event_hash(message), t, sent=role == SENT)


def _fact(event: EventBase, c: CompiledModel, kind: int) -> tuple[Stage, str] | None:
    """The stage a CRM-feedback or hand-set event asks for, and why."""
    if kind == FACT:
        target = c.crm[event.type]
        reason = event.type
    elif kind == STAGE_SET:
        assert isinstance(event, StageSet)
        target = event.stage
        reason = "set by hand"
    else:
        return None
    # Only these events have a `reason`: reading a missing attribute of a model is slow.
    detail = getattr(event, "reason", None)
    return target, f"{reason}: {detail}" if detail else reason


def _new_state(model: ScoringModel, c: CompiledModel, t: float) -> ModelState:
    initial = c.initial
    return ModelState(
        model, as_of=t, stage=initial, history=(StageEntry(None, initial, t, "new lead"),)
    )


def _bound(state: ModelState, model: ScoringModel) -> ModelState:
    """`state` as a fresh copy bound to `model` (re-read if it was written under another)."""
    if state.model is model:
        return state.copy()
    return ModelState.from_dict(state.to_dict(), model)


def _apply_one(  # noqa: PLR0912, PLR0915, PLR0917 - once per event and model: inline, positional
    state: ModelState | None,
    event: EventBase,
    model: ScoringModel,
    c: CompiledModel,
    dispatch: Dispatch,
    t: float,
    lead_id: str,
    out: list[Output],
    scored: list[Contribution],
    defer: dict[str, Pending] | None = None,
) -> ModelState | None:
    """One event under one model. `state` is copied first, unless `defer` is given: then it
    is a copy of the caller's own (bound to `model`), changed in place."""
    kind = dispatch.kind
    if kind == ERASE:
        out.append(
            LeadErasedRecord.build(
                lead_id=lead_id,
                model=c.id,
                triggering_event_id=event.event_id,
                occurred_at=event.occurred_at,
            )
        )
        return None
    if kind == MAIL:  # callers pass only existing states
        assert state is not None
        st = state if defer is not None else _bound(state, model)
        _note_mail(st, dispatch.mail, event, t)
        return st
    if state is None:
        st = _new_state(model, c, t)
        prev_stage: Stage | None = None
        if not c.shadow:
            out.append(
                _stage_changed(
                    lead_id,
                    c,
                    None,
                    st.stage,
                    "new lead",
                    event.event_id,
                    0.0,
                    0.0,
                    event.occurred_at,
                )
            )
    else:
        if defer is not None:
            st = state
        elif state.model is model:
            st = state.copy()
        else:
            st = _bound(state, model)
        prev_stage = st.stage
        if t > st.as_of:
            mql = c.mql
            # `_catch_up` acts only on an MQL it may demote or a lead on hold
            if mql is not None and (
                st.flags & HOLD
                or (prev_stage is _MQL and mql.demote_below is not None and not st.flags & MANUAL)
            ):
                _catch_up(st, c, t, lead_id, out)
            st.as_of = t
    if dispatch.notes_mail:  # a model with rules for them too
        _note_mail(st, dispatch.mail, event, t)
    old_flags = st.flags
    raised = False
    if kind == PROFILE:
        traits: Traits = event.traits  # type: ignore[attr-defined]
        _profile(st, c, traits, t, event.occurred_at.year)
    elif dispatch.engages:
        raised = _engage(st, dispatch, event, t, scored)
    # A hand-raise counts when it arrives, when CRM feedback or a hand-set stage arrives (it
    # may be newer than them), and when profile data dated no later than `within` after it
    # arrives (enrichment often comes late). Comparing event times, not arrival, keeps the
    # outcome independent of the order the events arrive in.
    hand = st.hand_raise
    hand_check = hand is not None and (
        raised
        or kind in (FACT, STAGE_SET, MERGE)
        or (kind == PROFILE and t <= hand[0] + c.hand_raise_within)
    )
    fit = st.fit_total
    as_of = st.as_of
    # The engagement sum (as `_values` takes it), and the top rules' candidates when needed.
    rates = c.rates
    exp = math.exp
    eng = 0.0
    values: list[tuple[float, float, str]] | None = None
    if defer is None and c.top_rules:
        values = []
        for rule_id, (s, ref) in st.eng.items():
            value = s * exp(-rates[rule_id] * (as_of - ref)) if ref != as_of else s
            eng += value
            values.append((value if value >= 0.0 else -value, value, rule_id))
    else:
        for rule_id, (s, ref) in st.eng.items():
            eng += s * exp(-rates[rule_id] * (as_of - ref)) if ref != as_of else s
    _decide(
        st,
        event,
        t=t,
        lead_id=lead_id,
        fact=_fact(event, c, kind) if kind in (FACT, STAGE_SET) else None,
        old_flags=old_flags,
        hand_check=hand_check,
        fit=fit,
        eng=eng,
        out=out,
    )
    _emit_score(
        st,
        prev_stage,
        fit,
        eng,
        lead_id=lead_id,
        event_id=event.event_id,
        values=values,
        as_of=event.occurred_at if t == as_of else to_datetime(as_of),
        out=out,
        defer=defer,
        outcome=event.type if kind == FACT else None,
    )
    return st


def _dispatch(event: EventBase, c: CompiledModel) -> Dispatch | None:
    dispatch: Dispatch | None = c.dispatch.get(event.type)
    if dispatch is not None and dispatch.kind == STAGE_SET:
        target_model = getattr(event, "model", None)
        if target_model is not None and target_model != c.id:
            return None
    return dispatch


def _compiled(state: ModelState | None, model: ScoringModel) -> CompiledModel:
    if state is not None and state.model is model:
        return state.c
    compiled: CompiledModel = model.compiled
    return compiled


def _lead_id(event: EventBase, lead_id: str | None) -> str:
    if lead_id is not None:
        return lead_id
    return event.lead_id or event.anonymous_id or ""


def apply(
    state: ModelState | None,
    event: EventBase,
    *,
    model: ScoringModel,
    lead_id: str | None = None,
) -> Transition[ModelState]:
    """Apply one event to a lead's state under `model`; `state` is not changed.

    `lead_id` names the lead in the outputs (default: the event's `lead_id`, else its
    `anonymous_id`). A `lead_erased` event returns `state=None` and a `LeadErasedRecord`.
    """
    c = state.c if state is not None and state.model is model else _compiled(None, model)
    dispatch = c.dispatch.get(event.type)
    if (
        dispatch is None
        or (dispatch.kind == STAGE_SET and _dispatch(event, c) is None)
        or (dispatch.kind == MAIL and state is None)
    ):
        return Transition(state)
    digest = event_hash(event.event_id)
    if state is not None and seen_contains(state.seen, digest):
        return Transition(state)
    out: list[Output] = []
    scored: list[Contribution] = []
    lid = lead_id or event.lead_id or event.anonymous_id or ""
    t = event.occurred_at.timestamp()
    new = _apply_one(state, event, model, c, dispatch, t, lid, out, scored)
    if new is not None:
        new.seen = seen_add(new.seen, digest)
    return _done(new, out, scored)


def apply_all(
    state: LeadState | None,
    event: EventBase,
    *,
    models: ModelSet,
    lead_id: str | None = None,
) -> Transition[LeadState]:
    """Apply one event to a lead's state under every model of `models`; `state` is not changed."""
    digest = event_hash(event.event_id)
    if state is not None and seen_contains(state.seen, digest):
        return Transition(state)
    t = _seconds(event.occurred_at)
    plan = models.by_type.get(event.type)
    if plan is None:
        return Transition(state)
    lid = _lead_id(event, lead_id)
    out: list[Output] = []
    scored: list[Contribution] = []
    states = dict(state.models) if state is not None else {}
    touched = False
    for model, c, dispatch in plan:
        model_id = c.id
        current = states.get(model_id)
        kind = dispatch.kind
        if (kind == STAGE_SET and _dispatch(event, c) is None) or (
            kind == MAIL and current is None
        ):
            continue
        touched = True
        new = _apply_one(current, event, model, c, dispatch, t, lid, out, scored)
        if new is None:
            states.pop(model_id, None)
        else:
            states[model_id] = new
    if not touched:
        return Transition(state)
    if event.type == "lead_erased":
        return Transition(None, tuple(out))
    account = state.account if state is not None else None
    linker = models.linker
    if linker is not None:
        account = linker.note(account, event)
    seen = seen_add(state.seen, digest) if state is not None else digest
    return _done(LeadState(states, seen, account), out, scored)


def apply_batch(
    state: LeadState | None,
    events: Iterable[EventBase],
    *,
    models: ModelSet,
    lead_id: str | None = None,
) -> Transition[LeadState]:
    """Apply one lead's events in order, publishing only the latest score per model.

    The state is what folding `apply_all` over `events` gives (`state` is not changed), and so
    are the stage changes and erasure records: all of them, in order. Of the score updates, only
    each model's last is published (exactly the one `apply_all` gives for its event: revision,
    scores, top rules, triggering event), after the other outputs; the ones it replaces are never
    built; every score taken at a CRM outcome is published too, in the order of the events. A
    score update followed by the lead's erasure in the same batch is not published.
    `lead_id` is as for `apply_all`; all the events are the same lead's.
    """
    models_list = models.models
    alive = state is not None
    states: dict[str, ModelState] = dict(state.models) if state is not None else {}
    seen = state.seen if state is not None else ""
    account = state.account if state is not None else None
    linker = models.linker
    own: set[str] = set()
    """Models whose state in `states` is this call's own copy (changed in place)."""
    out: list[Output] = []
    scored: list[Contribution] = []
    pending: dict[str, Pending] = {}
    changed = False
    for event in events:
        digest = event_hash(event.event_id)
        if alive and seen_contains(seen, digest):
            continue
        t = _seconds(event.occurred_at)
        lid = _lead_id(event, lead_id)
        touched = False
        for model in models_list:
            model_id = model.id
            current = states.get(model_id)
            c = current.c if current is not None and current.model is model else model.compiled
            dispatch = c.dispatch.get(event.type)
            if (
                dispatch is None
                or (dispatch.kind == STAGE_SET and _dispatch(event, c) is None)
                or (dispatch.kind == MAIL and current is None)
            ):
                continue
            touched = True
            if current is not None and model_id not in own:
                current = _bound(current, model)
            new = _apply_one(current, event, model, c, dispatch, t, lid, out, scored, pending)
            if new is None:
                states.pop(model_id, None)
            else:
                states[model_id] = new
                own.add(model_id)
        if not touched:
            continue
        changed = True
        if event.type == "lead_erased":
            alive, states, seen, account = False, {}, "", None
            own.clear()
            pending.clear()
            continue
        if linker is not None:
            account = linker.note(account, event)
        seen = seen_add(seen, digest) if alive else digest
        alive = True
    if not changed:
        return Transition(state)
    out.extend(_build_score(item) for item in pending.values())
    return _done(LeadState(states, seen, account) if alive else None, out, scored)


# --------------------------------------------------------------------------- time


def _next_crossing_seconds(st: ModelState) -> float | None:
    c = st.c
    candidates: list[float] = []
    mql = c.mql
    if (
        mql is not None
        and mql.demote_below is not None
        and st.stage is Stage.MQL
        and not st.flags & MANUAL
    ):
        crossing = _first_below(st, mql.basis, mql.demote_below, st.as_of)
        if crossing is not None:
            candidates.append(crossing)
    eng = st.engagement_at(st.as_of)
    for threshold in c.grade_eng:
        if eng >= threshold:
            crossing = _first_below(st, "engagement", threshold, st.as_of)
            if crossing is not None:
                candidates.append(crossing)
            break
    return min(candidates) if candidates else None


def next_crossing(state: ModelState, model: ScoringModel | None = None) -> datetime | None:
    """When decay will next move the lead across a threshold downwards, or `None` if never.

    Covers the MQL demotion threshold (recycling) and the engagement band boundaries of the
    grade. The time is the first whole second at or after the exact crossing (see
    `_first_below`); a processor's timer calls `advance` then. `model` defaults to the state's
    own model.
    """
    st = _bound(state, model) if model is not None and model is not state.model else state
    crossing = _next_crossing_seconds(st)
    return to_datetime(crossing) if crossing is not None else None


def next_crossing_all(state: LeadState) -> datetime | None:
    """The earliest `next_crossing` over a lead's models."""
    crossings = [c for s in state.models.values() if (c := _next_crossing_seconds(s)) is not None]
    return to_datetime(min(crossings)) if crossings else None


def advance(state: ModelState, now: datetime, *, lead_id: str) -> Transition[ModelState]:
    """What decay did to the lead by `now`: transitions and score updates at the exact
    crossing times up to `now` (none if nothing crossed; the state is then returned as is).

    The outputs are the ones a later event would have produced for the same crossings, with
    the same deterministic event ids, so it does not matter which of the two finds them first.
    """
    limit = _seconds(now)
    crossing = _next_crossing_seconds(state)
    if crossing is None or crossing > limit or limit <= state.as_of:
        return Transition(state)
    st = state.copy()
    c = st.c
    out: list[Output] = []
    for _ in range(_MAX_STEPS):
        prev_stage = st.stage
        _catch_up(st, c, crossing, lead_id, out)
        st.as_of = crossing
        eng, values = _values(st.eng, c, crossing)
        _emit_score(
            st,
            prev_stage,
            st.fit_total,
            eng,
            lead_id=lead_id,
            event_id=None,
            values=values,
            as_of=to_datetime(crossing),
            out=out,
        )
        following = _next_crossing_seconds(st)
        if following is None or following > limit or following <= crossing:
            break
        crossing = following
    return Transition(st, tuple(out))


def advance_all(state: LeadState, now: datetime, *, lead_id: str) -> Transition[LeadState]:
    """`advance` for every model of a lead."""
    out: list[Output] = []
    states = dict(state.models)
    changed = False
    for model_id, model_state in state.models.items():
        step = advance(model_state, now, lead_id=lead_id)
        if step.state is not model_state and step.state is not None:
            states[model_id] = step.state
            out.extend(step.outputs)
            changed = True
    if not changed:
        return Transition(state)
    return Transition(LeadState(states, state.seen, state.account), tuple(out))


def score_at(state: ModelState, now: datetime) -> Score:
    """The lead's score at `now` (a `now` before the last event reads as of the last event)."""
    at = max(_seconds(now), state.as_of)
    fit = state.fit_total
    eng = state.engagement_at(at)
    c = state.c
    return Score(
        model=c.id,
        fit=fit,
        engagement=eng,
        total=fit + eng,
        grade=c.grade(fit, eng),
        stage=state.stage,
        as_of=to_datetime(at) if at != _seconds(now) else now,
    )


# -------------------------------------------------------------------------- merge


def _merge_caps(a: ModelState, b: ModelState, c: CompiledModel, as_of: float) -> Caps:
    caps = dict(a.caps)
    for rule_id, windows_b in b.caps.items():
        rule = c.rules[rule_id]
        limit = float(rule.cap_count) if rule.cap_count else rule.cap_points
        oldest = math.floor(as_of / rule.cap_per) - CAP_LATE_WINDOWS
        used: dict[int, float] = dict(caps.get(rule_id, ()))
        for window, amount in windows_b:
            used[window] = min(limit, used.get(window, 0.0) + amount)
        caps[rule_id] = tuple(sorted((w, u) for w, u in used.items() if w >= oldest))
    return caps


def merge_states(a: ModelState, b: ModelState, model: ScoringModel) -> ModelState:
    """The state of one lead that is both `a` (the survivor) and `b` (merged into it).

    - Engagement: exact. Decayed sums add (`Σ pᵢ·2^(-(now-tᵢ)/h)` over both leads' events), so
      the result equals the state of one lead that saw all the events.
    - Fit: per rule, the newer profile value wins (ties: the survivor's).
    - Stage: the further along the funnel (`FUNNEL_RANK`) of the two, unless disqualified: a
      lead is disqualified only if both were (ties: the survivor's). History, recent
      contributions and burst windows are merged by time and bounded again.
    - Caps: counters of the same window add up, capped at the limit, so no more points come in
      that window; points both leads already earned in it are kept, even above the cap.
    - Flags: spam and bot signals of either; hold and set-by-hand go with the chosen stage.
      The published revision and values are the survivor's.

    Apply the `leads_merged` event to the result to re-evaluate its stage and publish it.
    """
    a = _bound(a, model)
    b = _bound(b, model)
    c = a.c
    eng = dict(a.eng)
    for rule_id, (s, t) in b.eng.items():
        _add(eng, rule_id, s, t, c.rates[rule_id])
    fit = dict(a.fit)
    for rule_id, (points, t) in b.fit.items():
        if rule_id not in fit or fit[rule_id][1] < t:
            fit[rule_id] = (points, t)

    def rank(st: ModelState) -> int:
        return FUNNEL_RANK[st.stage] if st.stage is not Stage.DISQUALIFIED else -1

    keeper = b if rank(b) > rank(a) else a
    signal_bits = DISPOSABLE | INVALID | GIBBERISH | BOT
    flags = ((a.flags | b.flags) & signal_bits) | (keeper.flags & (HOLD | MANUAL))
    if any(fit.get(rule.id, (0.0, 0.0))[0] for rule in c.fit_rules if rule.disqualify):
        flags |= FIT_DQ
    window = tuple(sorted((*a.window, *b.window), key=lambda e: e[0]))
    if window and c.burst_max:
        oldest_kept = window[-1][0] - c.burst_within
        window = tuple(e for e in window if e[0] >= oldest_kept)[-(c.burst_max + 1) :]
    hands = [h for h in (a.hand_raise, b.hand_raise) if h is not None]
    return ModelState(
        model,
        as_of=max(a.as_of, b.as_of),
        stage=keeper.stage,
        history=tuple(sorted((*a.history, *b.history), key=lambda e: e.at))[-HISTORY:],
        fit=fit,
        eng=eng,
        caps=_merge_caps(a, b, c, max(a.as_of, b.as_of)),
        window=window,
        recent=tuple(sorted((*a.recent, *b.recent), key=lambda r: r.at))[-RECENT:],
        flags=flags,
        fact_at=max(a.fact_at, b.fact_at),
        hand_raise=max(hands) if hands else None,
        revision=a.revision,
        emitted=a.emitted,
        seen=seen_union(a.seen, b.seen),
        mail=_merge_mail(a, b, c),
        machine=_merge_machine(a.machine, b.machine),
    )


def _merge_mail(a: ModelState, b: ModelState, c: CompiledModel) -> tuple[MailEntry, ...]:
    """Both leads' message memories (a message both remember: the survivor's)."""
    if c.timing is None or not b.mail:
        return a.mail
    known = {entry.message for entry in a.mail}
    extra = tuple(entry for entry in b.mail if entry.message not in known)
    return (*a.mail, *extra)[-c.timing.messages :]


def _merge_machine(a: tuple[int, str] | None, b: tuple[int, str] | None) -> tuple[int, str] | None:
    if a is None or b is None:
        return a or b
    return (a[0] + b[0], a[1])


def merge_lead_states(a: LeadState, b: LeadState, models: ModelSet) -> LeadState:
    """`merge_states` for every model (a model only one lead has a state for keeps it)."""
    states: dict[str, ModelState] = {}
    for model in models.models:
        sa, sb = a.models.get(model.id), b.models.get(model.id)
        if sa is not None and sb is not None:
            states[model.id] = merge_states(sa, sb, model)
        elif sa is not None or sb is not None:
            only = sa if sa is not None else sb
            assert only is not None
            states[model.id] = _bound(only, model)
    return LeadState(states, seen_union(a.seen, b.seen), merge_links(a.account, b.account))
