"""Messages Leadstream workers send each other on ``leads.internal.v1``.

The internal topic is co-partitioned with the source topics and keyed by the id whose state a
message concerns, so each step runs on the worker that owns that id's partition:

- an inbound event re-keyed to its lead (or anonymous visitor) when its producer keyed it
  otherwise, or released to the lead after an ``identify``;
- ``link``: an identify reached the lead; the anonymous id's partition records the alias and
  releases what it held;
- ``unlink``: an erased lead's anonymous ids forget it;
- ``merge_out`` / ``merge_in``: two lead ids are one person; the absorbed lead hands its state
  to the surviving lead;
- ``account_members``: the contributions to one account that changed in one micro-batch of a
  worker (a lead's new contribution, or its leave), in the order they were made: keyed by the
  account id, so every account change is made on the account's partition (``account_member``,
  one update per message, is what earlier releases sent; it is still read);
- ``tick``: the timer found a lead, anonymous id or account due (decay crossing, hold expiry);
- ``events``: the plain lead events (no identify, merge or erasure) that one micro-batch of a
  worker read from the source topics for one partition, in the order read: one record carries
  what would otherwise be one record per event.

Producers outside Leadstream never write this topic; it is versioned like the others.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from schemas.common import ContractModel, EventId, Identifier, UtcDatetime
from schemas.events import EVENT_TYPES, InboundEvent

__all__ = [
    "NOT_IN_EVENTS",
    "AccountMember",
    "AccountMembers",
    "Events",
    "InternalMessage",
    "Link",
    "MemberChange",
    "MergeIn",
    "MergeOut",
    "Tick",
    "Unlink",
    "not_carried",
]


class Link(ContractModel):
    """``anonymous_id`` is ``lead_id``: keyed by the anonymous id."""

    type: Literal["link"] = "link"
    event_id: EventId
    """The identify event's id."""
    anonymous_id: Identifier
    lead_id: Identifier
    occurred_at: UtcDatetime


class Unlink(ContractModel):
    """Forget the alias of an erased lead: keyed by the anonymous id."""

    type: Literal["unlink"] = "unlink"
    event_id: EventId
    """The erase event's id."""
    anonymous_id: Identifier
    lead_id: Identifier


class MergeOut(ContractModel):
    """Hand ``lead_id``'s state over to ``into_lead_id``: keyed by the absorbed lead."""

    type: Literal["merge_out"] = "merge_out"
    event_id: EventId
    """The merge event's id."""
    lead_id: Identifier
    into_lead_id: Identifier
    occurred_at: UtcDatetime


class MergeIn(ContractModel):
    """Fold ``from_lead_id``'s state into ``lead_id``: keyed by the surviving lead."""

    type: Literal["merge_in"] = "merge_in"
    event_id: EventId
    lead_id: Identifier
    from_lead_id: Identifier
    state: dict[str, Any] | None = None
    """The absorbed lead's state (``None``: it had none)."""
    occurred_at: UtcDatetime


class MemberChange(ContractModel):
    """One lead's contribution to an account changed (``member``; ``None``: the lead left it)."""

    lead_id: Identifier
    member: dict[str, Any] | None = None
    """The contribution (``stream.scoring.accounts.Member`` serialised)."""
    version: Annotated[int, Field(ge=0)]
    """Grows with every change of the lead (the offset of the lead's record that made it): an
    account applies a lead's changes once, in order."""
    occurred_at: UtcDatetime


class AccountMember(MemberChange):
    """One member change of ``account_id``, keyed by the account id: what earlier releases sent
    per change (``AccountMembers`` carries a batch's changes to one account in one message)."""

    type: Literal["account_member"] = "account_member"
    account_id: Identifier


class AccountMembers(ContractModel):
    """The changes to ``account_id``'s members that one micro-batch made, in order: keyed by the
    account id."""

    type: Literal["account_members"] = "account_members"
    account_id: Identifier
    changes: Annotated[list[MemberChange], Field(min_length=1)]


class Tick(ContractModel):
    """Time passed for ``key`` (a lead id or an anonymous id): keyed by it.

    ``kind="partition"``: sent to one partition of the internal topic when a consumed topic's
    partition of that number stopped reaching the agent although the broker holds more records;
    the agent reads them (``stream.faust_guards.sequence``). ``key`` is then ``partition-<n>``.
    """

    type: Literal["tick"] = "tick"
    key: Identifier
    kind: Literal["lead", "anonymous", "account", "partition"]
    at: UtcDatetime


class Events(ContractModel):
    """Plain lead events of one partition, in the order a worker read them from the source
    topics: sent to that partition (the key is the first event's lead id; each event belongs to
    its own ``lead_id``, a lead of the partition). Each event is scored as if it had come in a
    record of its own at this record's place in the partition; a lead's events in one record
    are applied together."""

    type: Literal["events"] = "events"
    events: Annotated[list[InboundEvent], Field(min_length=1)]

    @model_validator(mode="after")
    def _plain_lead_events(self) -> Events:
        for index, event in enumerate(self.events):
            problem = not_carried(event)
            if problem is not None:
                raise ValueError(f"events[{index}]: {problem}")
        return self


NOT_IN_EVENTS: frozenset[str] = frozenset({"identify", "leads_merged", "lead_erased"})
"""Event types an ``events`` record never carries: they touch more than their lead's scoring
state, and travel in records of their own."""


def not_carried(event: Any) -> str | None:
    """Why ``event`` cannot travel in an ``events`` record (``None``: it can)."""
    if event.lead_id is None:
        return "an events record carries lead events only (no lead_id)"
    if event.type in NOT_IN_EVENTS:
        return f"an events record does not carry {event.type!r} events"
    return None


_CONTROL = (Link, Unlink, MergeOut, MergeIn, Tick, AccountMember, AccountMembers, Events)

InternalMessage: Any = Annotated[
    Union[tuple(EVENT_TYPES.values()) + _CONTROL],  # noqa: UP007
    Field(discriminator="type"),
]
"""A value of ``leads.internal.v1``: an inbound event or a control message."""
