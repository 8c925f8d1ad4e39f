"""Identity resolution: anonymous activity held per anonymous id until it is identified.

An event that carries only an ``anonymous_id`` cannot be scored yet. It is held in the
anonymous id's record (keyed by the anonymous id, so on that id's partition) until an
``identify`` event links the anonymous id to a lead; the held events are then released to the
lead, which scores them at their original event times (the decay math makes late application
exact). Once linked, later anonymous events go straight to the lead.

Holding is bounded: at most ``max_events`` per anonymous id (the oldest give way), and a record
that is not identified within ``max_age`` of its first held event is dropped. Events that give
way are returned to the caller, which dead-letters them with the reason, so nothing vanishes.

The functions here are pure: the processor stores the records in a table and passes the
wall-clock ``now`` in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class IdentityLimits:
    """How much anonymous activity is held, and for how long."""

    max_events: int = 200
    max_age: timedelta = timedelta(days=30)


@dataclass(slots=True)
class AnonRecord:
    """What is known of one anonymous id."""

    lead_id: str | None = None
    """The lead it is linked to, once identified."""
    held: list[bytes] = field(default_factory=list)
    """Encoded events waiting for the link, oldest first."""
    first_held_at: float | None = None
    """Wall-clock time (epoch seconds) the oldest held event arrived."""
    applied: int | None = None
    """The offset of the last internal record held here (a record read again after a crash or a
    rebalance, once this record was written, is not held twice)."""

    def already_applied(self, offset: int | None) -> bool:
        """Whether the internal record at ``offset`` was held here already."""
        return offset is not None and self.applied is not None and offset <= self.applied

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.lead_id is not None:
            out["l"] = self.lead_id
        if self.held:
            out["h"] = [raw.decode() for raw in self.held]
            out["t"] = self.first_held_at
        if self.applied is not None:
            out["o"] = self.applied
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnonRecord:
        held = [str(raw).encode() for raw in data.get("h", ())]
        return cls(
            lead_id=data.get("l"), held=held, first_held_at=data.get("t"), applied=data.get("o")
        )


@dataclass(frozen=True, slots=True)
class Held:
    """The event was held; ``dropped`` gave way to keep the record bounded."""

    record: AnonRecord
    dropped: list[bytes]


def hold(
    record: AnonRecord | None,
    event: bytes,
    *,
    now: float,
    limits: IdentityLimits,
    offset: int | None = None,
) -> Held:
    """Hold ``event`` (encoded) for an anonymous id that is not linked yet (``offset``: its
    internal record's)."""
    current = record if record is not None else AnonRecord()
    if current.lead_id is not None:
        raise ValueError("the anonymous id is linked: send its events to the lead")
    held = [*current.held, event]
    overflow = max(0, len(held) - limits.max_events)
    dropped, held = held[:overflow], held[overflow:]
    first = current.first_held_at if current.first_held_at is not None else now
    applied = current.applied if offset is None else offset
    return Held(AnonRecord(lead_id=None, held=held, first_held_at=first, applied=applied), dropped)


@dataclass(frozen=True, slots=True)
class Linked:
    """The anonymous id now points at ``record.lead_id``; ``released`` go to that lead."""

    record: AnonRecord
    released: list[bytes]
    relinked_from: str | None
    """The lead it pointed at before, when an identify moved it to another lead."""


def link(record: AnonRecord | None, lead_id: str) -> Linked:
    """Link an anonymous id to ``lead_id`` and release what was held for it."""
    current = record if record is not None else AnonRecord()
    previous = current.lead_id if current.lead_id not in (None, lead_id) else None
    return Linked(AnonRecord(lead_id=lead_id), list(current.held), previous)


def expire(
    record: AnonRecord, *, now: float, limits: IdentityLimits
) -> tuple[AnonRecord | None, list[bytes]]:
    """Drop held events older than ``max_age``; returns the new record (None: delete it)."""
    if record.lead_id is not None or record.first_held_at is None:
        return record, []
    if now - record.first_held_at < limits.max_age.total_seconds():
        return record, []
    return None, list(record.held)
