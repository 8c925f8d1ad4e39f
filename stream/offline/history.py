"""Scoring a history of events offline, through the pure core, as the processor would.

Used by `leadstream rules diff` (a sample of leads under two model files) and `leadstream
replay` (history rescored under a new model version). No Kafka and no clock here: the callers
read the events and pass the time to score at.

Identity follows the processor: an event with only an `anonymous_id` counts toward the lead an
`identify` event links that anonymous id to (events of an anonymous id that is never identified
are not scored, as the processor holds them until they expire), and the events of a lead merged
into another (`leads_merged`) count toward the surviving lead. A lead's events are applied in
event-time order; the decay math makes the result the same as any arrival order (caps aside). A
`lead_erased` event forgets everything before it: the state and every output it led to.

Between events the state is kept in its stored form (``LeadState.to_dict`` read back), as the
processor keeps it in its table: the stored form is compact (engagement rebased to the state's
time and shortened), so a state that skipped it could differ in the last bits from the worker's,
and a decay crossing time, part of a stage change's event id, with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from schemas.events import EventBase, Identify, LeadErased, LeadsMerged
from stream.scoring import LeadState, ModelSet, Output, advance_all, apply_all

__all__ = ["LeadHistory", "group_by_lead", "score_history", "score_leads", "stored"]


def stored(state: LeadState, models: ModelSet) -> LeadState:
    """``state`` as the processor reads it back from its table (its stored form)."""
    return LeadState.from_dict(state.to_dict(), models)


def _aliases(events: Iterable[EventBase]) -> dict[str, str]:
    """Anonymous ids and merged lead ids, and the lead each one counts toward."""
    aliases: dict[str, str] = {}
    for event in events:
        if isinstance(event, Identify) and event.lead_id and event.anonymous_id:
            aliases.setdefault(event.anonymous_id, event.lead_id)
        elif isinstance(event, LeadsMerged):
            aliases[event.merged_lead_id] = event.lead_id
    return aliases


def _resolve(aliases: dict[str, str], key: str) -> str:
    seen = {key}
    while key in aliases and aliases[key] not in seen:
        key = aliases[key]
        seen.add(key)
    return key


def group_by_lead(events: Iterable[EventBase]) -> dict[str, list[EventBase]]:
    """Each lead's events in event-time order (stable), anonymous and merged ids resolved."""
    listed = list(events)
    aliases = _aliases(listed)
    out: dict[str, list[EventBase]] = {}
    for event in listed:
        if event.lead_id is not None:
            lead = _resolve(aliases, event.lead_id)
        elif event.anonymous_id is not None and event.anonymous_id in aliases:
            lead = _resolve(aliases, event.anonymous_id)
        else:
            continue  # never identified: held by the processor, never scored
        if isinstance(event, LeadsMerged):
            continue  # the merged lead's events are already this lead's
        out.setdefault(lead, []).append(event)
    for lead_events in out.values():
        lead_events.sort(key=lambda e: e.occurred_at)
    return out


@dataclass(frozen=True)
class LeadHistory:
    """A lead's state after its history, and the records scoring it published on the way."""

    lead_id: str
    state: LeadState | None
    outputs: tuple[Output, ...]


def score_history(
    lead_id: str, events: Iterable[EventBase], models: ModelSet, *, until: datetime | None = None
) -> LeadHistory:
    """Fold a lead's events through `apply_all`; with `until`, decay it to then (as the timer
    would, publishing the stage changes decay causes)."""
    state: LeadState | None = None
    outputs: list[Output] = []
    for event in events:
        if isinstance(event, LeadErased):
            state, outputs = None, []
            continue
        step = apply_all(state, event, models=models, lead_id=lead_id)
        if step.state is not None:
            state = stored(step.state, models)
        outputs.extend(step.outputs)
    if state is not None and until is not None:
        step = advance_all(state, until, lead_id=lead_id)
        if step.state is not None:
            state = stored(step.state, models)
        outputs.extend(step.outputs)
    return LeadHistory(lead_id, state, tuple(outputs))


def score_leads(
    by_lead: dict[str, list[EventBase]], models: ModelSet, *, until: datetime | None = None
) -> Iterator[LeadHistory]:
    """`score_history` for every lead."""
    for lead_id, events in by_lead.items():
        yield score_history(lead_id, events, models, until=until)
