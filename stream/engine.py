"""The scoring core behind the processor's engine seam, on stored state documents.

The processor stores one JSON document per lead (``LeadState.to_dict``); this adapter reads it,
runs the pure core (``apply_all``, ``advance_all``, ``merge_lead_states``,
``next_crossing_all``) and hands back the new document, the records to publish and when decay
will next matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.events import EventBase
from stream.processor import Step
from stream.scoring import (
    LeadState,
    ModelSet,
    advance_all,
    apply_all,
    merge_lead_states,
    next_crossing_all,
)


class CoreEngine:
    """Every model of one model file, applied in the same pass."""

    def __init__(self, models: ModelSet) -> None:
        self.models = models

    @property
    def model_ids(self) -> Sequence[str]:
        return self.models.ids

    def load(self, document: dict[str, Any] | None) -> LeadState | None:
        return None if document is None else LeadState.from_dict(document, self.models)

    def _step(self, before: LeadState | None, after: LeadState | None, outputs: Any) -> Step:
        if after is None or after is before:
            return Step(None, tuple(outputs))
        return Step(after.to_dict(), tuple(outputs), next_crossing_all(after))

    def apply(self, state: dict[str, Any] | None, event: EventBase) -> Step:
        before = self.load(state)
        step = apply_all(before, event, models=self.models, lead_id=event.lead_id)
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
        return Step(final.to_dict(), tuple(caught_up.outputs), next_crossing_all(final))

    def tick(self, state: dict[str, Any], at: datetime, *, lead_id: str) -> Step:
        before = LeadState.from_dict(state, self.models)
        step = advance_all(before, at, lead_id=lead_id)
        return self._step(before, step.state, step.outputs)

    def next_due(self, state: dict[str, Any]) -> datetime | None:
        return next_crossing_all(LeadState.from_dict(state, self.models))
