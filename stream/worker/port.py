"""The scoring core behind the processor's engine seam, on stored state documents.

The processor stores one JSON document per lead (``LeadState.to_dict``); this adapter reads it,
runs the pure core (``apply_all``, ``advance_all``, ``merge_lead_states``,
``next_crossing_all``) and hands back the new document, the records to publish and when decay
will next matter. Each step also hands back the decoded ``LeadState`` (``Step.live``); the
processor keeps it with the lead and passes it back with the document, which spares reading the
document again on the lead's next event (reading costs more than scoring one event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from schemas.common import ContractModel
from schemas.events import EventBase
from stream.scoring import (
    LeadState,
    ModelSet,
    advance_all,
    apply_all,
    apply_batch,
    merge_lead_states,
    next_crossing_all,
)
from stream.scoring.accounts import (
    AccountState,
    Member,
    MemberUpdate,
    advance_account,
    apply_members,
    member_of,
    next_account_crossing,
)

__all__ = ["AccountEngine", "AccountStep", "CoreEngine", "ScoringEngine", "Step"]


@dataclass(frozen=True, slots=True)
class Step:
    """What scoring one input did.

    ``state``: the new state document (``None``: unchanged); ``outputs``: the records to
    publish; ``due``: when decay will next cross a threshold for the new state (``None``: never);
    ``live``: the engine's decoded form of the lead's state after the step (opaque here), handed
    back to the engine with the document on the lead's next input.
    """

    state: dict[str, Any] | None
    outputs: Sequence[ContractModel] = ()
    due: datetime | None = None
    live: Any = None
    machine: tuple[tuple[str, int], ...] = ()
    """Per model, how many of the inputs it did not score because a machine made them."""


@dataclass(frozen=True, slots=True)
class AccountStep:
    """What applying member updates (or a tick) to an account did: ``state`` the new state
    document (``None``: unchanged), ``outputs`` the records to publish, ``due`` when decay will
    next demote the account."""

    state: dict[str, Any] | None
    outputs: Sequence[ContractModel] = ()
    due: datetime | None = None


Update = tuple[str, dict[str, Any] | None, int, datetime]
"""A member update on documents: lead id, its contribution (``None``: left), version, time."""


class AccountEngine(Protocol):
    """What the processor needs from the core to keep accounts, on JSON-able documents."""

    @property
    def accounts_enabled(self) -> bool: ...

    def account_member(self, live: Any) -> tuple[str, dict[str, Any]] | None:
        """The account and contribution of a lead (``live``: ``Step.live``), if it has one."""
        ...

    def apply_members(
        self, state: dict[str, Any] | None, updates: Sequence[Update], *, account_id: str
    ) -> AccountStep: ...

    def account_tick(
        self, state: dict[str, Any], at: datetime, *, account_id: str
    ) -> AccountStep: ...

    def account_due(self, state: dict[str, Any]) -> datetime | None: ...


class ScoringEngine(Protocol):
    """What the processor needs from the scoring core, on JSON-able state documents."""

    @property
    def model_ids(self) -> Sequence[str]: ...

    def apply(self, state: dict[str, Any] | None, event: EventBase, live: Any = None) -> Step: ...

    def apply_batch(
        self, state: dict[str, Any] | None, events: Sequence[EventBase], live: Any = None
    ) -> Step:
        """Apply one lead's events in order; only each model's latest score is published (every
        stage change is)."""
        ...

    def merge(
        self,
        state: dict[str, Any] | None,
        other: dict[str, Any],
        *,
        lead_id: str,
        event_id: str,
        at: datetime,
    ) -> Step: ...

    def tick(
        self, state: dict[str, Any], at: datetime, *, lead_id: str, live: Any = None
    ) -> Step: ...

    def next_due(self, state: dict[str, Any], live: Any = None) -> datetime | None: ...


class CoreAccounts:
    """The account half of ``CoreEngine``."""

    models: ModelSet

    @property
    def accounts_enabled(self) -> bool:
        return self.models.accounts is not None

    def account_member(self, live: Any) -> tuple[str, dict[str, Any]] | None:
        found = member_of(live if isinstance(live, LeadState) else None, self.models)
        return None if found is None else (found[0], found[1].to_dict())

    def apply_members(
        self, state: dict[str, Any] | None, updates: Sequence[Update], *, account_id: str
    ) -> AccountStep:
        before = None if state is None else AccountState.from_dict(state)
        step = apply_members(
            before,
            [
                MemberUpdate(
                    lead, None if doc is None else Member.from_dict(doc), version, at.timestamp()
                )
                for lead, doc, version, at in updates
            ],
            account_id=account_id,
            models=self.models,
        )
        return self._account_step(before, step.state, step.outputs)

    def account_tick(self, state: dict[str, Any], at: datetime, *, account_id: str) -> AccountStep:
        before = AccountState.from_dict(state)
        step = advance_account(before, at, account_id=account_id, models=self.models)
        return self._account_step(before, step.state, step.outputs)

    def account_due(self, state: dict[str, Any]) -> datetime | None:
        return next_account_crossing(AccountState.from_dict(state), self.models)

    def _account_step(
        self, before: AccountState | None, after: AccountState | None, outputs: Any
    ) -> AccountStep:
        if after is None or after is before:
            return AccountStep(None, tuple(outputs))
        return AccountStep(
            after.to_dict(), tuple(outputs), next_account_crossing(after, self.models)
        )


class CoreEngine(CoreAccounts):
    """Every model of one model file, applied in the same pass (and its accounts)."""

    def __init__(self, models: ModelSet) -> None:
        self.models = models

    @property
    def model_ids(self) -> Sequence[str]:
        return self.models.ids

    def load(self, document: dict[str, Any] | None, live: Any = None) -> LeadState | None:
        """The decoded state: ``live`` when it is one (the decoded ``document``), else read."""
        if isinstance(live, LeadState):
            return live
        return None if document is None else LeadState.from_dict(document, self.models)

    def _step(self, before: LeadState | None, after: LeadState | None, outputs: Any) -> Step:
        if after is None or after is before:
            return Step(None, tuple(outputs), live=before)
        return Step(
            after.to_dict(),
            tuple(outputs),
            next_crossing_all(after),
            live=after,
            machine=_machine_counts(before, after),
        )

    def apply(self, state: dict[str, Any] | None, event: EventBase, live: Any = None) -> Step:
        before = self.load(state, live)
        step = apply_all(before, event, models=self.models, lead_id=event.lead_id)
        return self._step(before, step.state, step.outputs)

    def apply_batch(
        self, state: dict[str, Any] | None, events: Sequence[EventBase], live: Any = None
    ) -> Step:
        before = self.load(state, live)
        step = apply_batch(before, events, models=self.models, lead_id=events[0].lead_id)
        return self._step(before, step.state, step.outputs)

    def merge(
        self,
        state: dict[str, Any] | None,
        other: dict[str, Any],
        *,
        lead_id: str,
        event_id: str,
        at: datetime,
    ) -> Step:
        absorbed = LeadState.from_dict(other, self.models)
        before = self.load(state)
        merged = absorbed if before is None else merge_lead_states(before, absorbed, self.models)
        caught_up = advance_all(merged, at, lead_id=lead_id)
        final = caught_up.state if caught_up.state is not None else merged
        return Step(final.to_dict(), tuple(caught_up.outputs), next_crossing_all(final), final)

    def tick(self, state: dict[str, Any], at: datetime, *, lead_id: str, live: Any = None) -> Step:
        before = self.load(state, live)
        assert before is not None
        step = advance_all(before, at, lead_id=lead_id)
        return self._step(before, step.state, step.outputs)

    def next_due(self, state: dict[str, Any], live: Any = None) -> datetime | None:
        loaded = self.load(state, live)
        return None if loaded is None else next_crossing_all(loaded)


def _machine_counts(before: LeadState | None, after: LeadState) -> tuple[tuple[str, int], ...]:
    """Per model, how many more machine-made events `after` counts than `before`."""
    counts: list[tuple[str, int]] = []
    for model_id, state in after.models.items():
        if state.machine is None:
            continue
        previous = before.models.get(model_id) if before is not None else None
        earlier = previous.machine[0] if previous is not None and previous.machine else 0
        if state.machine[0] > earlier:
            counts.append((model_id, state.machine[0] - earlier))
    return tuple(counts)
