"""The live evaluation of every model, champion and challengers, on CRM outcomes.

A CRM outcome (``sales_accepted``, ``sales_rejected``, ``opportunity_created``, ``closed_won``,
``closed_lost``, ``disqualified`` on ``leads.crm-feedback.v1``) makes the worker publish the
lead's score under every model, live or shadow, taken at that moment and marked with the
outcome (``ScoreUpdated.outcome``). The projector keeps each of those scores, paired with its
outcome, in Redis; `summarize` turns one model's pairs into its figures.

Which score: the one at the outcome, for every model at the same moment, decayed exactly to it
(or, for an outcome reported after later activity, to the lead's latest event). A score "at MQL
time" would compare models at different moments, and a shadow model, which never hands a lead
over, or a lead sales took without an MQL, would have none. The score at the outcome counts
activity during the sales process, for every model alike.

Why Redis: the pairs of all partitions meet in one place, which every worker's ``/metrics``,
the dashboard and ``leadstream models evaluate`` read without asking the workers; the projector
already writes Redis idempotently in the same pipeline. Bounded: the newest
``LEADSTREAM_EVALUATION_MAX_OUTCOMES`` outcomes per model; the figures are computed off the
event loop. Its keys are outside the read model's prefix, so ``leadstream redis rebuild`` keeps
them; a Redis that lost its data gets back only the outcome scores the compacted scores topic
still holds.

Key layout (``{e}`` is ``{app_id}:rm-eval``):

| key | type | content |
| --- | --- | --- |
| ``{e}:pairs:{model}`` | hash | outcome event id → the pair (JSON) |
| ``{e}:order:{model}`` | sorted set | outcome event id by outcome time (for the bound) |
| ``{e}:lead:{model}:{lead_id}`` | set | the lead's outcome event ids (for an erasure) |
| ``{e}:models`` | set | every model with outcomes |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any, Final

import orjson

from schemas.outputs import ScoreUpdated
from stream.scoring.spec import ModelSet, ScoringModel

__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "ModelEvaluation",
    "Pair",
    "auc",
    "erase_args",
    "model_ids",
    "outcome_args",
    "pairs_from",
    "summarize",
    "summarize_docs",
]

POSITIVE: Final = frozenset({"sales_accepted", "opportunity_created", "closed_won"})
"""Outcomes that say the lead was worth handing over (label 1)."""
NEGATIVE: Final = frozenset({"sales_rejected", "closed_lost", "disqualified"})
"""Outcomes that say it was not (label 0)."""
REACHED_SQL: Final = POSITIVE
"""Outcomes that mean sales accepted the lead (an opportunity or a win implies it)."""

OUTCOME_SCRIPT: Final = """
local e, model, lead, id, at, doc = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local max = tonumber(ARGV[7])
local pairs_key, order = e .. ':pairs:' .. model, e .. ':order:' .. model
local fresh = redis.call('HSET', pairs_key, id, doc)
redis.call('ZADD', order, at, id)
redis.call('SADD', e .. ':lead:' .. model .. ':' .. lead, id)
redis.call('SADD', e .. ':models', model)
local extra = redis.call('ZCARD', order) - max
if extra > 0 then
  for _, old in ipairs(redis.call('ZPOPMIN', order, extra)) do
    local old_doc = redis.call('HGET', pairs_key, old)
    if old_doc then
      redis.call('SREM', e .. ':lead:' .. model .. ':' .. cjson.decode(old_doc)['lead'], old)
      redis.call('HDEL', pairs_key, old)
    end
  end
end
return fresh
"""
"""Keep one outcome's pair (idempotent by outcome event id), then drop the oldest beyond the
bound. ``ZPOPMIN`` returns ids and scores alternately; a score is never a stored id."""

ERASE_SCRIPT: Final = """
local e, model, lead = ARGV[1], ARGV[2], ARGV[3]
local k = e .. ':lead:' .. model .. ':' .. lead
local ids = redis.call('SMEMBERS', k)
for _, id in ipairs(ids) do
  redis.call('HDEL', e .. ':pairs:' .. model, id)
  redis.call('ZREM', e .. ':order:' .. model, id)
end
redis.call('DEL', k)
return #ids
"""
"""Forget an erased lead's pairs under a model."""


@dataclass(frozen=True, slots=True)
class Pair:
    """One CRM outcome and a model's score of the lead at it."""

    lead: str
    outcome: str
    total: float
    fit: float
    engagement: float
    at: float
    """The outcome's time (epoch seconds)."""

    @property
    def label(self) -> int | None:
        return 1 if self.outcome in POSITIVE else 0 if self.outcome in NEGATIVE else None


def outcome_args(prefix: str, record: ScoreUpdated, max_outcomes: int) -> list[object]:
    """The arguments of `OUTCOME_SCRIPT` for a score taken at an outcome."""
    at = record.as_of.timestamp()
    doc = orjson.dumps(
        {
            "lead": record.lead_id,
            "outcome": record.outcome,
            "total": record.total,
            "fit": record.fit,
            "engagement": record.engagement,
            "at": at,
        }
    ).decode()
    event_id = record.last_event_id or f"{record.lead_id}@{at}"
    return [prefix, record.model, record.lead_id, event_id, repr(at), doc, max_outcomes]


def erase_args(prefix: str, model: str, lead_id: str) -> list[object]:
    return [prefix, model, lead_id]


def pairs_from(docs: Iterable[bytes]) -> list[Pair]:
    """The pairs stored as `docs` (JSON, as `outcome_args` writes them)."""
    pairs = []
    for raw in docs:
        doc = orjson.loads(raw)
        pairs.append(
            Pair(
                lead=str(doc["lead"]),
                outcome=str(doc["outcome"]),
                total=float(doc["total"]),
                fit=float(doc["fit"]),
                engagement=float(doc["engagement"]),
                at=float(doc["at"]),
            )
        )
    return pairs


def summarize_docs(
    model_id: str, docs: Iterable[bytes], model: ScoringModel | None
) -> ModelEvaluation:
    """`summarize` of the pairs stored as `docs`."""
    return summarize(model_id, pairs_from(docs), model)


# ------------------------------------------------------------------------------ figures


def auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """The area under the ROC curve (ties count half); None without both labels."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = 0.0
    seen = 0
    for _, group in groupby(sorted(zip(scores, labels, strict=True)), key=itemgetter(0)):
        size = good = 0
        for _, label in group:
            size += 1
            good += label
        # ranks are 1-based; tied scores share their mean rank
        rank_sum += good * (seen + (size + 1) / 2)
        seen += size
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


@dataclass(frozen=True, slots=True)
class ModelEvaluation:
    """One model's figures on the CRM outcomes kept for it."""

    model: str
    shadow: bool | None
    """From the model file; for a model it does not name, from the model's latest records
    (None when `summarize` has no model)."""
    outcomes: int
    """Outcomes kept (every pair, whatever its label)."""
    by_outcome: dict[str, int]
    positives: int
    negatives: int
    auc: float | None
    """How often an outcome sales called good (accepted, opportunity, won) had a higher score than
    one they called bad (rejected, lost, disqualified); None without both."""
    mql_threshold: float | None
    mql_basis: str | None
    at_mql: int
    """Outcomes whose score was at or above the model's MQL threshold."""
    precision_at_mql: float | None
    """The share of those that were good outcomes."""
    mql_leads: int
    """Leads at or above the MQL threshold at their first outcome (the model hands them over)."""
    mql_to_sql: float | None
    """The share of those that sales accepted (accepted, an opportunity or won)."""
    mql_to_won: float | None
    """The share of those that were won."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _qualifier(model: ScoringModel | None) -> Callable[[Pair], bool]:
    """Whether a pair's score is at or above `model`'s MQL threshold."""
    mql = model.stages.mql if model is not None else None
    if mql is None:
        return lambda pair: False
    basis, promote_at = attrgetter(mql.basis), mql.promote_at
    min_fit = mql.min_fit if mql.min_fit is not None else -math.inf
    min_engagement = mql.min_engagement if mql.min_engagement is not None else -math.inf

    def qualifies(pair: Pair) -> bool:
        return bool(
            basis(pair) >= promote_at and pair.fit >= min_fit and pair.engagement >= min_engagement
        )

    return qualifies


def summarize(model_id: str, pairs: Iterable[Pair], model: ScoringModel | None) -> ModelEvaluation:
    """`model_id`'s figures from its pairs; `model` (its definition) gives the MQL threshold."""
    kept = sorted(pairs, key=lambda p: (p.at, p.outcome))
    labelled = [p for p in kept if p.label is not None]
    labels = [int(p.label or 0) for p in labelled]
    by_outcome: dict[str, int] = {}
    for pair in kept:
        by_outcome[pair.outcome] = by_outcome.get(pair.outcome, 0) + 1
    qualifies = _qualifier(model)
    at_mql = [p for p in labelled if qualifies(p)]
    first: dict[str, Pair] = {}
    reached: dict[str, set[str]] = {}
    for pair in kept:
        first.setdefault(pair.lead, pair)
        reached.setdefault(pair.lead, set()).add(pair.outcome)
    mql_leads = [lead for lead, pair in first.items() if qualifies(pair)]
    sql = sum(1 for lead in mql_leads if reached[lead] & REACHED_SQL)
    won = sum(1 for lead in mql_leads if "closed_won" in reached[lead])
    mql = model.stages.mql if model is not None else None
    value = auc([p.total for p in labelled], labels)
    return ModelEvaluation(
        model=model_id,
        shadow=model.shadow if model is not None else None,
        outcomes=len(kept),
        by_outcome=dict(sorted(by_outcome.items())),
        positives=sum(labels),
        negatives=len(labels) - sum(labels),
        auc=None if value is None or math.isnan(value) else value,
        mql_threshold=mql.promote_at if mql is not None else None,
        mql_basis=mql.basis if mql is not None else None,
        at_mql=len(at_mql),
        precision_at_mql=_ratio(sum(1 for p in at_mql if p.label == 1), len(at_mql)),
        mql_leads=len(mql_leads),
        mql_to_sql=_ratio(sql, len(mql_leads)),
        mql_to_won=_ratio(won, len(mql_leads)),
    )


def model_ids(models: ModelSet | None, seen: Iterable[str]) -> list[str]:
    """The models to report: the file's, in its order, then any others with outcomes."""
    ordered = list(models.ids) if models is not None else []
    return ordered + sorted(set(seen) - set(ordered))
