"""Account-based scoring: leads roll up to the accounts (companies) they belong to.

A lead names its account through its link (`stream.scoring.accountlink`). What it brings to
the account is a `Member`, computed from its state alone (`member_of`): its engagement under the
account section's model (per decay rate, `(S, T)` with one `T`: the decay is linear, so the
account's engagement is exactly the sum of its members'), its fit, its buying-group roles (from
the job title), its lead stage, its firmographics and the time of its latest action.

An `AccountState` keeps its members as they were last reported, so every value of the account
is a function of its current members: a member that joins, changes, leaves, is merged into
another or is erased is added or removed exactly, and the state after any sequence of updates
equals the state built from the final members alone. Each update carries a version that grows
per lead (the processor uses the offset of the lead's record in the internal topic); an update
not newer than the last one applied for that lead is a replay and changes nothing.

Score = fit (firmographic rules on the latest value any member gave) + engagement (members'
decayed sum) + points of the covered roles + `contact_points` per engaged contact (a member
whose latest action is less than `engaged_within` old; at most `max_contacts`).

Stages: `target → engaged → mqa` by score with hysteresis (promoted at `promote_at` when enough
roles and engaged contacts, demoted below `demote_below`); `opportunity` and `customer` while a
member's lead stage is one (they win over the score). Between updates the score only falls
(decay, contacts leaving the window), so when it crosses a demotion threshold is known in
advance (`next_crossing`); `advance` makes the demotion at that time, as the timer does for
leads. Like the leads', time is event time: the account is as of its latest member update.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from schemas.events import Traits
from schemas.outputs import AccountScoreUpdated, AccountStageChanged
from schemas.stages import ACCOUNT_STAGE_RANK, AccountStage, Stage
from stream.scoring import decay
from stream.scoring.compiled import MISSING, FitRuleC, compile_fit_rule
from stream.scoring.engine import to_datetime
from stream.scoring.spec import AccountLevelSpec, AccountSpec, ModelSet
from stream.scoring.state import LeadState, StateFormatError

__all__ = [
    "AccountOutput",
    "AccountRules",
    "AccountState",
    "AccountTransition",
    "AccountView",
    "Member",
    "MemberUpdate",
    "advance_account",
    "apply_members",
    "member_of",
    "member_updates",
    "next_account_crossing",
    "rules_of",
]

AccountOutput = AccountScoreUpdated | AccountStageChanged
PRUNE_BELOW = 1e-9
"""Decayed engagement below this many points is left out of a member (as in lead states)."""
MAX_LEAVERS = 256
"""Versions of members that left, kept per account so that a replayed update is recognised."""
_MAX_STEPS = 8
_FIT_CACHE = 4096
_SCORED = (AccountStage.TARGET, AccountStage.ENGAGED, AccountStage.MQA)
_LEVEL = {stage: i for i, stage in enumerate(_SCORED)}
_STAGE = {stage.value: stage for stage in AccountStage}
_LEAD_STAGE = {stage.value: stage for stage in Stage}


def _short(value: float) -> float:
    """12 significant digits, as lead states store engagement."""
    return float(f"{value:.12g}") + 0.0


def _round(value: float) -> float:
    return round(value, 4) + 0.0


class AccountRules:
    """An account section compiled."""

    def __init__(self, spec: AccountSpec) -> None:
        import re  # noqa: PLC0415 - compiled once per model file

        self.spec = spec
        self.model_id = spec.model
        self.fit_rules: tuple[FitRuleC, ...] = tuple(compile_fit_rule(rule) for rule in spec.fit)
        self.roles = tuple(
            (role.id, re.compile(role.regex, re.IGNORECASE), role.points) for role in spec.roles
        )
        self.levels: tuple[AccountLevelSpec, AccountLevelSpec] = (
            spec.stages.engaged,
            spec.stages.mqa,
        )
        self._fits: dict[tuple[Any, ...], float] = {}
        """Account fit by firmographic values (the same few values recur)."""

    def roles_of(self, title: str | None) -> tuple[str, ...]:
        if not title:
            return ()
        return tuple(role for role, regex, _ in self.roles if regex.search(title))

    def fit(self, firmo: Mapping[str, object], year: int) -> float:
        if not firmo or not self.fit_rules:
            return 0.0
        key = (year, *sorted(firmo.items()))
        known = self._fits.get(key)
        if known is not None:
            return known
        traits = Traits.model_validate(dict(firmo))
        total = 0.0
        for rule in self.fit_rules:
            value = rule.get(traits, year)
            if value is not MISSING:
                total += rule.score(value)
        if len(self._fits) >= _FIT_CACHE:
            self._fits.clear()
        self._fits[key] = total
        return total


_RULES_CACHE: dict[int, AccountRules] = {}


def rules_of(models: ModelSet) -> AccountRules:
    """The compiled account section of `models` (which must have one)."""
    spec = models.accounts
    assert spec is not None
    rules = _RULES_CACHE.get(id(spec))
    if rules is None or rules.spec is not spec:
        rules = _RULES_CACHE[id(spec)] = AccountRules(spec)
    return rules


@dataclass(frozen=True, slots=True)
class Member:
    """What one lead brings to its account, as of `at` (the lead's latest event time)."""

    at: float
    terms: tuple[tuple[float, float], ...] = ()
    """`(decay rate, points)`: the lead's decaying engagement per rate, as of `at`."""
    steady: float = 0.0
    """Engagement points that do not decay."""
    fit: float = 0.0
    """The lead's own fit points (for the strongest member)."""
    active: float | None = None
    roles: tuple[str, ...] = ()
    stage: Stage = Stage.LEAD
    firmo: tuple[tuple[str, str | float, float], ...] = ()

    def engagement_at(self, now: float) -> float:
        return self.steady + math.fsum(s * math.exp(-k * (now - self.at)) for k, s in self.terms)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.at, "g": self.stage.value}
        if self.terms:
            out["e"] = [[k, s] for k, s in self.terms]
        if self.steady:
            out["c"] = self.steady
        if self.fit:
            out["f"] = self.fit
        if self.active is not None:
            out["y"] = self.active
        if self.roles:
            out["r"] = list(self.roles)
        if self.firmo:
            out["p"] = [list(item) for item in self.firmo]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Member:
        """A contribution read back (`StateFormatError` when it cannot be)."""
        try:
            return cls(
                at=float(data["t"]),
                terms=tuple((float(k), float(s)) for k, s in data.get("e", ())),
                steady=float(data.get("c", 0.0)),
                fit=float(data.get("f", 0.0)),
                active=float(data["y"]) if "y" in data else None,
                roles=tuple(str(r) for r in data.get("r", ())),
                stage=_LEAD_STAGE[data["g"]],
                firmo=tuple((str(n), v, float(t)) for n, v, t in data.get("p", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFormatError(f"unreadable account member: {exc!r}") from exc


def member_of(state: LeadState | None, models: ModelSet) -> tuple[str, Member] | None:
    """The lead's account and what it brings to it, or `None` (no account section, no account
    key, or no state). The result is the same for a lead state and its stored form."""
    if state is None or models.accounts is None or state.account is None:
        return None
    link = state.account
    key = link.key
    if key is None:
        return None
    rules = rules_of(models)
    model_state = state.models.get(rules.model_id)
    times = [t for t in (link.active,) if t is not None]
    times += [item[1] for item in (link.explicit, link.domain, link.title) if item is not None]
    times += [t for _, _, t in link.firmo]
    roles = rules.roles_of(link.title[0] if link.title is not None else None)
    if model_state is None:
        return key, Member(
            at=max(times) if times else 0.0, active=link.active, roles=roles, firmo=link.firmo
        )
    a = model_state.as_of
    rates = model_state.c.rates
    per_rate: dict[float, list[float]] = {}
    for rule_id, (s, t) in model_state.eng.items():
        rate = rates[rule_id]
        value = s * math.exp(-rate * (a - t)) if rate else s
        if value == 0.0 or (rate and abs(value) < PRUNE_BELOW):
            continue
        per_rate.setdefault(rate, []).append(_short(value))
    terms = tuple(sorted((k, _short(math.fsum(v))) for k, v in per_rate.items() if k))
    return key, Member(
        at=a,
        terms=terms,
        steady=_short(math.fsum(per_rate.get(0.0, ()))),
        fit=model_state.fit_total + 0.0,
        active=link.active,
        roles=roles,
        stage=model_state.stage,
        firmo=link.firmo,
    )


class MemberUpdate(NamedTuple):
    """A lead's contribution to an account changed: `member` (`None`: the lead left)."""

    lead_id: str
    member: Member | None
    version: int
    """Grows with every update of this lead (an update not newer than the last is a replay)."""
    at: float
    """Event time of the change."""


class AccountView(NamedTuple):
    """An account's score and what it is made of, at a time."""

    score: float
    fit: float
    engagement: float
    role_points: float
    contact_points: float
    roles: tuple[str, ...]
    missing_roles: tuple[str, ...]
    engaged: int
    strongest: str | None
    strongest_score: float | None


class AccountState:
    """One account: its members as last reported, its stage and what it last published."""

    __slots__ = ("as_of", "emitted", "leavers", "members", "revision", "stage", "versions")

    def __init__(
        self,
        *,
        as_of: float,
        stage: AccountStage = AccountStage.TARGET,
        members: dict[str, Member] | None = None,
        versions: dict[str, int] | None = None,
        leavers: dict[str, int] | None = None,
        revision: int = 0,
        emitted: tuple[Any, ...] | None = None,
    ) -> None:
        self.as_of = as_of
        self.stage = stage
        self.members: dict[str, Member] = members if members is not None else {}
        self.versions: dict[str, int] = versions if versions is not None else {}
        """The last applied version of each member."""
        self.leavers: dict[str, int] = leavers if leavers is not None else {}
        """The last applied version of leads that left (the latest `MAX_LEAVERS`)."""
        self.revision = revision
        self.emitted = emitted
        """What the last published score showed: `(score, stage, members, engaged, roles,
        strongest)`."""

    def copy(self) -> AccountState:
        return AccountState(
            as_of=self.as_of,
            stage=self.stage,
            members=dict(self.members),
            versions=dict(self.versions),
            leavers=dict(self.leavers),
            revision=self.revision,
            emitted=self.emitted,
        )

    def __repr__(self) -> str:
        return f"AccountState(stage={self.stage.value!r}, members={sorted(self.members)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccountState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def version_of(self, lead_id: str) -> int | None:
        version = self.versions.get(lead_id)
        return self.leavers.get(lead_id) if version is None else version

    def view(self, rules: AccountRules, now: float | None = None) -> AccountView:
        """The score and its parts at `now` (default: the state's time)."""
        at = self.as_of if now is None else max(now, self.as_of)
        spec = rules.spec
        firmo: dict[str, tuple[float, str, str | float]] = {}
        for lead_id, member in self.members.items():
            for name, value, t in member.firmo:
                if name not in firmo or (t, lead_id) > firmo[name][:2]:
                    firmo[name] = (t, lead_id, value)
        fit = rules.fit({n: v for n, (_, _, v) in firmo.items()}, to_datetime(at).year)
        engagement = 0.0
        covered: set[str] = set()
        engaged = 0
        strongest: tuple[float, str] | None = None
        parts: list[float] = []
        for lead_id, member in self.members.items():
            value = member.engagement_at(at)
            parts.append(value)
            covered.update(member.roles)
            if member.active is not None and member.active + spec.engaged_within > at:
                engaged += 1
            total = member.fit + value
            if strongest is None or (total, lead_id) > strongest:
                strongest = (total, lead_id)
        engagement = math.fsum(parts)
        role_points = math.fsum(points for role, _, points in rules.roles if role in covered)
        contact_points = spec.contact_points * min(engaged, spec.max_contacts)
        ordered = tuple(role for role, _, _ in rules.roles if role in covered)
        return AccountView(
            score=fit + engagement + role_points + contact_points,
            fit=fit,
            engagement=engagement,
            role_points=role_points,
            contact_points=contact_points,
            roles=ordered,
            missing_roles=tuple(role for role, _, _ in rules.roles if role not in covered),
            engaged=engaged,
            strongest=strongest[1] if strongest is not None else None,
            strongest_score=strongest[0] if strongest is not None else None,
        )

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": 1, "a": self.as_of, "s": self.stage.value}
        if self.members:
            out["m"] = {
                lead_id: {**member.to_dict(), "n": self.versions[lead_id]}
                for lead_id, member in sorted(self.members.items())
            }
        if self.leavers:
            out["x"] = dict(self.leavers)
        if self.revision:
            out["n"] = self.revision
        if self.emitted is not None:
            score, stage, members, engaged, roles, strongest = self.emitted
            out["o"] = [score, stage, members, engaged, list(roles), strongest]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountState:
        try:
            if data.get("v") != 1:
                raise ValueError(f"unknown account-state format {data.get('v')!r}")
            members = {lead: Member.from_dict(m) for lead, m in data.get("m", {}).items()}
            versions = {lead: int(m["n"]) for lead, m in data.get("m", {}).items()}
            emitted = data.get("o")
            return cls(
                as_of=float(data["a"]),
                stage=_STAGE[data["s"]],
                members=members,
                versions=versions,
                leavers={str(k): int(v) for k, v in data.get("x", {}).items()},
                revision=int(data.get("n", 0)),
                emitted=(
                    float(emitted[0]),
                    str(emitted[1]),
                    int(emitted[2]),
                    int(emitted[3]),
                    tuple(emitted[4]),
                    emitted[5],
                )
                if emitted is not None
                else None,
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise StateFormatError(f"unreadable account state: {exc!r}") from exc


# ----------------------------------------------------------------------------- stages


def _floor(state: AccountState) -> AccountStage | None:
    """The stage the members' CRM stages hold the account at, if any."""
    floor: AccountStage | None = None
    for member in state.members.values():
        if member.stage in (Stage.CUSTOMER, Stage.EVANGELIST):
            return AccountStage.CUSTOMER
        if member.stage is Stage.OPPORTUNITY:
            floor = AccountStage.OPPORTUNITY
    return floor


def _decide(
    state: AccountState, rules: AccountRules, view: AccountView
) -> tuple[AccountStage, str]:
    """The stage the account should be at, and why."""
    score = view.score
    levels = rules.levels
    names = ("engaged", "mqa")
    if state.stage in _LEVEL:
        level = _LEVEL[state.stage]
        reason = ""
    else:  # leaving a sales stage: the score decides from the top, as if it had stayed there
        level = len(levels)
        reason = "no member in a sales stage"
    promoted = level
    for i, spec in enumerate(levels, start=1):
        if (
            i > level
            and score >= spec.promote_at
            and len(view.roles) >= spec.min_roles
            and view.engaged >= spec.min_contacts
        ):
            promoted = i
    if promoted > level:
        spec = levels[promoted - 1]
        level = promoted
        reason = f"score {score:.2f} >= {names[promoted - 1]} threshold {spec.promote_at:g}"
        if spec.min_roles or spec.min_contacts:
            reason += f" with {len(view.roles)} roles and {view.engaged} engaged contacts"
    else:
        while level > 0 and score < levels[level - 1].demote_below:
            reason = (
                f"score {score:.2f} < {names[level - 1]} demotion threshold "
                f"{levels[level - 1].demote_below:g}"
            )
            level -= 1
    stage = _SCORED[level]
    floor = _floor(state)
    if floor is not None and ACCOUNT_STAGE_RANK[floor] > ACCOUNT_STAGE_RANK[stage]:
        return floor, f"a member is at the {floor.value} stage"
    return stage, reason or "score"


def _move(
    state: AccountState,
    rules: AccountRules,
    view: AccountView,
    *,
    account_id: str,
    at: float,
    trigger: str | None,
    out: list[AccountOutput],
) -> bool:
    to_stage, reason = _decide(state, rules, view)
    if to_stage is state.stage:
        return False
    out.append(
        AccountStageChanged.build(
            account_id=account_id,
            model=rules.model_id,
            from_stage=state.stage,
            to_stage=to_stage,
            reason=reason[:256],
            triggering_lead_id=trigger,
            score=_round(view.score),
            occurred_at=to_datetime(at),
        )
    )
    state.stage = to_stage
    return True


Shown = tuple[Any, ...]
"""A published score's values: `(score, stage, members, engaged, roles, strongest)`, and what
else its record needs."""


def _publish(state: AccountState, view: AccountView) -> Shown | None:
    """What to publish if a consumer would see a difference (else `None`); counts the revision."""
    shown = (
        _round(view.score),
        state.stage.value,
        len(state.members),
        view.engaged,
        view.roles,
        view.strongest,
    )
    last = state.emitted
    if last is not None and last[1:] == shown[1:] and abs(last[0] - shown[0]) < 0.5:
        return None
    state.revision += 1
    state.emitted = shown
    return (view, state.stage, len(state.members), state.as_of, state.revision)


def _score_record(rules: AccountRules, account_id: str, published: Shown) -> AccountScoreUpdated:
    view, stage, members, as_of, revision = published
    return AccountScoreUpdated.model_construct(
        account_id=account_id,
        model=rules.model_id,
        score=_round(view.score),
        fit=_round(view.fit),
        engagement=_round(view.engagement),
        role_points=_round(view.role_points),
        contact_points=_round(view.contact_points),
        stage=stage,
        members=members,
        engaged_contacts=view.engaged,
        roles=view.roles,
        missing_roles=view.missing_roles,
        strongest_member=view.strongest,
        strongest_member_score=None
        if view.strongest_score is None
        else _round(view.strongest_score),
        as_of=to_datetime(as_of),
        revision=revision,
        type="account_score_updated",
    )


# ----------------------------------------------------------------------------- decay


def _crossing(state: AccountState, rules: AccountRules) -> float | None:
    """When the score will first be below the current stage's demotion threshold (decay and
    contacts leaving the window), as a whole second; `None`: never, or not a scored stage."""
    if state.stage not in _LEVEL or _LEVEL[state.stage] == 0 or _floor(state) is not None:
        return None
    threshold = rules.levels[_LEVEL[state.stage] - 1].demote_below
    spec = rules.spec
    start = state.as_of
    view = state.view(rules, start)
    terms = [(s, m.at, k) for m in state.members.values() for k, s in m.terms if s > 0.0]
    negative = math.fsum(
        s * math.exp(-k * (start - m.at))
        for m in state.members.values()
        for k, s in m.terms
        if s < 0
    )
    steady = view.fit + view.role_points + negative
    steady += math.fsum(m.steady for m in state.members.values())
    expiries = sorted(
        m.active + spec.engaged_within
        for m in state.members.values()
        if m.active is not None and m.active + spec.engaged_within > start
    )
    engaged = len(expiries)
    segment = start
    for boundary in [*expiries, math.inf]:
        constant = steady + spec.contact_points * min(engaged, spec.max_contacts)
        # the first whole second below, which is the microsecond search's second rounded up
        # even when that microsecond falls just before the boundary: the next segment's sum,
        # as low or lower (a contact fewer), is then below at the boundary, whose second it is
        found = decay.first_second_below(terms, constant, threshold, segment)
        if found is not None and found < boundary:
            return found
        segment = boundary
        engaged -= 1
    return None


def next_account_crossing(state: AccountState, models: ModelSet) -> datetime | None:
    """When decay will next demote the account (`None`: never, as things stand)."""
    crossing = _crossing(state, rules_of(models))
    return to_datetime(crossing) if crossing is not None else None


def _catch_up(
    state: AccountState,
    rules: AccountRules,
    until: float,
    account_id: str,
    out: list[AccountOutput],
) -> bool:
    """Demotions decay made up to `until`, each at its time."""
    moved = False
    for _ in range(_MAX_STEPS):
        level = _LEVEL.get(state.stage, 0)
        if not level or state.view(rules, until).score >= rules.levels[level - 1].demote_below:
            break  # the score only falls between updates: nothing crossed by `until`
        crossing = _crossing(state, rules)
        if crossing is None or crossing > until:
            break
        state.as_of = max(state.as_of, crossing)
        view = state.view(rules)
        if not _move(state, rules, view, account_id=account_id, at=crossing, trigger=None, out=out):
            break
        moved = True
    return moved


class AccountTransition(NamedTuple):
    state: AccountState | None
    outputs: tuple[AccountOutput, ...] = ()


def apply_members(
    state: AccountState | None,
    updates: Iterable[MemberUpdate],
    *,
    account_id: str,
    models: ModelSet,
) -> AccountTransition:
    """Apply member updates to an account in order (`state` is not changed).

    Each update is applied at its time (demotions decay made before it first); every stage
    change is published, and of the score updates (one when the score, stage, members, engaged
    contacts, roles or strongest member changed) only the last, after the others: it is the
    one applying the updates one by one would end with, revision included. Replayed updates
    change nothing.
    """
    rules = rules_of(models)
    st = state.copy() if state is not None else None
    out: list[AccountOutput] = []
    changed = False
    pending: Shown | None = None
    for update in updates:
        if st is not None:
            last = st.version_of(update.lead_id)
            if last is not None and update.version <= last:
                continue
        if update.member is None and (st is None or update.lead_id not in st.members):
            continue  # leaving an account it is not a member of
        if st is None:
            st = AccountState(as_of=update.at)
            out.append(
                AccountStageChanged.build(
                    account_id=account_id,
                    model=rules.model_id,
                    from_stage=None,
                    to_stage=AccountStage.TARGET,
                    reason="new account",
                    triggering_lead_id=update.lead_id,
                    score=0.0,
                    occurred_at=to_datetime(update.at),
                )
            )
        at = max(st.as_of, update.at)
        _catch_up(st, rules, at, account_id, out)
        if update.member is None:
            st.members.pop(update.lead_id, None)
            st.versions.pop(update.lead_id, None)
            st.leavers[update.lead_id] = update.version
            while len(st.leavers) > MAX_LEAVERS:
                del st.leavers[next(iter(st.leavers))]
        else:
            st.members[update.lead_id] = update.member
            st.versions[update.lead_id] = update.version
            st.leavers.pop(update.lead_id, None)
        st.as_of = at
        view = st.view(rules)
        _move(st, rules, view, account_id=account_id, at=at, trigger=update.lead_id, out=out)
        pending = _publish(st, view) or pending
        changed = True
    if not changed or st is None:
        return AccountTransition(state, tuple(out))
    if pending is not None:
        out.append(_score_record(rules, account_id, pending))
    return AccountTransition(st, tuple(out))


def advance_account(
    state: AccountState, now: datetime, *, account_id: str, models: ModelSet
) -> AccountTransition:
    """What decay did to the account by `now`: demotions at their crossing times and the
    score then (the state is returned as is when nothing crossed)."""
    rules = rules_of(models)
    limit = now.timestamp()
    crossing = _crossing(state, rules)
    if crossing is None or crossing > limit:
        return AccountTransition(state)
    st = state.copy()
    out: list[AccountOutput] = []
    if not _catch_up(st, rules, limit, account_id, out):
        return AccountTransition(state)
    published = _publish(st, st.view(rules))
    if published is not None:
        out.append(_score_record(rules, account_id, published))
    return AccountTransition(st, tuple(out))


def member_updates(
    lead_id: str,
    before: tuple[str, Member] | None,
    after: tuple[str, Member] | None,
    *,
    version: int,
    at: float,
) -> list[tuple[str, MemberUpdate]]:
    """The updates a lead's change sends, as `(account id, update)`: a leave to its old
    account when it moved or lost its key, its new contribution when it changed."""
    out: list[tuple[str, MemberUpdate]] = []
    if before is not None and (after is None or after[0] != before[0]):
        out.append((before[0], MemberUpdate(lead_id, None, version, at)))
    if after is not None and after != before:
        out.append((after[0], MemberUpdate(lead_id, after[1], version, at)))
    return out
