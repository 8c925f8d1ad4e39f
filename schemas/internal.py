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
- ``tick``: the timer found a lead, anonymous id or account due (decay crossing, hold expiry).

Producers outside Leadstream never write this topic; it is versioned like the others.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from schemas.common import ContractModel, EventId, Identifier, UtcDatetime
from schemas.events import EVENT_TYPES

__all__ = [
    "AccountMember",
    "AccountMembers",
    "InternalMessage",
    "Link",
    "MemberChange",
    "MergeIn",
    "MergeOut",
    "Tick",
    "Unlink",
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


_CONTROL = (Link, Unlink, MergeOut, MergeIn, Tick, AccountMember, AccountMembers)

InternalMessage: Any = Annotated[
    Union[tuple(EVENT_TYPES.values()) + _CONTROL],  # noqa: UP007
    Field(discriminator="type"),
]
"""A value of ``leads.internal.v1``: an inbound event or a control message."""
