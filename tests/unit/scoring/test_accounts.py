"""Account-based scoring in the pure core: account keys, member contributions, the account fold,
its stages and decay, and the offline reference.

Properties (hypothesis):

- An account's state after any sequence of joins, changes and leaves of its members, in any
  order, equals the account built from its final members alone (engagement kept exactly: the
  members' decayed sums add up, and a member removed takes exactly its part with it).
- A replayed update (a version already applied) changes nothing.
- A lead's contribution is the same from its state in memory and from its stored form.
- Merging two leads gives one member whose engagement is the sum of both.
- Decay demotes an account exactly at the crossing time the core predicts.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import EventBase, Traits
from schemas.examples import make_event
from schemas.outputs import AccountScoreUpdated, AccountStageChanged
from schemas.stages import AccountStage, Stage
from stream.model_files import load_default_models
from stream.scoring import (
    LeadState,
    ModelFileError,
    StateFormatError,
    apply_all,
    decay,
    merge_lead_states,
    parse_models,
)
from stream.scoring.account_history import score_accounts
from stream.scoring.accounts import (
    AccountState,
    Member,
    MemberUpdate,
    _crossing,
    advance_account,
    apply_members,
    member_of,
    member_updates,
    next_account_crossing,
    rules_of,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
MODELS = load_default_models()
RATE = math.log(2) / (30 * 86_400)
_ids = itertools.count()


def event(kind: str, lead: str, hours: float = 0.0, **fields: Any) -> EventBase:
    fields.setdefault("event_id", f"acct-{next(_ids)}")
    fields.setdefault("occurred_at", T0 + timedelta(hours=hours))
    if kind == "page_viewed":
        fields.setdefault("url", "https://acme.example/pricing")
    if kind in {"page_viewed", "form_submitted"}:
        fields.setdefault("anonymous_id", None)
    return make_event(kind, lead_id=lead, **fields)


def profile(lead: str, hours: float = 0.0, **traits: Any) -> EventBase:
    return event("profile_updated", lead, hours, traits=Traits(**traits))


def fold(events: list[EventBase], state: LeadState | None = None) -> LeadState | None:
    for item in events:
        state = apply_all(state, item, models=MODELS, lead_id=item.lead_id).state
    return state


# ------------------------------------------------------------------------- account keys


def test_the_account_is_the_business_email_domain() -> None:
    state = fold([profile("a", email="ann@Acme-Corp.com")])
    assert state is not None and state.account is not None
    assert state.account.key == "acme-corp.com"


@pytest.mark.parametrize(
    "email", ["ann@gmail.com", "ann@mailinator.com", "ann@example.com", "ann@yahoo.com"]
)
def test_free_mail_disposable_and_invalid_domains_name_no_account(email: str) -> None:
    state = fold([profile("a", email=email)])
    assert member_of(state, MODELS) is None


def test_an_explicit_account_id_wins_over_the_domain() -> None:
    state = fold([profile("a", email="ann@acme-corp.com"), profile("a", 1, account_id="crm-7")])
    assert member_of(state, MODELS) is not None
    assert member_of(state, MODELS)[0] == "crm-7"  # type: ignore[index]


def test_crm_feedback_names_the_account() -> None:
    state = fold(
        [
            profile("a", email="ann@acme-corp.com"),
            event("sales_accepted", "a", 1, account_id="crm-9"),
        ]
    )
    assert member_of(state, MODELS)[0] == "crm-9"  # type: ignore[index]


def test_a_newer_personal_address_leaves_the_company_account() -> None:
    state = fold([profile("a", email="ann@acme-corp.com"), profile("a", 2, email="ann@gmail.com")])
    assert member_of(state, MODELS) is None


def test_an_older_profile_arriving_late_does_not_win() -> None:
    state = fold([profile("a", 5, email="ann@globex.com"), profile("a", 1, email="ann@acme.io")])
    assert member_of(state, MODELS)[0] == "globex.com"  # type: ignore[index]


def test_a_lead_that_changes_account_leaves_the_old_one() -> None:
    before = member_of(fold([profile("a", email="ann@acme-corp.com")]), MODELS)
    after = member_of(fold([profile("a", email="ann@globex.com")]), MODELS)
    updates = member_updates("a", before, after, version=2, at=0.0)
    assert [(account, u.member is None) for account, u in updates] == [
        ("acme-corp.com", True),
        ("globex.com", False),
    ]


def test_no_accounts_section_keeps_no_link() -> None:
    models = parse_models(
        "format: 1\nmodels:\n  - id: m\n    version: '1'\n    decay: {web: 30d}\n"
        "    grades: {fit: [3, 2, 1], engagement: [3, 2, 1]}\n"
    )
    state = apply_all(None, profile("a", email="ann@acme-corp.com"), models=models).state
    assert state is not None and state.account is None and "ac" not in state.to_dict()


def test_an_accounts_section_naming_an_unknown_model_is_rejected() -> None:
    with pytest.raises(ModelFileError, match=r"accounts\.model"):
        parse_models(
            "format: 1\nmodels:\n  - id: m\n    version: '1'\n    decay: {web: 30d}\n"
            "    grades: {fit: [3, 2, 1], engagement: [3, 2, 1]}\n"
            "accounts:\n  model: nope\n  stages:\n"
            "    engaged: {promote_at: 10, demote_below: 5}\n"
            "    mqa: {promote_at: 20, demote_below: 15}\n"
        )


def test_account_fit_rules_test_firmographics_only() -> None:
    with pytest.raises(ModelFileError, match="not firmographic"):
        parse_models(
            "format: 1\nmodels:\n  - id: m\n    version: '1'\n    decay: {web: 30d}\n"
            "    grades: {fit: [3, 2, 1], engagement: [3, 2, 1]}\n"
            "accounts:\n  model: m\n  fit:\n"
            "    - {id: x, field: job_title, regex: ceo, points: 1}\n"
            "  stages:\n    engaged: {promote_at: 10, demote_below: 5}\n"
            "    mqa: {promote_at: 20, demote_below: 15}\n"
        )


# ----------------------------------------------------------------------- the account fold

members = st.builds(
    Member,
    at=st.integers(0, 10**6).map(float),
    terms=st.lists(st.tuples(st.just(RATE), st.floats(0, 500, allow_nan=False)), max_size=1).map(
        tuple
    ),
    steady=st.floats(-50, 50, allow_nan=False),
    fit=st.floats(-20, 20, allow_nan=False),
    active=st.one_of(st.none(), st.integers(0, 10**6).map(float)),
    roles=st.sampled_from([(), ("decision_maker",), ("champion", "user")]),
    stage=st.sampled_from([Stage.LEAD, Stage.MQL, Stage.OPPORTUNITY]),
    firmo=st.sampled_from([(), (("industry", "software", 1.0),), (("company_size", 500, 2.0),)]),
)
leads = st.sampled_from(["l1", "l2", "l3", "l4"])
operations = st.lists(st.tuples(leads, st.one_of(st.none(), members)), min_size=1, max_size=25)


def run(updates: list[MemberUpdate], state: AccountState | None = None) -> AccountState | None:
    return apply_members(state, updates, account_id="acme", models=MODELS).state


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(operations)
def test_members_are_added_and_removed_exactly(ops: list[tuple[str, Member | None]]) -> None:
    """Whatever joined, changed and left on the way, the account equals the one built from its
    final members alone."""
    updates = [MemberUpdate(lead, m, v, float(v)) for v, (lead, m) in enumerate(ops, start=1)]
    state = run(updates)
    final: dict[str, tuple[int, Member]] = {}
    for update in updates:
        if update.member is None:
            final.pop(update.lead_id, None)
        else:
            final[update.lead_id] = (update.version, update.member)
    if state is None:
        assert not final
        return
    at = state.as_of
    direct = run(
        [MemberUpdate(lead, m, v, at) for lead, (v, m) in sorted(final.items(), reverse=True)]
    )
    rules = rules_of(MODELS)
    if direct is None:
        assert not state.members
        return
    assert state.to_dict()["m"] == direct.to_dict()["m"]
    assert state.view(rules, at + 86_400) == direct.view(rules, at + 86_400)
    # the engagement is the members' sum, to the last bit of a correctly rounded sum
    expected = math.fsum(m.engagement_at(at) for _, m in final.values())
    assert state.view(rules).engagement == expected


@settings(max_examples=60, deadline=None)
@given(operations, st.data())
def test_a_replayed_update_changes_nothing(
    ops: list[tuple[str, Member | None]], data: st.DataObject
) -> None:
    updates = [MemberUpdate(lead, m, v, float(v)) for v, (lead, m) in enumerate(ops, start=1)]
    state = run(updates)
    again = data.draw(st.lists(st.sampled_from(updates), max_size=5))
    step = apply_members(state, again, account_id="acme", models=MODELS)
    assert step.outputs == ()
    assert step.state is state


@pytest.mark.parametrize(
    "data", [{}, {"t": 1.0, "g": "nope"}, {"t": "x", "g": "lead"}, {"v": 2, "a": 1, "s": "mqa"}]
)
def test_an_unreadable_account_state_or_member_is_a_clear_error(data: dict[str, Any]) -> None:
    with pytest.raises(StateFormatError):
        Member.from_dict(data) if "v" not in data else AccountState.from_dict(data)


def test_stored_form_round_trips() -> None:
    member = Member(at=5.0, terms=((RATE, 12.5),), steady=-5, fit=3, active=4.0, roles=("user",))
    state = run([MemberUpdate("l1", member, 1, 5.0), MemberUpdate("l2", None, 1, 6.0)])
    assert state is not None
    assert AccountState.from_dict(state.to_dict()) == state


lead_events = st.lists(
    st.tuples(
        st.sampled_from(["page_viewed", "demo_requested", "webinar_attended", "profile"]),
        st.integers(0, 24 * 60),
    ),
    min_size=1,
    max_size=12,
)


def _events(lead: str, spec: list[tuple[str, int]]) -> list[EventBase]:
    out = [profile(lead, 0, email=f"{lead}@acme-corp.com", job_title="VP Sales")]
    for kind, hours in spec:
        if kind == "profile":
            out.append(profile(lead, hours, company_size=hours, industry="saas"))
        else:
            out.append(event(kind, lead, hours))
    return out


@settings(max_examples=60, deadline=None)
@given(lead_events)
def test_a_contribution_is_the_same_from_the_stored_state(spec: list[tuple[str, int]]) -> None:
    state = fold(_events("a", spec))
    assert state is not None
    stored = LeadState.from_dict(state.to_dict(), MODELS)
    assert member_of(state, MODELS) == member_of(stored, MODELS)


@settings(max_examples=40, deadline=None)
@given(lead_events, lead_events)
def test_a_merged_lead_brings_both_engagements(
    first: list[tuple[str, int]], second: list[tuple[str, int]]
) -> None:
    a, b = fold(_events("a", first)), fold(_events("b", second))
    assert a is not None and b is not None
    merged = merge_lead_states(a, b, MODELS)
    ma, mb, mm = (member_of(s, MODELS) for s in (a, b, merged))
    assert ma is not None and mb is not None and mm is not None
    now = max(ma[1].at, mb[1].at) + 3600
    expected = ma[1].engagement_at(now) + mb[1].engagement_at(now)
    assert mm[1].engagement_at(now) == pytest.approx(expected, rel=1e-9, abs=1e-9)


# ----------------------------------------------------------------------- stages and decay


def _busy_account() -> AccountState:
    history = []
    for lead, title in (("a", "VP Engineering"), ("b", "Data Engineer"), ("c", "Analyst")):
        history.append(
            profile(
                lead,
                0,
                email=f"{lead}@acme-corp.com",
                job_title=title,
                industry="saas",
                company_size=400,
            )
        )
        history += [
            event("demo_requested", lead, 1),
            event("webinar_attended", lead, 2),
            event("trial_requested", lead, 3),
        ]
    result = score_accounts(history, MODELS)
    return result.accounts["acme-corp.com"]


def test_an_engaged_buying_group_is_an_mqa() -> None:
    state = _busy_account()
    assert state.stage is AccountStage.MQA
    view = state.view(rules_of(MODELS))
    assert view.roles == ("decision_maker", "technical_evaluator", "user")
    assert view.engaged == 3
    assert view.missing_roles == ("champion",)


def test_decay_demotes_the_account_at_the_predicted_time() -> None:
    state = _busy_account()
    crossing = next_account_crossing(state, MODELS)
    assert crossing is not None
    rules = rules_of(MODELS)
    threshold = rules.levels[1].demote_below
    assert state.view(rules, crossing.timestamp()).score < threshold
    assert state.view(rules, crossing.timestamp() - 1).score >= threshold
    early = advance_account(
        state, crossing - timedelta(seconds=1), account_id="acme-corp.com", models=MODELS
    )
    assert early.state is state and early.outputs == ()
    step = advance_account(state, crossing, account_id="acme-corp.com", models=MODELS)
    changes = [o for o in step.outputs if isinstance(o, AccountStageChanged)]
    assert [(c.from_stage, c.to_stage, c.occurred_at) for c in changes] == [
        (AccountStage.MQA, AccountStage.ENGAGED, crossing)
    ]
    assert step.state is not None and step.state.stage is AccountStage.ENGAGED


def test_a_member_opportunity_holds_the_account_there() -> None:
    history = [
        profile("a", 0, email="a@initech.io"),
        event("opportunity_created", "a", 1, opportunity_id="opp-1"),
    ]
    result = score_accounts(history, MODELS, until=T0 + timedelta(days=400))
    assert result.accounts["initech.io"].stage is AccountStage.OPPORTUNITY


def test_erasing_a_member_removes_its_contribution() -> None:
    base = [
        profile("a", 0, email="a@acme-corp.com", job_title="CEO"),
        event("demo_requested", "a", 1),
        profile("b", 0, email="b@acme-corp.com", job_title="Engineer"),
        event("webinar_attended", "b", 2),
    ]
    with_erase = score_accounts([*base, event("lead_erased", "a", 3)], MODELS)
    without_a = score_accounts([e for e in base if e.lead_id != "a"], MODELS)
    erased, never = with_erase.accounts["acme-corp.com"], without_a.accounts["acme-corp.com"]
    assert sorted(erased.members) == ["b"]
    assert erased.to_dict()["m"]["b"] == {**never.to_dict()["m"]["b"], "n": erased.versions["b"]}
    rules = rules_of(MODELS)
    at = T0.timestamp() + 86_400
    assert erased.view(rules, at) == never.view(rules, at)
    last = [o for _, o in with_erase.outputs if isinstance(o, AccountScoreUpdated)][-1]
    assert last.members == 1 and last.strongest_member == "b"


def test_a_merge_moves_the_absorbed_lead_into_the_survivor() -> None:
    history = [
        profile("a", 0, email="a@acme-corp.com"),
        event("demo_requested", "a", 1),
        profile("b", 0, email="b@globex.com"),
        event("webinar_attended", "b", 2),
        event("leads_merged", "a", 3, merged_lead_id="b"),
    ]
    result = score_accounts(history, MODELS)
    assert sorted(result.accounts["acme-corp.com"].members) == ["a"]
    assert result.accounts["globex.com"].members == {}
    survivor = result.accounts["acme-corp.com"].members["a"]
    assert survivor.terms and survivor.terms[0][1] > 30  # demo + webinar


def test_every_output_is_a_valid_contract_record() -> None:
    history = [
        profile("a", 0, email="a@acme-corp.com", job_title="CTO", industry="saas"),
        event("demo_requested", "a", 1),
        profile("b", 1, email="b@acme-corp.com", job_title="Engineer"),
        event("demo_requested", "b", 2),
        event("lead_erased", "a", 3),
    ]
    result = score_accounts(history, MODELS, until=T0 + timedelta(days=200))
    assert result.outputs
    for _, record in result.outputs:
        type(record).model_validate(record.model_dump())


def test_the_accounts_section_is_described_as_tables() -> None:
    from stream.scoring.explain import describe_accounts

    assert MODELS.accounts is not None
    text = describe_accounts(MODELS.accounts)
    assert "under model b2b" in text
    assert "company_over_50   company_size > 50" in text
    assert "mqa          score >= 200 with 2 roles, 2 engaged contacts  score < 160" in text


def test_a_broken_accounts_section_names_each_problem() -> None:
    with pytest.raises(ModelFileError) as raised:
        parse_models(
            "format: 1\nmodels:\n  - id: m\n    version: '1'\n    decay: {web: 30d}\n"
            "    grades: {fit: [3, 2, 1], engagement: [3, 2, 1]}\n"
            "accounts:\n  model: m\n  roles:\n    - {id: dm, regex: '(ceo', points: 5}\n"
            "  stages:\n    engaged: {promote_at: 10, demote_below: 15}\n"
            "    mqa: {promote_at: 20, demote_below: 15}\n",
            source="bad.yaml",
        )
    text = str(raised.value)
    assert "accounts.roles[0].regex" in text and "not a valid regular expression" in text
    assert "accounts.stages.engaged" in text and "must not be above promote_at" in text


CONTACT_MODELS = parse_models(
    resources.files("stream.scoring")
    .joinpath("default_models.yaml")
    .read_text(encoding="utf-8")
    .replace("contact_points: 0 ", "contact_points: 20 ")
)
"""The default models with points per engaged contact: a member leaving the engaged window
lowers the account's score, so the crossing search runs in segments between the expiries."""


def _by_microseconds(state: AccountState) -> float | None:
    """The crossing as the microsecond search found it, unrounded: the same stretches between
    members leaving the engaged window, each searched with `first_below` (as before the
    whole-second search) and taken when it is before the stretch's end."""
    real = decay.first_second_below
    decay.first_second_below = decay.first_below
    try:
        return _crossing(state, rules_of(CONTACT_MODELS))
    finally:
        decay.first_second_below = real


def _rounded_up(exact: float | None) -> float | None:
    """The whole second the microsecond search gave: its crossing rounded up."""
    return None if exact is None else float(math.ceil(exact))


_DAY = 86_400.0
_members = st.lists(
    st.tuples(
        st.floats(0, 20 * _DAY),  # the member's latest event, after the account's start
        st.lists(
            st.tuples(
                st.sampled_from([RATE, math.log(2) / (7 * _DAY)]),
                # no subnormal points: the microsecond search (the reference) takes none
                st.one_of(st.just(0.0), st.floats(1e-6, 200), st.floats(-20, -1e-6)),
            ),
            max_size=2,
        ),
        st.floats(0, 30),  # steady points
        st.one_of(st.none(), st.floats(-40 * _DAY, 20 * _DAY)),  # last action
        st.sampled_from([(), ("decision_maker",), ("champion", "user")]),
    ),
    min_size=1,
    max_size=12,
)


def _account(members: list[Any], stage: AccountStage, as_of: float) -> AccountState:
    start = 1.7e9
    return AccountState(
        as_of=as_of,
        stage=stage,
        members={
            f"lead-{i}": Member(
                at=start + at,
                terms=tuple(terms),
                steady=steady,
                active=None if active is None else start + active,
                roles=roles,
            )
            for i, (at, terms, steady, active, roles) in enumerate(members)
        },
    )


def _found(state: AccountState) -> float | None:
    got = next_account_crossing(state, CONTACT_MODELS)
    return None if got is None else got.timestamp()


@settings(max_examples=400, deadline=None)
@given(
    _members,
    st.sampled_from([AccountStage.ENGAGED, AccountStage.MQA]),
    st.floats(0, 25 * _DAY),
    st.floats(1e-7, 0.999),
)
def test_the_account_crossing_is_the_microsecond_search_rounded_up(
    members: list[Any], stage: AccountStage, later: float, short: float
) -> None:
    """The whole-second search gives the second the microsecond search gave, to the bit, on
    random buying groups with points per engaged contact: members leaving the engaged window
    split the search into segments. Each state is tried again with one more member whose
    window ends `short` of a second after the microsecond crossing: a crossing between a
    segment's last microsecond and its boundary must give the same second, though that second
    is past the boundary."""
    as_of = 1.7e9 + later
    state = _account(members, stage, as_of)
    assert _found(state) == _rounded_up(_by_microseconds(state))
    # the members not engaged but for one more (last active at `as_of`), whose window is then
    # moved to end just after the microsecond crossing, before its second
    window = CONTACT_MODELS.accounts.engaged_within  # type: ignore[union-attr]
    joined = [(at, terms, steady, None, roles) for at, terms, steady, _, roles in members]
    joined.append((later, [], 0.0, later, ()))  # the one engaged member
    exact = _by_microseconds(_account(joined, stage, as_of))
    if exact is None or exact == math.ceil(exact) or exact <= as_of:
        return
    ends = exact + short * (math.ceil(exact) - exact)
    joined[-1] = (later, [], 0.0, ends - window - 1.7e9, ())
    edged = _account(joined, stage, as_of)
    assert _found(edged) == _rounded_up(_by_microseconds(edged))
