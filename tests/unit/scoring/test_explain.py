"""Explanations of a lead's score, and the model printed as tables."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import Traits
from schemas.stages import Stage
from stream.scoring import describe_model, explain, score_at

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def test_the_breakdown_adds_up_to_the_score(ev, run, b2b) -> None:
    events = [
        ev(
            "profile_updated",
            0,
            traits=Traits(industry="software", company_size=80, job_title="CTO", age=40),
        ),
        ev("page_viewed", 0.01, path="/pricing"),
        ev("webinar_attended", 1),
        ev("email_opened", 2),
        ev("email_unsubscribed", 3),
    ]
    state, _ = run(events, b2b)
    assert state is not None
    now = T0 + timedelta(days=10)
    explanation = explain(state, now)
    score = score_at(state, now)
    fit = sum(r.points for r in explanation.rules if r.kind == "fit")
    engagement = sum(r.points for r in explanation.rules if r.kind == "engagement")
    assert fit == pytest.approx(score.fit) == explanation.fit == 15 + 5 + 3 + 2
    assert engagement == pytest.approx(score.engagement, rel=1e-12)
    assert sum(points for _, points in explanation.groups) == pytest.approx(engagement)
    webinar = next(r for r in explanation.rules if r.rule_id == "webinar")
    assert webinar.group == "web"
    assert webinar.points == pytest.approx(10 * 2 ** (-9 / 30), rel=1e-12)
    points = [abs(r.points) for r in explanation.rules]
    assert points == sorted(points, reverse=True)
    assert explanation.grade == score.grade and explanation.stage is Stage.LEAD


def test_recent_contributions_and_stage_history_with_reasons(ev, run, b2b) -> None:
    events = [
        ev("profile_updated", 0, traits=Traits(industry="software", company_size=80, age=40)),
        ev("demo_requested", 1),
        ev("sales_rejected", 2, reason="no budget"),
    ]
    state, _ = run(events, b2b)
    assert state is not None
    explanation = explain(state, T0 + timedelta(days=3))
    assert [(h.from_stage, h.to_stage) for h in explanation.history] == [
        (None, Stage.LEAD),
        (Stage.LEAD, Stage.SQL),
        (Stage.SQL, Stage.RECYCLED),
    ]
    assert explanation.history[1].reason == "hand-raise demo_request with fit 23 >= 5"
    assert explanation.history[2].reason == "sales_rejected: no budget"
    assert explanation.history[2].at == T0 + timedelta(days=2)
    assert explanation.recent[0] == ("demo_request", 30, T0 + timedelta(days=1))
    assert "on hold after sales feedback" in explanation.flags
    text = explanation.format()
    for expected in ("total", "demo_request", "sales_rejected: no budget", "decay group"):
        assert expected in text


def test_an_explanation_before_the_last_event_reads_as_of_it(ev, run, b2b) -> None:
    state, _ = run([ev("webinar_attended", 5)], b2b)
    assert state is not None
    assert explain(state, T0).as_of == T0 + timedelta(days=5)
    assert math.isclose(explain(state, T0).engagement, 10)


def test_the_model_table_shows_everything_a_reader_needs(b2b) -> None:
    text = describe_model(b2b)
    for rule in [*b2b.fit, *b2b.engagement]:
        assert rule.id in text
    for heading in (
        "Fit rules",
        "Engagement and negative rules",
        "Decay groups",
        "Stages and thresholds",
        "Allowed transitions (default graph)",
        "Grade matrix",
        "Spam and bot signals",
    ):
        assert heading in text
    assert "half-life 30d" in text and "does not decay" in text
    assert "5 events / 1d" in text  # the email-open cap
    assert "total >= 50 and fit >= 0" in text and "total < 30 (decay)" in text
    assert "A1" in text and "D4" in text
    assert "more than 12 actions within 10s" in text
    assert "industry in [software, saas, fintech, financial services, ...]" in text
