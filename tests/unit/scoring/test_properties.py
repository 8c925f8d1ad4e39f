"""Properties of the scoring fold, checked on generated event streams (hypothesis).

What is guaranteed, and what is not:

- Scores (fit, engagement, total) do not depend on the order events arrive in, for a model
  without caps and without burst detection (both count events in windows of event time, so a
  late event can find its window full or see a burst differently). Fit is last-writer-wins per
  rule by event time; engagement decays exactly. "Equal" means within 1e-9 of the magnitude of
  the points involved.
- Replaying any subset of the events already applied (up to `SEEN_IDS` of them) changes
  nothing: no outputs, the same state.
- Decayed scores never increase without events (negative points live in groups that do not
  decay: the model format enforces it).
- Caps are never exceeded, whatever the order (a capped event too late for the counters kept
  does not score).
- No transition outside the model's graph ever happens.
- Merging two leads' states gives the scores of one lead that saw both leads' events.
- A batch of a lead's events (`apply_batch`) gives the state and stage changes of applying them
  one by one, and each model's last score update of it; split anywhere, two batches in a row
  give the same.
- The final stage: see `test_final_stage_*` for exactly when it is order-independent.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from schemas.events import EventBase, Traits
from schemas.examples import make_event
from schemas.outputs import LeadErasedRecord, ScoreUpdated, StageChanged
from schemas.stages import Stage
from stream.scoring import (
    LeadState,
    ModelSet,
    ModelState,
    Output,
    ScoringModel,
    advance,
    apply,
    apply_all,
    apply_batch,
    merge_states,
    parse_models,
    score_at,
)
from stream.scoring.state import SEEN_IDS

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LEAD = "lead-p"

PROPERTY = settings(
    # SCORING_EXAMPLES=2000 for a longer hunt than the default run.
    max_examples=int(os.environ.get("SCORING_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------- events

ENGAGEMENT = [
    ("page_viewed", {"path": "/"}),
    ("page_viewed", {"path": "/pricing"}),
    ("page_viewed", {"path": "/careers/jobs"}),
    ("email_opened", {}),
    ("email_opened", {"machine_open": True}),
    ("email_clicked", {}),
    ("social_shared", {}),
    ("social_liked", {}),
    ("webinar_attended", {}),
    ("file_downloaded", {}),
    ("video_viewed", {}),
    ("ad_clicked", {}),
    ("form_submitted", {"form_id": "survey"}),
    ("email_subscribed", {}),
    ("email_unsubscribed", {}),
    ("email_bounced", {"bounce": "hard"}),
    ("email_spam_reported", {}),
    ("email_sent", {}),
]
HAND_RAISES = [("demo_requested", {}), ("trial_requested", {})]
FACTS = [
    ("sales_accepted", {}),
    ("sales_rejected", {"reason": "not now"}),
    ("opportunity_created", {}),
    ("closed_won", {}),
    ("closed_lost", {}),
    ("disqualified", {}),
    *(("stage_set", {"stage": stage, "model": None}) for stage in Stage),
]
PROFILES = [
    ("profile_updated", {"traits": traits})
    for traits in (
        Traits(industry="software", company_size=120, job_title="VP Sales", age=41),
        Traits(industry="retail", company_size=12, job_title="Student", age=22),
        Traits(email="ada@gmail.com", first_name="Ada"),
        Traits(email="ada@engines.co.uk", last_name="Lovelace", age=36),
        Traits(email="x@mailinator.com"),
        Traits(first_name="qwerty"),
        Traits(email="spy@competitor.example"),
        Traits(industry="saas", company_size=51),
    )
]

Spec = tuple[str, dict[str, Any]]


def _build(specs: Sequence[tuple[Spec, int]]) -> list[EventBase]:
    """Events from `(kind and fields, seconds after T0)`, with ids e0, e1, ..."""
    built = []
    for i, ((kind, fields), seconds) in enumerate(specs):
        extra = dict(fields)
        if kind == "page_viewed":
            extra["url"] = f"https://acme.example{extra['path']}"
        if kind in {"page_viewed", "file_downloaded", "video_viewed", "form_submitted"}:
            extra["anonymous_id"] = None
        built.append(
            make_event(
                kind,
                event_id=f"e{i}",
                lead_id=LEAD,
                occurred_at=T0 + timedelta(seconds=seconds),
                **extra,
            )
        )
    return built


def streams(
    kinds: Sequence[Spec],
    *,
    min_size: int = 1,
    max_size: int = 24,
    dense: bool = False,
    days: int = 120,
) -> st.SearchStrategy[list[EventBase]]:
    """Streams of distinct-time events of `kinds` over `days` (or an hour, when `dense`)."""
    span = 3_600 if dense else days * 86_400
    times = st.lists(st.integers(0, span), min_size=min_size, max_size=max_size, unique=True)
    return times.flatmap(
        lambda ts: st.lists(st.sampled_from(kinds), min_size=len(ts), max_size=len(ts)).map(
            lambda ks: _build(sorted(zip(ks, ts, strict=True), key=lambda kt: kt[1]))
        )
    )


def fold(
    events: Sequence[EventBase], model: ScoringModel, state: ModelState | None = None
) -> tuple[ModelState | None, list[Output]]:
    outputs: list[Output] = []
    for event in events:
        step = apply(state, event, model=model)
        state = step.state
        outputs.extend(step.outputs)
    return state, outputs


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, scale)


def _scale(events: Sequence[EventBase]) -> float:
    return 50.0 * len(events)  # no event is worth more than 50 points in these models


# ------------------------------------------------------------------------ models

PLAIN = """
format: 1
models:
  - id: plain
    version: "1"
    decay: {web: 30d, email: 14d, social: 7d, flat: never, negative: never}
    fit:
      - {id: industry, field: industry, in: [software, saas], points: 5}
      - {id: size, field: company_size, range: {gt: 50}, points: 3}
      - {id: age, field: age, per_unit_above: 25, points: 1, max_points: 20}
      - {id: free_mail, field: email_domain, in: [gmail.com], points: -10}
      - {id: title, field: job_title, regex: '\\b(vp|head|chief)\\b', points: 2}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
      - {id: pricing, event: page_viewed, where: {path: "/pricing*"}, points: 10, group: web}
      - {id: careers, event: page_viewed, where: {path: "/careers*"}, points: -5, group: negative}
      - {id: open, event: email_opened, points: 1, group: email}
      - {id: click, event: email_clicked, points: 3, group: email}
      - {id: share, event: social_shared, points: 3, group: social}
      - {id: like, event: social_liked, points: 1, group: social}
      - {id: webinar, event: webinar_attended, points: 10, group: flat}
      - {id: download, event: file_downloaded, points: 5, group: web}
      - {id: demo, event: [demo_requested, trial_requested], points: 30, group: web,
         hand_raise: true}
      - {id: unsubscribe, event: email_unsubscribed, points: -10, group: negative}
    stages:
      mql: {promote_at: 40, demote_below: 25}
      sql: {promote_at: 90}
      hand_raise: {min_fit: 5}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
    spam: {burst: null}
    outputs: {min_change: 0, top_rules: 3}
"""

THRESHOLDS = """
format: 1
models:
  - id: thresholds
    version: "1"
    decay: {web: 20d, email: 7d, flat: never}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
      - {id: pricing, event: page_viewed, where: {path: "/pricing*"}, points: 10, group: web}
      - {id: open, event: email_opened, points: 1, group: email}
      - {id: click, event: email_clicked, points: 3, group: email}
      - {id: webinar, event: webinar_attended, points: 10, group: web}
      - {id: download, event: file_downloaded, points: 5, group: flat}
    stages:
      mql: {promote_at: 30, demote_below: 20}
      sql: {promote_at: 60}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
    spam: {burst: null}
"""
"""Positive points only, no fit, no hand-raises, no CRM feedback: stages by thresholds alone."""

FACTS_MODEL = """
format: 1
models:
  - id: facts
    version: "1"
    decay: {web: 30d}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
      - {id: demo, event: [demo_requested, trial_requested], points: 30, group: web,
         hand_raise: true}
    stages:
      mql: {promote_at: 1000000}
      hand_raise: {min_fit: 0}
      graph: {STAGES}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
    spam: {burst: null}
""".replace(
    "{STAGES}",
    "{" + ", ".join(f"{s.value}: [{', '.join(t.value for t in Stage)}]" for s in Stage) + "}",
)
"""Every transition allowed; stages by CRM feedback, hand-set stages and hand-raises only."""


@pytest.fixture(scope="module")
def plain() -> ScoringModel:
    return parse_models(PLAIN).get("plain")


@pytest.fixture(scope="module")
def thresholds() -> ScoringModel:
    return parse_models(THRESHOLDS).get("thresholds")


@pytest.fixture(scope="module")
def facts() -> ScoringModel:
    return parse_models(FACTS_MODEL).get("facts")


# ----------------------------------------------------------------- order independence


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT, *HAND_RAISES, *PROFILES[:4], *PROFILES[7:]], max_size=28),
)
def test_permuting_events_gives_the_same_scores(
    plain: ScoringModel, data: st.DataObject, events: list[EventBase]
) -> None:
    """Any arrival order gives the same fit, engagement and total (model without caps)."""
    shuffled = data.draw(st.permutations(events))
    in_order, _ = fold(events, plain)
    other, _ = fold(shuffled, plain)
    assert (in_order is None) == (other is None)
    assume(in_order is not None and other is not None)
    assert in_order is not None and other is not None
    later = data.draw(st.integers(0, 200 * 86_400))
    now = max(e.occurred_at for e in events) + timedelta(seconds=later)
    a, b = score_at(in_order, now), score_at(other, now)
    scale = _scale(events)
    assert _close(a.fit, b.fit, scale)
    assert _close(a.engagement, b.engagement, scale)
    assert _close(a.total, b.total, scale)
    if all(abs(a.engagement - edge) > 1e-6 for edge in (60, 30, 10)):
        assert a.grade == b.grade


@PROPERTY
@given(
    data=st.data(),
    events=st.one_of(
        streams([*ENGAGEMENT[:4], *ENGAGEMENT[5:12]], min_size=10, max_size=30, days=5),
        streams([*ENGAGEMENT[:4], *ENGAGEMENT[5:12]], min_size=4, max_size=30, days=60),
    ),
)
def test_final_stage_by_thresholds_is_order_independent_outside_the_bands(
    thresholds: ScoringModel, data: st.DataObject, events: list[EventBase]
) -> None:
    """With positive points only and stages by thresholds alone:

    - if the score never reached the MQL threshold at any event time (computed exactly from the
      events), no arrival order makes the lead more than a lead: a score seen out of order is
      a sum over fewer events, so it is never above the true score at the same time;
    - if the score after the last event is at least the SQL threshold, every order ends in SQL;
    - if it is at least the MQL threshold and the score never reached the SQL threshold, every
      order ends in MQL.

    In between (a final score inside the hysteresis band, or a peak above a threshold the final
    score is below) the final stage depends on the path: hysteresis remembers, and a late event
    cannot undo a transition already published. That is inherent, not a defect.
    """
    shuffled = data.draw(st.permutations(events))
    in_order, _ = fold(events, thresholds)
    assume(in_order is not None)
    assert in_order is not None
    rates = in_order.c.rates
    steps = [apply(None, e, model=thresholds).scored for e in events]
    contributions = [(c.rule_id, c.points, c.at) for scored in steps for c in scored]

    def true_score(at: float) -> float:
        return sum(p * math.exp(-rates[r] * (at - t)) for r, p, t in contributions if t <= at)

    peak = max((true_score(e.occurred_at.timestamp()) for e in events), default=0.0)
    final = true_score(max(e.occurred_at.timestamp() for e in events))
    assume(all(abs(v - edge) > 1e-6 for v in (peak, final) for edge in (20, 30, 60)))
    other, _ = fold(shuffled, thresholds)
    assert other is not None
    if peak < 30:
        expected: Stage | None = Stage.LEAD
    elif final >= 60:
        expected = Stage.SQL
    elif final >= 30 and peak < 60:
        expected = Stage.MQL
    else:
        expected = None
    label(f"expected final stage: {expected and expected.value}")
    if expected is not None:
        assert in_order.stage is expected
        assert other.stage is expected


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT[:4], *HAND_RAISES, *FACTS], max_size=20),
)
def test_final_stage_by_crm_feedback_and_hand_raises_is_order_independent(
    facts: ScoringModel, data: st.DataObject, events: list[EventBase]
) -> None:
    """When the graph allows every transition and thresholds are out of reach, the final stage
    depends only on the events, not on their order: the newest CRM feedback or hand-set stage
    wins (an older one arriving later is stale), and a hand-raise newer than it makes a
    marketing-stage lead SQL, whenever it arrives.

    With a restrictive graph (the default one) this holds as long as the newest fact's
    transition is allowed from the stage the older ones lead to: in time order a forbidden fact
    is dropped, out of order the older fact is stale. E.g. `sales_rejected` after `closed_won`:
    a customer stays a customer in time order, but if the rejection arrives first the win is
    stale when it comes.
    """
    shuffled = data.draw(st.permutations(events))
    in_order, _ = fold(events, facts)
    other, _ = fold(shuffled, facts)
    assert (in_order is None) == (other is None)
    assert (in_order and in_order.stage) is (other and other.stage)
    label(f"final stage: {in_order and in_order.stage.value}")


# ------------------------------------------------------------------------ replays


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT, *HAND_RAISES, *FACTS, *PROFILES], max_size=SEEN_IDS - 2),
)
def test_replaying_any_subset_changes_nothing(
    models: ModelSet, data: st.DataObject, events: list[EventBase]
) -> None:
    """Applying events again, in any order, gives no outputs and the same state (the events
    from the lead's first on: a sending or delivery before it was not noted, see below)."""
    state: LeadState | None = None
    created = len(events)
    for index, event in enumerate(events):
        state = apply_all(state, event, models=models).state
        if state is not None:
            created = min(created, index)
    assume(state is not None)
    before = state.to_dict()  # type: ignore[union-attr]
    again = data.draw(st.lists(st.sampled_from(events[created:]), max_size=len(events)))
    for event in again:
        step = apply_all(state, event, models=models)
        assert step.outputs == ()
        assert step.state is state
    assert state.to_dict() == before  # type: ignore[union-attr]


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT, *HAND_RAISES, *FACTS, *PROFILES], max_size=SEEN_IDS - 2),
)
def test_duplicates_anywhere_in_the_stream_are_ignored(
    b2b: ScoringModel, data: st.DataObject, events: list[EventBase]
) -> None:
    """A stream with duplicates inserted after their originals gives the same state and the
    same outputs as the stream without them (at-least-once delivery is harmless).

    A message's sending or delivery is only noted for a lead that exists (for the
    machine-timing tests; it does not make a lead): a copy of one that came before the lead
    did, arriving after, is noted then. So copies are drawn from the lead's first event on."""
    created = next(
        (i for i in range(len(events)) if fold(events[: i + 1], b2b)[0] is not None), len(events)
    )
    if created == len(events):
        return
    with_duplicates = list(events)
    for event in data.draw(st.lists(st.sampled_from(events[created:]), max_size=10)):
        first = with_duplicates.index(event)
        with_duplicates.insert(data.draw(st.integers(first + 1, len(with_duplicates))), event)
    clean_state, clean_outputs = fold(events, b2b)
    dup_state, dup_outputs = fold(with_duplicates, b2b)
    assert dup_outputs == clean_outputs
    assert (dup_state and dup_state.to_dict()) == (clean_state and clean_state.to_dict())


# -------------------------------------------------------------------------- decay


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT, *HAND_RAISES, *PROFILES], max_size=24),
)
def test_decayed_scores_never_increase_without_events(
    models: ModelSet, data: st.DataObject, events: list[EventBase]
) -> None:
    for model in models.models:
        state, _ = fold(events, model)
        if state is None:
            continue
        start = datetime.fromtimestamp(state.as_of, UTC)
        offsets = sorted(data.draw(st.lists(st.integers(0, 400 * 86_400), min_size=2)))
        scores = [score_at(state, start + timedelta(seconds=s)) for s in offsets]
        for earlier, later in itertools.pairwise(scores):
            assert later.engagement <= earlier.engagement + 1e-12 * max(1, abs(earlier.engagement))
            assert later.total <= earlier.total + 1e-12 * max(1, abs(earlier.total))
            assert later.fit == earlier.fit


# --------------------------------------------------------------------------- caps

CAPPED = [
    ("page_viewed", {"path": "/"}),
    ("page_viewed", {"path": "/pricing"}),
    ("page_viewed", {"path": "/careers"}),
    ("email_opened", {}),
    ("email_clicked", {}),
    ("social_liked", {}),
    ("social_commented", {}),
    ("video_viewed", {}),
    ("ad_clicked", {}),
]


@PROPERTY
@given(
    data=st.data(),
    events=st.one_of(streams(CAPPED, max_size=40, dense=True), streams(CAPPED, max_size=40)),
)
def test_caps_are_never_exceeded(
    models: ModelSet, data: st.DataObject, events: list[EventBase]
) -> None:
    """Per rule and cap window, the points (or events) scored stay within the cap, in any
    arrival order."""
    arrival = data.draw(st.permutations(events))
    for model in models.models:
        used: dict[tuple[str, int], list[float]] = defaultdict(list)
        state: ModelState | None = None
        for event in arrival:
            step = apply(state, event, model=model)
            state = step.state
            for c in step.scored:
                cap = next(r.cap for r in model.engagement if r.id == c.rule_id)
                if cap is not None:
                    used[(c.rule_id, math.floor(c.at / cap.per))].append(c.points)
        for (rule_id, _), points in used.items():
            cap = next(r.cap for r in model.engagement if r.id == rule_id)
            assert cap is not None
            if cap.max_count is not None:
                assert len(points) <= cap.max_count
            else:
                assert cap.max_points is not None
                assert sum(points) <= cap.max_points + 1e-9


# ------------------------------------------------------------------------- stages

ALL = [*ENGAGEMENT, *HAND_RAISES, *FACTS, *PROFILES]


@PROPERTY
@given(
    data=st.data(),
    events=st.one_of(streams(ALL, max_size=30), streams(ALL, max_size=30, dense=True)),
)
def test_no_transition_outside_the_graph_ever_happens(
    models: ModelSet, data: st.DataObject, events: list[EventBase]
) -> None:
    """Events in any order, interleaved with timer ticks: every stage change is an edge of
    the model's graph (or a new lead entering the initial stage), and every output is a valid
    contract record."""
    arrival = data.draw(st.permutations(events))
    for model in models.models:
        graph = model.compiled.graph
        state: ModelState | None = None
        outputs: list[Output] = []
        for event in arrival:
            step = apply(state, event, model=model)
            outputs.extend(step.outputs)
            state = step.state
            if state is not None and data.draw(st.booleans()):
                tick = data.draw(st.integers(0, 90 * 86_400))
                now = datetime.fromtimestamp(state.as_of, UTC) + timedelta(seconds=tick)
                timer = advance(state, now, lead_id=LEAD)
                outputs.extend(timer.outputs)
                state = timer.state
        stage: Stage | None = None
        for output in outputs:
            assert type(output).model_validate(output.model_dump()) == output
            if isinstance(output, StageChanged):
                if output.from_stage is None:
                    assert output.to_stage is model.stages.initial
                else:
                    assert output.to_stage in graph[output.from_stage]
                    assert output.from_stage is stage
                stage = output.to_stage
            elif isinstance(output, ScoreUpdated):
                assert output.stage is stage
            else:
                assert isinstance(output, LeadErasedRecord)
                stage = None
        assert (state.stage if state is not None else None) is stage
        changes = sum(isinstance(o, StageChanged) and o.from_stage is not None for o in outputs)
        label(f"{model.id}: {min(changes, 3)}+ stage changes")


# -------------------------------------------------------------------------- merge


@PROPERTY
@given(
    data=st.data(),
    events=streams([*ENGAGEMENT, *HAND_RAISES, *PROFILES[:4], *PROFILES[7:]], max_size=24),
)
def test_merging_two_leads_is_exact(
    plain: ScoringModel, data: st.DataObject, events: list[EventBase]
) -> None:
    """Split a lead's events between two leads; merging their states gives the scores of the
    one lead that saw them all."""
    sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    first = [e for e, side in zip(events, sides, strict=True) if side]
    second = [e for e, side in zip(events, sides, strict=True) if not side]
    assume(first and second)
    whole, _ = fold(events, plain)
    a, _ = fold(first, plain)
    b, _ = fold(second, plain)
    assume(a is not None and b is not None)
    assert whole is not None and a is not None and b is not None
    merged = merge_states(a, b, plain)
    now = max(e.occurred_at for e in events) + timedelta(days=data.draw(st.integers(0, 100)))
    got, want = score_at(merged, now), score_at(whole, now)
    scale = _scale(events)
    assert _close(got.fit, want.fit, scale)
    assert _close(got.engagement, want.engagement, scale)
    # Everything either lead saw is remembered as applied.
    for event in events:
        assert apply(merged, event, model=plain).outputs == ()


# ------------------------------------------------------------------ serialisation


@PROPERTY
@given(events=st.one_of(streams(ALL, max_size=30), streams(ALL, max_size=30, dense=True)))
def test_states_survive_a_json_round_trip(models: ModelSet, events: list[EventBase]) -> None:
    state: LeadState | None = None
    for event in events:
        state = apply_all(state, event, models=models).state
    assume(state is not None)
    assert state is not None
    stored = json.loads(json.dumps(state.to_dict()))
    loaded = LeadState.from_dict(stored, models)
    assert loaded.to_dict() == stored
    now = max(e.occurred_at for e in events) + timedelta(days=3)
    for model_id, original in state.models.items():
        a, b = score_at(original, now), score_at(loaded.models[model_id], now)
        assert a.stage is b.stage and a.fit == b.fit
        assert abs(a.engagement - b.engagement) <= 1e-11 * max(1.0, _scale(events))


# ------------------------------------------------------------------------- batches

BATCH_KINDS = [*ALL, ("leads_merged", {}), ("lead_erased", {})]


@st.composite
def arrivals(draw: st.DrawFn) -> list[EventBase]:
    """A lead's events as a worker may receive them: some late (moved after later ones), some
    delivered again, rarely an erasure or a merge among them."""
    kinds = draw(st.sampled_from([ALL, ALL, BATCH_KINDS]))
    events = draw(st.one_of(streams(kinds, max_size=30), streams(kinds, max_size=30, dense=True)))
    for _ in range(draw(st.integers(0, 4))):  # late events
        i = draw(st.integers(0, len(events) - 1))
        events.insert(draw(st.integers(i, len(events) - 1)), events.pop(i))
    for event in draw(st.lists(st.sampled_from(events), max_size=6)):  # redeliveries
        first = events.index(event)
        events.insert(draw(st.integers(first + 1, len(events))), event)
    if draw(st.integers(0, 4)) == 0:  # an erasure anywhere, dated like its neighbour
        at = draw(st.integers(0, len(events)))
        when = events[min(at, len(events) - 1)].occurred_at
        erase = make_event("lead_erased", event_id="erase", lead_id=LEAD, occurred_at=when)
        events.insert(at, erase)
    return events


def _fold_all(
    state: LeadState | None, events: Sequence[EventBase], models: ModelSet
) -> tuple[LeadState | None, list[Output], bool]:
    """The state and outputs of `apply_all` over `events`, and whether any event applied."""
    outputs: list[Output] = []
    applied = False
    for event in events:
        step = apply_all(state, event, models=models)
        applied = applied or step.state is not state
        state = step.state
        outputs.extend(step.outputs)
    return state, outputs, applied


def _last_scores(outputs: Sequence[Output]) -> list[ScoreUpdated]:
    """Each model's last score update after the last erasure, and every one taken at a CRM
    outcome after it, in the order they came."""
    last: dict[str, ScoreUpdated] = {}
    for output in outputs:
        if isinstance(output, LeadErasedRecord):
            last.clear()
        elif isinstance(output, ScoreUpdated):
            last.pop(output.model, None)
            if output.outcome is not None:
                last[f"{output.model} {output.last_event_id}"] = output
            else:
                last[output.model] = output
    return list(last.values())


def _others(outputs: Sequence[Output]) -> list[Output]:
    return [o for o in outputs if not isinstance(o, ScoreUpdated)]


def _dump(state: LeadState | None) -> dict[str, Any] | None:
    return state.to_dict() if state is not None else None


def _json(outputs: Sequence[Output]) -> list[str]:
    return [o.model_dump_json() for o in outputs]


@PROPERTY
@given(data=st.data(), before=streams(ALL, max_size=6), events=arrivals())
def test_a_batch_equals_applying_its_events_one_by_one(
    models: ModelSet, data: st.DataObject, before: list[EventBase], events: list[EventBase]
) -> None:
    """Same state, same stage changes and erasures in the same order, and per model the last
    score update, byte for byte (none that a later erasure in the batch takes back)."""
    start: LeadState | None = None
    if data.draw(st.booleans()):  # a lead with history (its events' ids do not clash: e0...)
        shifted = [e.model_copy(update={"event_id": f"old-{e.event_id}"}) for e in before]
        start, _, _ = _fold_all(None, shifted, models)
    snapshot = _dump(start)
    want_state, want_outputs, applied = _fold_all(start, events, models)
    got = apply_batch(start, events, models=models)
    assert _dump(start) == snapshot  # the given state is not changed
    assert _dump(got.state) == _dump(want_state)
    assert _others(got.outputs) == _others(want_outputs)
    scores = [o for o in got.outputs if isinstance(o, ScoreUpdated)]
    assert got.outputs[len(got.outputs) - len(scores) :] == tuple(scores)  # scores come last
    assert scores == _last_scores(want_outputs)
    assert _json(scores) == _json(_last_scores(want_outputs))
    for score in scores:  # valid as the contract defines it
        assert ScoreUpdated.model_validate_json(score.model_dump_json()) == score
    if not applied:  # nothing applied: the state is returned as is, with what the fold published
        # (an erasure of a lead with no state still publishes its erasure records)
        assert got.state is start and list(got.outputs) == want_outputs
    label(f"{len(scores)} scores, {len(_others(got.outputs))} other outputs")


@PROPERTY
@given(data=st.data(), events=arrivals())
def test_two_batches_in_a_row_equal_one(
    models: ModelSet, data: st.DataObject, events: list[EventBase]
) -> None:
    """Splitting a batch anywhere changes neither the state nor the stage changes, and the last
    score update per model is the same."""
    cut = data.draw(st.integers(0, len(events)))
    whole = apply_batch(None, events, models=models)
    first = apply_batch(None, events[:cut], models=models)
    second = apply_batch(first.state, events[cut:], models=models)
    assert _dump(second.state) == _dump(whole.state)
    both = [*first.outputs, *second.outputs]
    assert _others(both) == _others(whole.outputs)
    assert _json(_last_scores(both)) == _json(_last_scores(whole.outputs))
