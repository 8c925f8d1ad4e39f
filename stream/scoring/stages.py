"""The lifecycle-stage graph: which transitions a model allows, and the stage groups rules use."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from schemas.stages import Stage

__all__ = ["DEFAULT_GRAPH", "FUNNEL_RANK", "MARKETING_STAGES", "SALES_STAGES", "allowed"]

_S = Stage

DEFAULT_GRAPH: Mapping[Stage, frozenset[Stage]] = MappingProxyType(
    {
        _S.SUBSCRIBER: frozenset(
            {_S.LEAD, _S.MQL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.RECYCLED}
            | {_S.DISQUALIFIED, _S.OTHER}
        ),
        _S.LEAD: frozenset(
            {_S.SUBSCRIBER, _S.MQL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.RECYCLED}
            | {_S.DISQUALIFIED, _S.OTHER}
        ),
        _S.MQL: frozenset(
            {_S.LEAD, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.RECYCLED, _S.DISQUALIFIED, _S.OTHER}
        ),
        _S.SQL: frozenset(
            {_S.LEAD, _S.MQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.RECYCLED, _S.DISQUALIFIED, _S.OTHER}
        ),
        _S.OPPORTUNITY: frozenset({_S.SQL, _S.CUSTOMER, _S.RECYCLED, _S.DISQUALIFIED, _S.OTHER}),
        _S.CUSTOMER: frozenset({_S.EVANGELIST, _S.OTHER}),
        _S.EVANGELIST: frozenset({_S.CUSTOMER, _S.OTHER}),
        _S.RECYCLED: frozenset(
            {_S.LEAD, _S.MQL, _S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.DISQUALIFIED, _S.OTHER}
        ),
        _S.DISQUALIFIED: frozenset({_S.LEAD, _S.RECYCLED}),
        _S.OTHER: frozenset(set(_S) - {_S.OTHER}),
    }
)
"""The transitions every model allows unless its file gives its own `stages.graph`.

Forward through the funnel from anywhere before a sale; back to lead or recycled from marketing
and sales stages; a customer only becomes an evangelist (or `other`); a disqualified lead leaves
only to lead or recycled, and no scoring rule moves it (only a person or the CRM).
"""

MARKETING_STAGES: frozenset[Stage] = frozenset({_S.SUBSCRIBER, _S.LEAD, _S.MQL, _S.RECYCLED})
"""Stages that thresholds and hand-raises act on. Later stages belong to sales and change only
through CRM feedback or by hand."""

SALES_STAGES: frozenset[Stage] = frozenset({_S.SQL, _S.OPPORTUNITY, _S.CUSTOMER, _S.EVANGELIST})

FUNNEL_RANK: Mapping[Stage, int] = MappingProxyType(
    {
        _S.DISQUALIFIED: 0,
        _S.OTHER: 1,
        _S.SUBSCRIBER: 2,
        _S.LEAD: 3,
        _S.RECYCLED: 4,
        _S.MQL: 5,
        _S.SQL: 6,
        _S.OPPORTUNITY: 7,
        _S.CUSTOMER: 8,
        _S.EVANGELIST: 9,
    }
)
"""How far along the funnel a stage is (used to choose a stage when two leads merge)."""


def allowed(graph: Mapping[Stage, frozenset[Stage]], from_stage: Stage, to_stage: Stage) -> bool:
    """Whether `graph` allows moving from `from_stage` to `to_stage`."""
    return to_stage in graph.get(from_stage, frozenset())
