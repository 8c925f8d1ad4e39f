"""The decay math and the crossing-time search, against direct sums."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Traits
from schemas.stages import Stage
from stream.scoring import advance, apply, next_crossing, parse_models, score_at
from stream.scoring.decay import add, first_below, first_second_below, value_at

DAY = 86_400.0
H30 = math.log(2) / (30 * DAY)
H7 = math.log(2) / (7 * DAY)

points = st.floats(0.1, 100)
times = st.floats(0, 200 * DAY)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(points, times), min_size=1, max_size=30), st.randoms())
def test_any_arrival_order_gives_the_direct_sum(items, rnd) -> None:  # type: ignore[no-untyped-def]
    rnd.shuffle(items)
    s, t_ref = 0.0, items[0][1]
    for p, t in items:
        s, t_ref = add(s, t_ref, p, t, H30)
    now = max(t for _, t in items) + 5 * DAY
    direct = sum(p * 2 ** (-(now - t) / (30 * DAY)) for p, t in items)
    assert value_at(s, t_ref, now, H30) == pytest.approx(direct, rel=1e-12)


def test_a_group_that_does_not_decay_is_a_plain_sum() -> None:
    s, t = add(5.0, 100.0, 3.0, 50.0, 0.0)
    assert (s, t) == (8.0, 100.0)
    assert value_at(s, t, 1e9, 0.0) == 8.0


def test_the_crossing_of_one_group_is_the_closed_form_to_the_microsecond() -> None:
    # 40 points as of t=0 with a 30-day half-life fall below 10 after exactly two half-lives.
    crossing = first_below([(40.0, 0.0, H30)], 0.0, 10.0, 0.0)
    assert crossing is not None
    assert crossing == pytest.approx(60 * DAY, abs=2e-6)
    us = round(crossing * 1e6)
    assert value_at(40.0, 0.0, us / 1e6, H30) < 10.0 <= value_at(40.0, 0.0, (us - 1) / 1e6, H30)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(points, st.floats(0, 30 * DAY), st.sampled_from([H30, H7])), max_size=6),
    st.floats(-20, 20),
    st.floats(1, 150),
)
def test_the_crossing_of_several_groups_is_the_first_microsecond_below(
    terms: list[tuple[float, float, float]], constant: float, threshold: float
) -> None:
    after = 30 * DAY

    def total(at: float) -> float:  # summed exactly, as the core does: no rounding-order noise
        return constant + math.fsum(s * math.exp(-k * (at - t)) for s, t, k in terms)

    crossing = first_below(terms, constant, threshold, after)
    if total(after) < threshold:
        assert crossing == after
    elif constant >= threshold or not terms:
        assert crossing is None
    else:
        assert crossing is not None and crossing > after
        us = round(crossing * 1e6)
        assert total(us / 1e6) < threshold
        assert total((us - 1) / 1e6) >= threshold or (us - 1) / 1e6 < after


def _rounded_up(
    terms: list[tuple[float, float, float]], constant: float, threshold: float, after: float
) -> float | None:
    """The whole second the scoring core used to take: `first_below` rounded up."""
    exact = first_below(terms, constant, threshold, after)
    return None if exact is None else max(after, float(math.ceil(exact)))


rates = st.sampled_from([H30, H7, math.log(2) / 3600, math.log(2) / (365 * DAY)])
sums = st.one_of(st.just(0.0), st.floats(1e-6, 1e4))  # `first_below` takes no subnormal sums


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.tuples(sums, st.floats(1.7e9, 1.7e9 + 60 * DAY), rates), max_size=8),
    st.floats(-50, 50),
    st.floats(0.01, 500),
    st.floats(1.7e9 + 60 * DAY, 1.7e9 + 90 * DAY),
    st.integers(-1, 400 * 86_400),
    st.sampled_from(["drawn", "at a second", "just above", "just below"]),
)
def test_the_whole_second_search_is_the_microsecond_search_rounded_up(  # noqa: PLR0917 - one per drawn value
    terms: list[tuple[float, float, float]],
    constant: float,
    threshold: float,
    after: float,
    offset: int,
    edge: str,
) -> None:
    """Same result as `first_below` rounded up, to the bit, on random terms; the thresholds
    include the sum's exact value at a whole second and the floats either side of it, where a
    search on a different grid or a rounding in the guess would land one second off."""
    if edge != "drawn":
        at = float(math.ceil(after) + offset)
        threshold = constant + math.fsum(s * math.exp(-k * (at - t)) for s, t, k in terms)
        if edge == "just above":
            threshold = math.nextafter(threshold, math.inf)
        elif edge == "just below":
            threshold = math.nextafter(threshold, -math.inf)
    expected = _rounded_up(terms, constant, threshold, after)
    got = first_second_below(terms, constant, threshold, after)
    assert got == expected
    assert got is None or (got.is_integer() and got >= after)


@pytest.mark.parametrize(
    ("terms", "constant", "threshold", "after"),
    [
        ([(40.0, 0.0, H30)], 0.0, 10.0, 0.0),  # one group: exactly two half-lives
        ([(40.0, 0.0, H30)], 0.0, 10.0, 0.5),  # `after` off the grid
        ([(40.0, 0.0, H30), (40.0, 0.0, H7)], 0.0, 10.0, 0.0),
        ([(40.0, 0.0, H30), (0.0, 0.0, H7)], 5.0, 10.0, 3.25),  # an empty group
        ([(1e-30, 0.0, H30), (1e30, 0.0, H7)], 0.0, 1e-10, 1.7e9),  # far apart
        ([(40.0, 0.0, H30)], 12.0, 10.0, 0.0),  # never: the constant is above
        ([(4.0, 0.0, H30)], 0.0, 10.0, 7.5),  # already below
        ([], 3.0, 10.0, 7.5),
    ],
)
def test_the_whole_second_search_on_chosen_terms(
    terms: list[tuple[float, float, float]], constant: float, threshold: float, after: float
) -> None:
    assert first_second_below(terms, constant, threshold, after) == _rounded_up(
        terms, constant, threshold, after
    )


MODEL = """
format: 1
models:
  - id: m
    version: "1"
    decay: {web: 30d, social: 7d, flat: never}
    fit:
      - {id: industry, field: industry, equals: software, points: 10}
    engagement:
      - {id: visit, event: page_viewed, points: 20, group: web}
      - {id: share, event: social_shared, points: 20, group: social}
      - {id: webinar, event: webinar_attended, points: 5, group: flat}
    stages:
      mql: {promote_at: 50, demote_below: 30}
    grades: {fit: [15, 8, 0], engagement: [1000, 999, 998]}
    spam: {burst: null}
"""


@pytest.mark.parametrize("mix", [("page_viewed",), ("page_viewed", "social_shared")])
def test_the_timer_demotes_at_the_crossing_of_the_whole_score(ev, mix: tuple[str, ...]) -> None:
    """One decaying group (closed form) and two with different half-lives (bisection): the
    recycling is stamped at the first whole second the total is below the threshold (whole
    seconds keep stage-change ids the same whether the state was read back from storage)."""
    model = parse_models(MODEL).get("m")
    state = apply(None, ev("profile_updated", 0, traits=Traits(industry="software")), model=model)
    events = [ev("webinar_attended", 0.001)]
    events += [ev(kind, 0.01 * (i + 1)) for i, kind in enumerate(mix * 2)]
    lead = state.state
    for item in events:
        lead = apply(lead, item, model=model).state
    assert lead is not None and lead.stage is Stage.MQL
    crossing = next_crossing(lead)
    assert crossing is not None
    assert crossing.microsecond == 0
    assert (
        score_at(lead, crossing).total < 30 <= score_at(lead, crossing - timedelta(seconds=1)).total
    )
    step = advance(lead, crossing + timedelta(days=1), lead_id="lead-42")
    assert step.state is not None and step.state.stage is Stage.RECYCLED
    assert step.outputs[0].occurred_at == crossing  # type: ignore[union-attr]
    assert next_crossing(step.state) is None  # nothing left to cross (grades are out of reach)
