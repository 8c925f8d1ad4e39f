"""The scoring core: models as data, and a pure fold from events to scores and stages.

This package does no I/O: it imports the standard library, pydantic, PyYAML (to parse text) and
the contract (`schemas`) only, reads no clock and no environment. Time is the event's
`occurred_at`; only the timer helpers take a `now`, passed in by the caller.

    models = parse_models(text, source="models.yaml")      # stream.model_files reads files
    model = models.get("b2b")
    step = apply(None, event, model=model)                   # Transition(state, outputs)
    step = apply(step.state, next_event, model=model)
    score_at(step.state, now); next_crossing(step.state); explain(step.state, now)

`apply_all` / `LeadState` do the same for every model of a file at once, which is what the stream
processor keeps per lead; `apply_batch` applies a run of one lead's events at once and publishes
only each model's latest score.
"""

from stream.scoring.engine import (
    Output,
    Score,
    Transition,
    advance,
    advance_all,
    apply,
    apply_all,
    apply_batch,
    merge_lead_states,
    merge_states,
    next_crossing,
    next_crossing_all,
    score_at,
)
from stream.scoring.explain import Explanation, describe_model, explain
from stream.scoring.spec import ModelFileError, ModelSet, Problem, ScoringModel, parse_models
from stream.scoring.state import Contribution, LeadState, ModelState, StateFormatError

__all__ = [
    "Contribution",
    "Explanation",
    "LeadState",
    "ModelFileError",
    "ModelSet",
    "ModelState",
    "Output",
    "Problem",
    "Score",
    "ScoringModel",
    "StateFormatError",
    "Transition",
    "advance",
    "advance_all",
    "apply",
    "apply_all",
    "apply_batch",
    "describe_model",
    "explain",
    "merge_lead_states",
    "merge_states",
    "next_crossing",
    "next_crossing_all",
    "parse_models",
    "score_at",
]
