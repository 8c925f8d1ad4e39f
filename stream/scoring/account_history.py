"""Account scores from a history of events, through the pure core, as the processor would.

Events are taken in the order given (the processor's order: a lead's events in the order its
partition recorded them). After each event the lead's account contribution is recomputed from
its stored state (`stream.scoring.accounts.member_of`) and, when it changed, applied to its
account at once: a lead that moved leaves its old account first. A merge folds the absorbed
lead's state into the survivor's (the absorbed lead leaves its account); an erasure removes the
lead from its account. Anonymous events count toward the lead their visitor is identified as
(the processor holds them until then and scores them at their own times).

This is the offline reference of the account path (`leadstream replay`, the simulator's report
and the reference-equality tests use it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.events import EventBase, Identify, LeadErased, LeadsMerged
from stream.scoring.accounts import (
    AccountOutput,
    AccountState,
    Member,
    MemberUpdate,
    advance_account,
    apply_members,
    member_of,
    member_updates,
)
from stream.scoring.engine import advance_all, apply_all, merge_lead_states
from stream.scoring.spec import ModelSet
from stream.scoring.state import LeadState

__all__ = ["AccountsHistory", "replay_members", "score_accounts"]


@dataclass
class AccountsHistory:
    """Every account's state after a history, the account records published on the way (in
    order), and the leads' final states."""

    accounts: dict[str, AccountState] = field(default_factory=dict)
    outputs: list[tuple[str, AccountOutput]] = field(default_factory=list)
    """`(account id, record)` in the order they were published."""
    leads: dict[str, LeadState] = field(default_factory=dict)


def stored(state: LeadState, models: ModelSet) -> LeadState:
    """`state` as the processor reads it back from its table (its stored form)."""
    return LeadState.from_dict(state.to_dict(), models)


class _Run:
    def __init__(self, models: ModelSet) -> None:
        self.models = models
        self.result = AccountsHistory()
        self.members: dict[str, tuple[str, Member] | None] = {}
        self.versions: dict[str, int] = {}
        self.aliases: dict[str, str] = {}

    def resolve(self, key: str) -> str:
        seen = {key}
        while key in self.aliases and self.aliases[key] not in seen:
            key = self.aliases[key]
            seen.add(key)
        return key

    def contribute(self, lead_id: str, state: LeadState | None, at: float) -> None:
        """Send the lead's changed contribution to its account(s)."""
        after = member_of(state, self.models)
        before = self.members.get(lead_id)
        self.members[lead_id] = after
        version = self.versions[lead_id] = self.versions.get(lead_id, 0) + 1
        for account_id, update in member_updates(lead_id, before, after, version=version, at=at):
            step = apply_members(
                self.result.accounts.get(account_id),
                [update],
                account_id=account_id,
                models=self.models,
            )
            if step.state is not None:
                self.result.accounts[account_id] = AccountState.from_dict(step.state.to_dict())
            self.result.outputs.extend((account_id, out) for out in step.outputs)

    def event(self, event: EventBase) -> None:
        leads = self.result.leads
        if event.lead_id is None:
            if event.anonymous_id is None or event.anonymous_id not in self.aliases:
                return  # never identified: held, never scored
            lead_id = self.resolve(event.anonymous_id)
        else:
            lead_id = self.resolve(event.lead_id)
        if isinstance(event, Identify) and event.anonymous_id is not None:
            self.aliases.setdefault(event.anonymous_id, lead_id)
        t = event.occurred_at.timestamp()
        if isinstance(event, LeadErased):
            leads.pop(lead_id, None)
            self.contribute(lead_id, None, t)
            return
        step = apply_all(leads.get(lead_id), event, models=self.models, lead_id=lead_id)
        state = stored(step.state, self.models) if step.state is not None else leads.get(lead_id)
        if isinstance(event, LeadsMerged):
            absorbed_id = self.resolve(event.merged_lead_id)
            absorbed = leads.pop(absorbed_id, None)
            self.aliases[absorbed_id] = lead_id
            self.contribute(absorbed_id, None, t)
            if absorbed is not None:
                merged = (
                    absorbed if state is None else merge_lead_states(state, absorbed, self.models)
                )
                caught_up = advance_all(merged, event.occurred_at, lead_id=lead_id)
                state = stored(caught_up.state or merged, self.models)
        if state is not None:
            leads[lead_id] = state
        self.contribute(lead_id, state, t)


def score_accounts(
    events: Iterable[EventBase], models: ModelSet, *, until: datetime | None = None
) -> AccountsHistory:
    """Score `events` in the order given and roll the leads up to their accounts; with `until`,
    decay the accounts to then (as the timer would, publishing the demotions)."""
    listed = list(events)
    run = _Run(models)
    for event in listed:
        if isinstance(event, Identify) and event.lead_id and event.anonymous_id:
            run.aliases.setdefault(event.anonymous_id, event.lead_id)
    for event in listed:
        run.event(event)
    result = run.result
    if until is not None:
        for account_id, state in list(result.accounts.items()):
            step = advance_account(state, until, account_id=account_id, models=models)
            if step.state is not None:
                result.accounts[account_id] = step.state
            result.outputs.extend((account_id, out) for out in step.outputs)
    return result


def replay_members(
    recorded: Iterable[tuple[str, str | None, Member | None, int, datetime]], models: ModelSet
) -> AccountsHistory:
    """The account records a worker publishes for what its accounts' partitions recorded:
    `(account id, lead id, member or None, version, time)` member updates in partition order
    (copies included: a version applied already changes nothing, for the worker as here), and
    timer ticks as `(account id, None, None, 0, time)`."""
    result = AccountsHistory()
    for account_id, lead_id, member, version, at in recorded:
        state = result.accounts.get(account_id)
        if lead_id is None:
            if state is None:
                continue
            step = advance_account(state, at, account_id=account_id, models=models)
        else:
            step = apply_members(
                state,
                [MemberUpdate(lead_id, member, version, at.timestamp())],
                account_id=account_id,
                models=models,
            )
        if step.state is not None:
            result.accounts[account_id] = AccountState.from_dict(step.state.to_dict())
        result.outputs.extend((account_id, out) for out in step.outputs)
    return result
