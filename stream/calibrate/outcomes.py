"""Outcomes read from the CRM feedback in an event history (`calibrate --outcomes crm`).

Every lead of the history gets one label and the time it was decided, so its history is scored
up to that moment and not after. CRM feedback is on ``leads.crm-feedback.v1`` (sales accepted
or rejected, opportunity, won, lost, disqualified); the first decisive one decides:

- ``--target sql``: did sales take the lead? 1 at its first acceptance, opportunity or win; 0 at
  its first rejection, loss or disqualification, and 0 at the end of the history for a lead
  sales never took.
- ``--target won``: was it won? 1 at a win; 0 at a loss, rejection or disqualification, and 0 at
  the end of the history for a lead sales never took; a lead accepted but not closed yet is
  still in the pipeline and left out.

Hand-set stages (``stage_set``) are not outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pandas as pd

from schemas.events import EventBase
from stream.calibrate.table import CalibrationError

__all__ = ["TARGETS", "crm_outcomes"]

_GOOD: Final = {"sales_accepted", "opportunity_created", "closed_won"}
_BAD: Final = {"sales_rejected", "closed_lost", "disqualified"}
_NEVER: Final = ("", 0)
"""Never taken by sales: 0, scored at the end of the history (no time)."""
TARGETS: Final = ("sql", "won")
"""The labels `crm_outcomes` can give."""


def _decides(event_type: str, target: str) -> int | None:
    if target == "sql":
        return 1 if event_type in _GOOD else 0 if event_type in _BAD else None
    return 1 if event_type == "closed_won" else 0 if event_type in _BAD else None


def crm_outcomes(events: Iterable[EventBase], target: str) -> pd.DataFrame:
    """One row per decided lead: ``lead_id``, `target` (1/0) and ``time`` (when it was decided)."""
    if target not in TARGETS:
        raise CalibrationError(
            f"with --outcomes crm, --target is one of {', '.join(TARGETS)} (got {target!r})"
        )
    decided: dict[str, tuple[str, int] | None] = {}
    """Lead → (time, label); None: accepted, still open (with `won`)."""
    outcomes = 0
    for event in sorted(events, key=lambda e: e.occurred_at):
        lead = event.lead_id
        if lead is None:
            continue
        label = _decides(event.type, target)
        if label is None:
            if target == "won" and event.type in _GOOD and decided.get(lead, _NEVER) == _NEVER:
                decided[lead] = None
            decided.setdefault(lead, _NEVER)
            continue
        outcomes += 1
        current = decided.get(lead)
        if current is None or current == _NEVER:
            decided[lead] = (event.occurred_at.isoformat(), label)
    if not outcomes:
        raise CalibrationError("the history holds no CRM outcome (leads.crm-feedback.v1)")
    rows = {lead: value for lead, value in decided.items() if value is not None}
    return pd.DataFrame(
        {
            "lead_id": list(rows),
            target: [label for _, label in rows.values()],
            "time": [at for at, _ in rows.values()],
        }
    )
