"""Lead state: copy semantics, the compact stored form, model changes and bad documents."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from schemas.events import Traits
from stream.scoring import (
    LeadState,
    ModelSet,
    ModelState,
    StateFormatError,
    apply,
    apply_all,
    parse_models,
    score_at,
)
from stream.scoring.state import SEEN_IDS, event_hash, seen_add, seen_contains, seen_union


def _typical(ev):  # type: ignore[no-untyped-def]
    """Three weeks of a typical engaged lead: identified, enriched, reading and opening."""
    events = [
        ev("identify", 0, traits=Traits(email="ada@engines.co.uk", first_name="Ada")),
        ev(
            "profile_updated",
            0.002,
            traits=Traits(industry="software", company_size=120, job_title="Engineer", age=34),
        ),
    ]
    paths = ["/", "/features", "/pricing", "/blog/x", "/integrations", "/pricing", "/docs"]
    events += [ev("page_viewed", 2.5 * i + 0.01, path=p) for i, p in enumerate(paths)]
    events += [ev("email_opened", 3 * i + 1.1) for i in range(4)]
    events.append(ev("file_downloaded", 9))
    return sorted(events, key=lambda e: e.occurred_at)


def test_apply_does_not_change_the_state_it_is_given(ev, run, b2b) -> None:
    state, _ = run(_typical(ev), b2b)
    assert state is not None
    before = state.to_dict()
    for kind in ("page_viewed", "profile_updated", "email_unsubscribed", "sales_rejected"):
        apply(state, ev(kind, 30), model=b2b)
    assert state.to_dict() == before


@pytest.mark.parametrize(("count", "limit"), [(5, 350), (14, 450)])
def test_a_typical_lead_is_stored_in_a_few_hundred_bytes(
    ev, models: ModelSet, count: int, limit: int
) -> None:
    """A new lead with a full profile (5 events) in at most 350 bytes per model, an engaged
    one (14 events, an MQL) in at most 450; plus 8 bytes per remembered event id, and at most
    160 bytes for its account link (domain, job title, firmographics)."""
    lead: LeadState | None = None
    events = _typical(ev)[:count]
    for item in events:
        lead = apply_all(lead, item, models=models).state
    assert lead is not None
    document = lead.to_dict()
    text = json.dumps(document, separators=(",", ":"))
    per_model = {m: len(json.dumps(s, separators=(",", ":"))) for m, s in document["m"].items()}
    # The ids of the events, 8 characters each, are shared by the models.
    assert len(document["i"]) == len(events) * 8
    assert all(size <= limit for size in per_model.values()), per_model
    link = len(json.dumps(document["ac"], separators=(",", ":"))) + 6
    assert link <= 160, document["ac"]
    assert len(text) <= 2 * limit + len(document["i"]) + 30 + link
    assert LeadState.from_dict(json.loads(text), models).to_dict() == document


def test_the_stored_form_uses_short_keys_and_relative_times(ev, run, b2b) -> None:
    state, _ = run(_typical(ev), b2b)
    assert state is not None
    document = state.to_dict()
    assert set(document) <= {"a", "s", "h", "f", "ft", "e", "c", "w", "p", "g", "x", "k", "n"} | {
        "o",
        "i",
    }
    assert all(len(key) == 4 for key in document["e"])  # rule ids as 4-character codes
    assert document["h"][0] == [None, "lead", document["a"] - state.history[0].at]


def test_a_round_trip_keeps_scores_and_behaviour(ev, run, b2b) -> None:
    state, _ = run(_typical(ev), b2b)
    assert state is not None
    loaded = ModelState.from_dict(json.loads(json.dumps(state.to_dict())), b2b)
    now = loaded.history[0].at
    later = ev("demo_requested", 12)
    a, b = apply(state, later, model=b2b), apply(loaded, later, model=b2b)
    assert a.state is not None and b.state is not None
    assert [type(o) for o in a.outputs] == [type(o) for o in b.outputs]
    when = later.occurred_at + timedelta(days=3)
    assert score_at(a.state, when).total == pytest.approx(score_at(b.state, when).total, rel=1e-12)
    assert a.state.stage is b.state.stage
    assert now == state.history[0].at
    # The replay guard survives too.
    assert apply(loaded, _typical(ev)[0], model=b2b).state is not loaded  # new id: applied
    first = apply(None, later, model=b2b).state
    assert first is not None
    reloaded = ModelState.from_dict(first.to_dict(), b2b)
    assert apply(reloaded, later, model=b2b).outputs == ()


def test_a_changed_model_keeps_what_it_still_knows(ev, run, b2b) -> None:
    state, _ = run(_typical(ev), b2b)
    assert state is not None
    edited = parse_models(
        """
format: 1
models:
  - id: b2b
    version: "2"
    decay: {web: 30d}
    fit:
      - {id: target_industry, field: industry, in: [software], points: 8}
    engagement:
      - {id: visit, event: page_viewed, points: 3, group: web}
      - {id: webinar, event: webinar_attended, points: 12, group: web}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
"""
    ).get("b2b")
    moved = ModelState.from_dict(state.to_dict(), edited)
    assert set(moved.eng) == {"visit"}
    assert moved.eng["visit"][0] == pytest.approx(
        state.eng["visit"][0] * 2 ** (-(moved.as_of - state.eng["visit"][1]) / (30 * 86_400)),
        rel=1e-11,
    )
    assert set(moved.fit) == {"target_industry"}
    assert moved.fit["target_industry"][0] == 5  # as earned; refreshed by the next profile
    step = apply(moved, ev("webinar_attended", 30), model=edited)
    assert step.state is not None and step.outputs[-1].model_version == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"v": 2, "m": {}},
        {"v": 1},
        {"v": 1, "m": {"b2b": {"a": "yesterday", "s": "lead"}}},
        {"v": 1, "m": {"b2b": {"a": 1.0, "s": "promoted"}}},
        {"v": 1, "m": {}, "i": "not base64!"},
        {"v": 1, "m": {"b2b": {"a": 1.0, "s": "lead", "e": [1, 2]}}},
    ],
)
def test_a_document_that_is_not_a_state_is_reported(models: ModelSet, document: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(StateFormatError):
        LeadState.from_dict(document, models)


def test_states_of_models_no_longer_in_the_file_are_dropped(ev, models: ModelSet) -> None:
    lead = apply_all(None, ev("page_viewed", 0, path="/"), models=models).state
    assert lead is not None
    document = lead.to_dict()
    document["m"]["retired"] = {"a": 1.0, "s": "lead"}
    assert set(LeadState.from_dict(document, models).models) == {"b2b", "consumer"}


def test_the_replay_guard_remembers_the_latest_ids() -> None:
    seen = ""
    hashes = [event_hash(f"evt-{i}") for i in range(SEEN_IDS + 5)]
    for digest in hashes:
        seen = seen_add(seen, digest)
    assert len(seen) == 8 * SEEN_IDS
    assert not any(seen_contains(seen, d) for d in hashes[:5])
    assert all(seen_contains(seen, d) for d in hashes[5:])
    # Only whole, aligned hashes match.
    assert not seen_contains(seen, seen[4:12])
    assert seen_union(seen[:80], seen[40:120]) == seen[:120]
    assert len(event_hash("x")) == 8 and event_hash("x") == event_hash("x")
