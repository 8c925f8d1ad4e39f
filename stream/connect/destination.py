"""What a destination is: the one interface the delivery core drives.

The core reads stage changes, keeps each lead's changes in order, batches them up to the
destination's `max_batch`, paces calls with the destination's rate limit and retries by the
`Outcome` the destination returns for each change. A destination knows its vendor's API only:
how to turn a batch into requests and how to read the answers. It never sleeps, retries, commits
offsets or dead-letters on its own.

    destination = WebhookDestination(...)
    outcomes = await destination.deliver(changes)      # one outcome per change, same order

A destination that also forgets erased leads (`lead_erased` records of the same topic) has an
`erase` method taking `Erasure`s (`ErasingDestination`); the core skips erasures for the others.
A destination that also delivers account stage changes (`leads.account-stage-changes.v1`, read
when the connector is started with accounts) has a `deliver_accounts` method taking
`AccountChange`s (`AccountDestination`).
A destination that makes one request per change rather than one per batch says so with
`requests_per_change = True`, so the rate limit counts requests, not batches; one whose batch
sometimes takes more than one request says how many with a `requests(changes)` method.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from schemas.outputs import AccountStageChanged, LeadErasedRecord, StageChanged

__all__ = [
    "TRANSIENT_4XX",
    "AccountChange",
    "AccountDestination",
    "Change",
    "Destination",
    "ErasingDestination",
    "Erasure",
    "Exchange",
    "Outcome",
    "Verdict",
    "requests_for",
    "retry_after_seconds",
    "sends_per_change",
    "takes_accounts",
    "takes_erasures",
    "transient_status",
]


R = TypeVar("R", StageChanged, LeadErasedRecord, AccountStageChanged)


@dataclass(frozen=True, slots=True)
class _Read(Generic[R]):
    """A record read from a stage-changes topic, with where it was read from."""

    record: R
    topic: str
    partition: int
    offset: int
    raw: bytes | None = None
    """The record's value as read from the topic (JSON), when the core has it: a destination
    that forwards the record whole sends these bytes rather than encoding it again."""

    @property
    def key(self) -> str:
        """The idempotency key a receiver deduplicates by: the record's `event_id`."""
        return str(self.record.event_id)

    @property
    def lead_id(self) -> str | None:
        """The lead the record is about; `None` for an account's record."""
        record = self.record
        return None if isinstance(record, AccountStageChanged) else record.lead_id

    @property
    def account_id(self) -> str | None:
        """The account the record is about; `None` for a lead's record."""
        record = self.record
        return record.account_id if isinstance(record, AccountStageChanged) else None

    @property
    def lane(self) -> str:
        """The key whose records are delivered one after the other, in order: the lead's id
        (the account's for an account stage change)."""
        record = self.record
        return record.account_id if isinstance(record, AccountStageChanged) else record.lead_id

    @property
    def subject(self) -> str:
        """`lead_id=...` or `account_id=...`, for log lines."""
        record = self.record
        if isinstance(record, AccountStageChanged):
            return f"account_id={record.account_id}"
        return f"lead_id={record.lead_id}"


@dataclass(frozen=True, slots=True)
class Change(_Read[StageChanged]):
    """One stage change to deliver, with where it was read from."""


@dataclass(frozen=True, slots=True)
class Erasure(_Read[LeadErasedRecord]):
    """One erased lead to forget (a `lead_erased` record), with where it was read from."""


@dataclass(frozen=True, slots=True)
class AccountChange(_Read[AccountStageChanged]):
    """One account stage change to deliver, with where it was read from."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and its answer, as kept in a dead letter (secrets already masked)."""

    method: str
    url: str
    request_headers: Mapping[str, str] = field(default_factory=dict)
    request_body: str = ""
    status: int | None = None
    """`None` when no answer came (timeout, connection refused)."""
    response_headers: Mapping[str, str] = field(default_factory=dict)
    response_body: str = ""


class Verdict(StrEnum):
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    """The destination does not take this change (filters, an unmapped stage): nothing sent."""
    TRANSIENT = "transient"
    """Try again later: 5xx, `TRANSIENT_4XX`, a timeout, a refused connection, an expired token."""
    PERMANENT = "permanent"
    """Never try again: any other 4xx, a change the vendor refuses. Goes to the dead letters."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one change in one `deliver` call."""

    verdict: Verdict
    reason: str = ""
    retry_after: float | None = None
    """Seconds the receiver asked to wait (`Retry-After`), when it said."""
    exchange: Exchange | None = None

    @classmethod
    def delivered(cls, exchange: Exchange | None = None) -> Outcome:
        return cls(Verdict.DELIVERED, exchange=exchange)


class Destination(Protocol):
    """One external system the core delivers to."""

    name: str
    """Short name in metrics and logs: `webhook`, `hubspot`, `salesforce`, `mautic`."""
    max_batch: int
    """Changes per `deliver` call at most (the vendor's batch limit; 1 for no batch API)."""
    rate_per_s: float
    """Calls per second the vendor allows by default (token bucket rate)."""
    burst: int
    """Calls that may go at once before the rate applies (token bucket size)."""

    async def deliver(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        """Send `changes` (at most `max_batch`, at most one per lead); one outcome per change,
        in order. Raises only for a bug: every vendor answer or network failure is an outcome."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class ErasingDestination(Destination, Protocol):
    """A destination that also forgets erased leads."""

    async def erase(self, erasures: Sequence[Erasure]) -> Sequence[Outcome]:
        """Forget the erased leads (at most `max_batch`, one per lead); one outcome each, in
        order, with the same verdicts as `deliver`."""
        ...


class AccountDestination(Destination, Protocol):
    """A destination that also delivers account stage changes."""

    async def deliver_accounts(self, changes: Sequence[AccountChange]) -> Sequence[Outcome]:
        """Send account stage changes (at most `max_batch`, one per account); one outcome
        each, in order, with the same verdicts as `deliver`."""
        ...


def takes_erasures(destination: Destination) -> bool:
    """Whether `destination` has an `erase` method (else the core skips `lead_erased`)."""
    return callable(getattr(destination, "erase", None))


def takes_accounts(destination: Destination) -> bool:
    """Whether `destination` has a `deliver_accounts` method (else the core skips account stage
    changes)."""
    return callable(getattr(destination, "deliver_accounts", None))


def sends_per_change(destination: Destination) -> bool:
    """Whether `destination` sends one request per change (`requests_per_change = True`)."""
    return bool(getattr(destination, "requests_per_change", False))


def requests_for(
    destination: Destination, items: Sequence[Change | Erasure | AccountChange]
) -> int:
    """HTTP requests one call with `items` (a batch of one kind) makes: what the destination's
    `requests(items)` says when it has one (a batch that may take more than one request), one per
    item for a destination with `requests_per_change = True`, else 1 (one batch request)."""
    counted = getattr(destination, "requests", None)
    if callable(counted) and items:
        return int(counted(items))
    return len(items) if sends_per_change(destination) else 1


TRANSIENT_4XX = frozenset({408, 409, 425, 429})
"""The 4xx answers worth another try (timeout, conflict, too early, too many requests)."""


def transient_status(status: int) -> bool:
    """Whether an HTTP status that is not 2xx is worth another try: 5xx and `TRANSIENT_4XX`."""
    return status >= 500 or status in TRANSIENT_4XX


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date; RFC 9110
    section 10.2.3); `None` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
