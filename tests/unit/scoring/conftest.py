"""Fixtures of the scoring-core tests: the default models, an event factory and a fold."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.events import EventBase
from schemas.examples import make_event
from stream.model_files import load_default_models
from stream.scoring import ModelSet, ModelState, Output, ScoringModel, apply, parse_models

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
"""A Monday morning: the start of every scenario."""

LEAD = "lead-42"

_ids = itertools.count()

EventFactory = Callable[..., EventBase]


def event(kind: str, days: float = 0.0, **fields: Any) -> EventBase:
    """An event of `kind` for `LEAD`, `days` after `T0`, with a fresh id.

    Page views take `path=` and get a matching URL; other fields override the contract's example.
    """
    fields.setdefault("lead_id", LEAD)
    fields.setdefault("event_id", f"evt-{next(_ids)}")
    fields.setdefault("occurred_at", T0 + timedelta(days=days))
    if kind == "page_viewed" and "path" in fields:
        fields.setdefault("url", f"https://acme.example{fields['path']}")
    if kind in {"page_viewed", "clicked", "file_downloaded", "video_viewed", "form_submitted"}:
        fields.setdefault("anonymous_id", None)
    return make_event(kind, **fields)


def fold(
    events: Iterable[EventBase], model: ScoringModel, state: ModelState | None = None
) -> tuple[ModelState | None, list[Output]]:
    """Apply `events` in order; the final state and every output."""
    outputs: list[Output] = []
    for item in events:
        step = apply(state, item, model=model)
        state = step.state
        outputs.extend(step.outputs)
    return state, outputs


@pytest.fixture(scope="session")
def models() -> ModelSet:
    return load_default_models()


@pytest.fixture(scope="session")
def b2b(models: ModelSet) -> ScoringModel:
    return models.get("b2b")


@pytest.fixture(scope="session")
def consumer(models: ModelSet) -> ScoringModel:
    return models.get("consumer")


PLAIN_MODEL = """
format: 1
models:
  - id: plain
    version: "1"
    decay: {web: 30d, email: 14d, social: 7d, flat: never, negative: never}
    fit:
      - {id: industry, field: industry, in: [software, saas], points: 5}
      - {id: size, field: company_size, range: {gt: 50}, points: 3}
      - {id: age, field: age, per_unit_above: 25, points: 1, max_points: 20}
      - {id: free_mail, field: email_domain, in: [gmail.com], points: -10}
    engagement:
      - {id: visit, event: page_viewed, points: 2, group: web}
      - {id: pricing, event: page_viewed, where: {path: "/pricing*"}, points: 10, group: web}
      - {id: open, event: email_opened, points: 1, group: email}
      - {id: click, event: email_clicked, points: 3, group: email}
      - {id: share, event: social_shared, points: 3, group: social}
      - {id: webinar, event: webinar_attended, points: 10, group: flat}
      - {id: demo, event: demo_requested, points: 30, group: web, hand_raise: true}
      - {id: unsubscribe, event: email_unsubscribed, points: -10, group: negative}
    stages:
      mql: {promote_at: 40, demote_below: 25}
      sql: {promote_at: 90, min_fit: 5}
      hand_raise: {min_fit: 5}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
    spam: {burst: null}
    outputs: {min_change: 0, top_rules: 3}
"""
"""A model without caps or burst detection: its scores do not depend on arrival order."""


@pytest.fixture(scope="session")
def plain() -> ScoringModel:
    return parse_models(PLAIN_MODEL, source="plain.yaml").get("plain")


@pytest.fixture(scope="session")
def ev() -> EventFactory:
    """`ev(kind, days, **fields)`: see `event`."""
    return event


@pytest.fixture(scope="session")
def run() -> Callable[..., tuple[ModelState | None, list[Output]]]:
    """`run(events, model, state=None)`: see `fold`."""
    return fold
