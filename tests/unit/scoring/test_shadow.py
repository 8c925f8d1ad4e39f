"""Shadow (challenger) models and the scores taken at CRM outcomes, in the pure core."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import Any

import pytest
import yaml

from schemas import codec
from schemas.events import Traits
from schemas.outputs import ScoreUpdated, StageChanged
from schemas.stages import Stage
from stream.scoring import ModelSet, advance_all, apply_all, apply_batch, parse_models, score_at

from .conftest import T0, event


def with_shadow(**changes: Any) -> ModelSet:
    """The default models plus `b2b-next`: b2b marked `shadow`, a demo worth `changes`' points."""
    text = resources.files("stream.scoring").joinpath("default_models.yaml").read_text()
    doc = yaml.safe_load(text)
    b2b = next(m for m in doc["models"] if m["id"] == "b2b")
    challenger = {**yaml.safe_load(yaml.safe_dump(b2b)), "id": "b2b-next", "shadow": True}
    for rule in challenger["engagement"]:
        if rule["id"] in changes:
            rule["points"] = changes[rule["id"]]
    doc["models"].append(challenger)
    return parse_models(yaml.safe_dump(doc, sort_keys=False), source="shadow.yaml")


@pytest.fixture(scope="module")
def shadowed() -> ModelSet:
    return with_shadow(demo_request=40)


def _buyer() -> list[Any]:
    traits = Traits(industry="software", company_size=120, job_title="Head of Marketing", age=35)
    return [
        event("profile_updated", 0.0, traits=traits),
        event("page_viewed", 0.01, path="/pricing"),
        event("demo_requested", 0.02),
    ]


def _fold(events: list[Any], models: ModelSet) -> tuple[Any, list[Any]]:
    state, outputs = None, []
    for item in events:
        step = apply_all(state, item, models=models)
        state = step.state
        outputs.extend(step.outputs)
    return state, outputs


def test_a_shadow_model_is_scored_but_publishes_no_stage_change(shadowed: ModelSet) -> None:
    state, outputs = _fold(_buyer(), shadowed)
    changes = [o for o in outputs if isinstance(o, StageChanged)]
    assert {c.model for c in changes} == {"b2b", "consumer"}
    assert any(c.model == "b2b" and c.to_stage is Stage.SQL for c in changes)
    shadow_scores = [o for o in outputs if isinstance(o, ScoreUpdated) and o.model == "b2b-next"]
    assert shadow_scores and all(s.shadow is True for s in shadow_scores)
    live = [o for o in outputs if isinstance(o, ScoreUpdated) and o.model != "b2b-next"]
    assert live and all(s.shadow is None for s in live)
    # the stage it would have given, kept in its state and on its records
    assert state.models["b2b-next"].stage is Stage.SQL
    assert shadow_scores[-1].stage is Stage.SQL
    # its own points: the demo is worth 40 to the challenger, 30 to the champion
    last = {s.model: s for s in outputs if isinstance(s, ScoreUpdated)}
    assert last["b2b-next"].total == pytest.approx(last["b2b"].total + 10)


def test_the_shadow_mark_is_on_the_wire_only_for_shadow_models(shadowed: ModelSet) -> None:
    batch = apply_batch(None, _buyer(), models=shadowed)
    docs = {
        o.model: codec.loads(codec.encode(o)) for o in batch.outputs if isinstance(o, ScoreUpdated)
    }
    assert docs["b2b-next"]["shadow"] is True
    assert "shadow" not in docs["b2b"] and "outcome" not in docs["b2b"]
    assert codec.decode_score(codec.encode(batch.outputs[-1])) == batch.outputs[-1]


def test_decay_demotes_a_shadow_model_silently(shadowed: ModelSet) -> None:
    traits = Traits(industry="software", company_size=120, age=30)
    events = [event("profile_updated", 0.0, traits=traits)]
    events += [event("webinar_attended", 0.001 * i, live=True) for i in range(1, 6)]
    state, _ = _fold(events, shadowed)
    assert state.models["b2b-next"].stage is Stage.MQL
    later = advance_all(state, T0 + timedelta(days=90), lead_id="lead-42")
    assert later.state is not None
    assert later.state.models["b2b"].stage is Stage.RECYCLED
    assert later.state.models["b2b-next"].stage is Stage.RECYCLED
    moved = {o.model for o in later.outputs if isinstance(o, StageChanged)}
    assert "b2b" in moved and "b2b-next" not in moved


@pytest.mark.parametrize("batch", [False, True])
def test_a_crm_outcome_publishes_every_models_score_at_that_moment(
    shadowed: ModelSet, batch: bool
) -> None:
    events = _buyer()
    outcome = event("closed_won", 3.0, opportunity_id="opp-1")
    after = event("page_viewed", 3.5, path="/docs")
    if batch:
        before, _ = _fold(events, shadowed)
        outputs = list(apply_batch(before, [outcome, after], models=shadowed).outputs)
    else:
        before, _ = _fold(events, shadowed)
        outputs = list(apply_all(before, outcome, models=shadowed).outputs)
    taken = [o for o in outputs if isinstance(o, ScoreUpdated) and o.outcome is not None]
    assert sorted(o.model for o in taken) == ["b2b", "b2b-next", "consumer"]
    for record in taken:
        assert record.outcome == "closed_won"
        assert record.last_event_id == outcome.event_id
        assert record.as_of == outcome.occurred_at
        expected = score_at(before.models[record.model], outcome.occurred_at)
        assert record.total == pytest.approx(expected.total, abs=1e-3)
    assert {o.model: o.shadow for o in taken} == {"b2b": None, "b2b-next": True, "consumer": None}


def test_an_outcome_publishes_a_score_even_when_nothing_moved(shadowed: ModelSet) -> None:
    state, _ = _fold(_buyer(), shadowed)
    for kind, extra in (("sales_accepted", {}), ("sales_rejected", {"reason": "no budget"})):
        step = apply_all(state, event(kind, 0.03, **extra), models=shadowed)
        taken = [o for o in step.outputs if isinstance(o, ScoreUpdated)]
        assert {o.model for o in taken} == set(shadowed.ids)
        assert {o.outcome for o in taken} == {kind}
        state = step.state


def test_a_hand_set_stage_is_not_an_outcome(shadowed: ModelSet) -> None:
    state, _ = _fold(_buyer(), shadowed)
    step = apply_all(
        state, event("stage_set", 0.03, stage=Stage.OPPORTUNITY, model=None), models=shadowed
    )
    assert all(o.outcome is None for o in step.outputs if isinstance(o, ScoreUpdated))


def test_the_lead_api_and_explain_say_which_model_is_a_shadow(shadowed: ModelSet) -> None:
    from stream.cli.explain import render
    from stream.web.lead_api import lead_json

    state, _ = _fold(_buyer(), shadowed)
    document = lead_json("lead-42", state, shadowed, T0 + timedelta(days=1))
    marks = {m["model"]: (m["shadow"], m["stage"]) for m in document["models"]}
    assert marks == {"b2b": (False, "sql"), "consumer": (False, "lead"), "b2b-next": (True, "sql")}
    text = render(document)
    assert "shadow model: would be sql" in text and "stage sql" in text


def test_rules_explain_says_a_model_is_a_shadow_one(shadowed: ModelSet) -> None:
    from stream.scoring import describe_model

    assert "Shadow model" in describe_model(shadowed.get("b2b-next"))
    assert "Shadow model" not in describe_model(shadowed.get("b2b"))


def test_accounts_never_roll_up_a_shadow_model() -> None:
    from stream.scoring import ModelFileError

    text = resources.files("stream.scoring").joinpath("default_models.yaml").read_text()
    doc = yaml.safe_load(text)
    assert doc["accounts"]["model"] == "b2b"
    next(m for m in doc["models"] if m["id"] == "b2b")["shadow"] = True
    with pytest.raises(ModelFileError, match="'b2b' is a shadow model"):
        parse_models(yaml.safe_dump(doc, sort_keys=False), source="accounts.yaml")
