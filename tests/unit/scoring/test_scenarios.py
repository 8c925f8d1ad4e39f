"""Scenarios in plain language, on the default models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import Traits
from schemas.outputs import LeadErasedRecord, ScoreUpdated, StageChanged
from schemas.stages import Stage
from stream.scoring import (
    ScoringModel,
    advance,
    apply,
    explain,
    next_crossing,
    score_at,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _stages(outputs: list[object]) -> list[tuple[Stage | None, Stage]]:
    return [(o.from_stage, o.to_stage) for o in outputs if isinstance(o, StageChanged)]


def _buyer_profile(ev, days: float = 0.0):  # type: ignore[no-untyped-def]
    return ev(
        "profile_updated",
        days,
        traits=Traits(
            email="ada@analytical-engines.co.uk",
            first_name="Ada",
            last_name="Lovelace",
            industry="software",
            company_size=120,
            job_title="Head of Marketing",
            age=35,
        ),
    )


def test_a_buyer_who_reads_the_pricing_page_and_books_a_demo_becomes_sql(ev, run, b2b) -> None:
    events = [
        _buyer_profile(ev),
        ev("page_viewed", 0.01, path="/features"),
        ev("page_viewed", 0.02, path="/pricing"),
        ev("demo_requested", 0.03),
    ]
    state, outputs = run(events, b2b)
    assert state is not None and state.stage is Stage.SQL
    sql = [o for o in outputs if isinstance(o, StageChanged) and o.to_stage is Stage.SQL]
    assert len(sql) == 1
    assert sql[0].triggering_event_id == events[-1].event_id
    assert sql[0].reason.startswith("hand-raise demo_request")
    assert _stages(outputs)[0] == (None, Stage.LEAD)


def test_a_tire_kicker_decays_back_to_recycled_after_60_quiet_days(ev, run, b2b) -> None:
    events = [
        ev("profile_updated", 0, traits=Traits(industry="software", company_size=120, age=30)),
        *(ev("page_viewed", 0.001 * i, path="/blog/post") for i in range(3)),
        ev("page_viewed", 0.01, path="/pricing"),
        ev("page_viewed", 0.02, path="/pricing/enterprise"),
        ev("webinar_attended", 1),
        ev("file_downloaded", 2),
    ]
    state, _outputs = run(events, b2b)
    assert state is not None and state.stage is Stage.MQL

    # The timer's view: decay crosses the grade bands, then the demotion threshold.
    timer = advance(state, T0 + timedelta(days=60), lead_id="lead-42")
    assert timer.state is not None and timer.state.stage is Stage.RECYCLED
    (change,) = [o for o in timer.outputs if isinstance(o, StageChanged)]
    assert (change.from_stage, change.to_stage) == (Stage.MQL, Stage.RECYCLED)
    assert T0 + timedelta(days=30) < change.occurred_at < T0 + timedelta(days=60)
    assert change.triggering_event_id is None
    before = advance(state, change.occurred_at - timedelta(microseconds=1), lead_id="lead-42")
    assert before.state is not None and before.state.stage is Stage.MQL
    assert next_crossing(before.state) == change.occurred_at
    assert 29.999 <= change.score.total <= 30  # published to 4 decimals; just below 30
    assert "decayed below mql demotion threshold 30" in change.reason

    # A later event finds the same crossing and publishes the same (deduplicable) change.
    later = apply(state, ev("email_opened", 61), model=b2b)
    assert later.state is not None and later.state.stage is Stage.RECYCLED
    assert next(o for o in later.outputs if isinstance(o, StageChanged)) == change


def test_a_gmail_student_never_passes_mql_in_the_b2b_model(ev, run, b2b, consumer) -> None:
    events = [
        ev("identify", 0, traits=Traits(email="kim.student@gmail.com", first_name="Kim")),
        ev("profile_updated", 0.01, traits=Traits(job_title="Student", age=21)),
    ]
    for day in range(20):
        events += [
            ev("page_viewed", day, path="/pricing"),
            ev("page_viewed", day + 0.01, path="/docs"),
            ev("webinar_attended", day + 0.02),
            ev("file_downloaded", day + 0.03),
            ev("video_viewed", day + 0.04),
        ]
    events.append(ev("demo_requested", 20))
    state, outputs = run(events, b2b)
    assert state is not None
    assert score_at(state, T0 + timedelta(days=20)).fit == -20
    assert score_at(state, T0 + timedelta(days=20)).total > 100
    assert state.stage is Stage.LEAD
    assert {to for _, to in _stages(outputs)} == {Stage.LEAD}

    # The consumer product line is happy to have them.
    consumer_state, _ = run(events, consumer)
    assert consumer_state is not None and consumer_state.stage is Stage.MQL


def test_an_unsubscribe_drops_engagement(ev, run, b2b) -> None:
    state, _ = run([ev("email_opened", 0), ev("webinar_attended", 0.5)], b2b)
    assert state is not None
    before = score_at(state, T0 + timedelta(days=1))
    after_state, outputs = run([ev("email_unsubscribed", 1)], b2b, state)
    assert after_state is not None
    after = score_at(after_state, T0 + timedelta(days=1))
    assert after.engagement == pytest.approx(before.engagement - 10)
    update = outputs[-1]
    assert isinstance(update, ScoreUpdated)
    assert update.engagement == pytest.approx(before.engagement - 10, abs=1e-4)
    # The unsubscribe does not fade: negative points live in a group that does not decay.
    assert score_at(after_state, T0 + timedelta(days=400)).engagement == pytest.approx(
        -10, abs=0.01
    )


def test_a_bot_burst_is_flagged_and_does_not_score(ev, run, b2b) -> None:
    state, _ = run([_buyer_profile(ev), ev("webinar_attended", 0.5)], b2b)
    assert state is not None
    burst_start = T0 + timedelta(days=1)
    before = score_at(state, burst_start + timedelta(seconds=10))
    burst = [
        ev("page_viewed", path=f"/p{i}", occurred_at=burst_start + timedelta(milliseconds=150 * i))
        for i in range(40)
    ]
    after, _ = run(burst, b2b, state)
    assert after is not None
    assert score_at(after, burst_start + timedelta(seconds=10)).engagement == pytest.approx(
        before.engagement, rel=1e-12
    )
    assert "bot burst seen" in explain(after, burst_start).flags
    # A person browsing afterwards scores again.
    later, _ = run([ev("page_viewed", 2, path="/features")], b2b, after)
    assert later is not None
    assert (
        score_at(later, T0 + timedelta(days=2)).engagement
        > score_at(after, T0 + timedelta(days=2)).engagement
    )


def test_machine_opens_do_not_score(ev, run, b2b) -> None:
    state, _outputs = run([ev("email_opened", 0, machine_open=True)], b2b)
    assert state is not None and score_at(state, T0).engagement == 0
    human, _ = run([ev("email_opened", 0.1)], b2b, state)
    assert human is not None and score_at(human, T0 + timedelta(days=0.1)).engagement == 1


def test_email_opens_are_capped_at_five_a_day(ev, b2b) -> None:
    state = None
    scored = []
    for i in range(9):
        step = apply(state, ev("email_opened", 0.01 * i), model=b2b)
        state, scored = step.state, [*scored, *step.scored]
    assert [c.points for c in scored] == [1, 1, 1, 1, 1]
    next_day = apply(state, ev("email_opened", 1), model=b2b)
    assert [c.points for c in next_day.scored] == [1]


def test_an_open_arriving_late_counts_as_if_it_had_come_on_time(ev, run, plain) -> None:
    early, late = ev("email_opened", 1), ev("webinar_attended", 5)
    in_order, _ = run([early, late], plain)
    out_of_order, _ = run([late, early], plain)
    assert in_order is not None and out_of_order is not None
    now = T0 + timedelta(days=9)
    assert score_at(out_of_order, now).engagement == pytest.approx(
        score_at(in_order, now).engagement, rel=1e-12
    )
    assert score_at(in_order, now).engagement == pytest.approx(10 + 2 ** (-8 / 14), rel=1e-12)


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        (Traits(email="x@mailinator.com"), "disposable email domain"),
        (Traits(email="x@localhost"), "invalid email domain"),
        (Traits(first_name="asdf", last_name="qwerty"), "gibberish name"),
        (Traits(email="spy@competitor.example"), "disqualifying profile"),
    ],
)
def test_spam_and_competitors_are_disqualified(ev, run, b2b, traits: Traits, reason: str) -> None:
    state, outputs = run([ev("page_viewed", 0, path="/"), ev("identify", 0.1, traits=traits)], b2b)
    assert state is not None and state.stage is Stage.DISQUALIFIED
    change = [o for o in outputs if isinstance(o, StageChanged)][-1]
    assert change.reason.startswith("disqualified: ") and reason in change.reason
    # No scoring rule gets a disqualified lead out again.
    later, _ = run([ev("demo_requested", 1), ev("webinar_attended", 1.1)], b2b, state)
    assert later is not None and later.stage is Stage.DISQUALIFIED


def test_sales_feedback_moves_the_lead_through_the_funnel(ev, run, b2b) -> None:
    state, outputs = run(
        [
            ev("page_viewed", 0, path="/"),
            ev("sales_accepted", 1),
            ev("opportunity_created", 2),
            ev("closed_won", 3),
            ev("sales_rejected", 4, reason="duplicate"),  # a customer is not sent back
        ],
        b2b,
    )
    assert state is not None and state.stage is Stage.CUSTOMER
    assert _stages(outputs) == [
        (None, Stage.LEAD),
        (Stage.LEAD, Stage.SQL),
        (Stage.SQL, Stage.OPPORTUNITY),
        (Stage.OPPORTUNITY, Stage.CUSTOMER),
    ]


def test_a_rejected_lead_is_recycled_and_not_requalified_by_the_score_sales_rejected(
    ev, run, b2b
) -> None:
    engaged = [
        _buyer_profile(ev),
        *(ev("page_viewed", 0.01 * i, path="/pricing") for i in range(2)),
        ev("webinar_attended", 0.1),
        ev("file_downloaded", 0.2),
    ]
    state, _ = run(engaged, b2b)
    assert state is not None and state.stage is Stage.MQL
    state, outputs = run([ev("sales_rejected", 1, reason="no budget this year")], b2b, state)
    assert state is not None and state.stage is Stage.RECYCLED
    assert _stages(outputs)[-1] == (Stage.MQL, Stage.RECYCLED)
    assert [o.reason for o in outputs if isinstance(o, StageChanged)] == [
        "sales_rejected: no budget this year"
    ]
    # More activity right away does not bring it back: the score sales saw is on hold.
    state, _ = run([ev("webinar_attended", 2)], b2b, state)
    assert state is not None and state.stage is Stage.RECYCLED
    # After it fades below the demotion threshold, fresh engagement re-qualifies it.
    fresh = [ev("webinar_attended", 120 + 0.01 * i) for i in range(3)]
    fresh += [ev("page_viewed", 120.1, path="/pricing"), ev("file_downloaded", 120.2)]
    state, _ = run(fresh, b2b, state)
    assert state is not None and state.stage is Stage.MQL


def test_a_hand_raise_counts_when_the_company_data_arrives_later(ev, run, b2b) -> None:
    state, _ = run([ev("demo_requested", 0)], b2b)
    assert state is not None and state.stage is Stage.LEAD  # fit 0 < 5: not yet
    enriched, _ = run([_buyer_profile(ev, 0.01)], b2b, state)
    assert enriched is not None and enriched.stage is Stage.SQL
    too_late, _ = run([_buyer_profile(ev, 45)], b2b, state)
    assert too_late is not None and too_late.stage is Stage.LEAD


def test_a_lead_form_filled_in_a_social_ad_is_a_hand_raise(ev, run, b2b, consumer) -> None:
    form = ev("social_form_submitted", 0.01)
    state, outputs = run([_buyer_profile(ev), form], b2b)
    assert state is not None and state.stage is Stage.SQL
    (sql,) = [o for o in outputs if isinstance(o, StageChanged) and o.to_stage is Stage.SQL]
    assert sql.reason.startswith("hand-raise social_lead_form")
    assert sql.triggering_event_id == form.event_id
    # a test lead from the network's form preview is shown, never scored
    test_lead = ev("social_form_submitted", 0.01, machine="vendor flag: testLead")
    state, _ = run([_buyer_profile(ev), test_lead], b2b)
    assert state is not None and state.stage is Stage.LEAD
    # the self-serve line counts it as a form, not as a hand-raise
    state, outputs = run([_buyer_profile(ev), ev("social_form_submitted", 0.01)], consumer)
    assert state is not None and state.stage is Stage.LEAD
    assert any(
        isinstance(o, ScoreUpdated) and any(r.rule_id == "form" for r in o.top_rules)
        for o in outputs
    )


def test_a_stage_set_by_hand_wins_over_decay(ev, run, b2b) -> None:
    by_hand = ev("stage_set", 0.1, stage=Stage.MQL, model=None, reason="met at a fair")
    state, _ = run([ev("page_viewed", 0, path="/"), by_hand], b2b)
    assert state is not None and state.stage is Stage.MQL
    assert (
        next_crossing(state) is None
        or advance(state, T0 + timedelta(days=365), lead_id="lead-42").state.stage is Stage.MQL
    )  # type: ignore[union-attr]
    other_model = ev("stage_set", 0.2, stage=Stage.SQL, model="consumer")
    assert apply(state, other_model, model=b2b).state is state  # meant for another model


def test_an_erased_lead_leaves_nothing_but_the_erasure(ev, run, b2b) -> None:
    state, _ = run([ev("page_viewed", 0, path="/")], b2b)
    step = apply(state, ev("lead_erased", 1), model=b2b)
    assert step.state is None
    (record,) = step.outputs
    assert isinstance(record, LeadErasedRecord) and record.model == "b2b"


def test_a_replayed_event_changes_nothing(ev, run, b2b) -> None:
    view = ev("page_viewed", 0, path="/pricing")
    state, _ = run([view], b2b)
    again = apply(state, view, model=b2b)
    assert again.state is state and again.outputs == ()


def test_a_new_lead_enters_its_first_stage_then_gets_a_score(ev, run, b2b) -> None:
    view = ev("page_viewed", 0, path="/")
    step = apply(None, view, model=b2b)
    first, second = step.outputs
    assert isinstance(first, StageChanged)
    assert (first.from_stage, first.to_stage, first.reason) == (None, Stage.LEAD, "new lead")
    assert isinstance(second, ScoreUpdated) and second.engagement == 2 and second.revision == 1
    # The same event in another process gives the same deduplicable stage-change id.
    assert apply(None, view, model=b2b).outputs[0] == first


def test_small_changes_are_not_published(ev, run, b2b: ScoringModel) -> None:
    state, _ = run([ev("webinar_attended", 0)], b2b)
    # One hour later the webinar has faded by 0.01 points and a capped-out open adds nothing.
    opens = [ev("email_opened", 1 / 24 + 0.0001 * i) for i in range(6)]
    state, outputs = run(opens[:5], b2b, state)
    assert len([o for o in outputs if isinstance(o, ScoreUpdated)]) == 5
    step = apply(state, opens[5], model=b2b)
    assert step.outputs == () and step.scored == ()


def test_events_that_mean_nothing_to_a_model_leave_no_state(ev, b2b) -> None:
    assert apply(None, ev("email_sent", 0), model=b2b).state is None


def test_times_passed_in_must_be_timezone_aware(ev, run, b2b) -> None:
    state, _ = run([ev("page_viewed", 0, path="/")], b2b)
    assert state is not None
    naive = datetime(2025, 3, 10)  # noqa: DTZ001 - the mistake under test
    for call in (
        lambda: score_at(state, naive),
        lambda: advance(state, naive, lead_id="lead-42"),
        lambda: explain(state, naive),
    ):
        with pytest.raises(ValueError, match="timezone-aware"):
            call()
