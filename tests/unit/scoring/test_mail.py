"""Machine opens and clicks told by their timing (`spam.machine_timing`, `stream.scoring.mail`)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.events import EventBase, Traits
from stream.scoring import LeadState, ModelSet, apply_all, apply_batch, parse_models
from stream.scoring.mail import Timing, judge_click, judge_open, note_delivery, prune

from .conftest import event

SECOND = 1 / 86_400
TIMING = Timing(1.0, 10.0, 30.0, 2.0, 4)


def mail_event(kind: str, seconds: float, message: str = "msg-1", **fields: Any) -> EventBase:
    if kind == "email_clicked":
        fields.setdefault("url", "https://acme.example/pricing")
    return event(kind, seconds * SECOND, message_id=message, source="sendgrid", **fields)


def known_lead() -> list[EventBase]:
    return [event("identify", -1, traits=Traits(email="ada@engines.co.uk", first_name="Ada"))]


def fold(events: list[EventBase], models: ModelSet) -> tuple[LeadState | None, list[str]]:
    """The final state and the rule ids scored, in order."""
    state: LeadState | None = None
    scored: list[str] = []
    for item in events:
        step = apply_all(state, item, models=models)
        state = step.state
        scored.extend(c.rule_id for c in step.scored)
    return state, scored


def machine(state: LeadState | None, model: str = "b2b") -> tuple[int, str] | None:
    assert state is not None
    return state.models[model].machine


def test_an_open_within_a_second_of_delivery_is_a_machine_s(models: ModelSet) -> None:
    events = [*known_lead(), mail_event("email_delivered", 0), mail_event("email_opened", 0.4)]
    state, scored = fold(events, models)
    assert "email_open" not in scored
    assert machine(state) == (1, "o")
    later = mail_event("email_opened", 3600)  # the person, an hour later
    step = apply_all(state, later, models=models)
    assert "email_open" in [c.rule_id for c in step.scored]


@pytest.mark.parametrize(
    ("events", "code"),
    [
        # a click five seconds after delivery
        ([("email_delivered", 0, {}), ("email_clicked", 5, {})], "c"),
        # twenty seconds after delivery, no open before it
        ([("email_delivered", 0, {}), ("email_clicked", 20, {})], "u"),
        # another link of the message a second after the first click (ten minutes on)
        (
            [
                ("email_delivered", 0, {}),
                ("email_clicked", 600, {"url": "https://acme.example/a"}),
                ("email_clicked", 601, {"url": "https://acme.example/b"}),
            ],
            "l",
        ),
    ],
)
def test_clicks_a_scanner_makes(models: ModelSet, events: list[Any], code: str) -> None:
    made = [mail_event(kind, at, **fields) for kind, at, fields in events]
    state, scored = fold([*known_lead(), *made], models)
    assert machine(state) == (1, code)
    # every event but the delivery and the machine's click, under each of the two models
    assert scored.count("email_click") == 2 * (len(made) - 2)


def test_a_person_s_click_after_an_open_scores(models: ModelSet) -> None:
    events = [
        *known_lead(),
        mail_event("email_delivered", 0),
        mail_event("email_opened", 15),
        mail_event("email_clicked", 20),
        mail_event("email_clicked", 40, url="https://acme.example/other"),
    ]
    state, scored = fold(events, models)
    assert scored.count("email_click") == 2 * 2  # two clicks, two models
    assert scored.count("email_open") == 2
    assert machine(state) is None


def test_a_marked_event_counts_as_the_ingest_s_and_is_no_person_s_open(models: ModelSet) -> None:
    events = [
        *known_lead(),
        mail_event("email_delivered", 0),
        mail_event("email_opened", 12, machine="vendor flag: sg_machine_open"),
        mail_event("email_clicked", 20),  # no person opened it first
    ]
    state, scored = fold(events, models)
    assert "email_open" not in scored and "email_click" not in scored
    assert machine(state) == (2, "u")


def test_a_delivery_does_not_make_a_lead(models: ModelSet) -> None:
    step = apply_all(None, mail_event("email_delivered", 0), models=models)
    assert step.state is None and not step.outputs


def test_the_memory_is_stored_only_while_it_can_decide(models: ModelSet) -> None:
    state, _ = fold([*known_lead(), mail_event("email_delivered", 0)], models)
    assert state is not None
    assert "ml" in state.to_dict()["m"]["b2b"]
    page = event("page_viewed", 120 * SECOND, path="/pricing")
    after = apply_all(state, page, models=models).state
    assert after is not None
    assert "ml" not in after.to_dict()["m"]["b2b"]


def test_a_state_read_back_judges_as_the_one_in_memory(models: ModelSet) -> None:
    """Late clicks after the lead's time moved on: the stored form forgets exactly what the
    judgement no longer reads, so both give the same outcome."""
    events = [
        *known_lead(),
        mail_event("email_delivered", 0),
        event("page_viewed", 40 * SECOND, path="/"),
        mail_event("email_clicked", 5),  # late, by event time inside click_within
        mail_event("email_delivered", 100, message="msg-2"),
        mail_event("email_clicked", 103, message="msg-2"),
    ]
    memory: LeadState | None = None
    stored: LeadState | None = None
    for item in events:
        memory = apply_all(memory, item, models=models).state
        step = apply_all(stored, item, models=models)
        stored = LeadState.from_dict(step.state.to_dict(), models) if step.state else None
    assert memory == stored
    assert machine(memory) == (1, "c")


def test_batch_equals_the_fold(models: ModelSet) -> None:
    events = [
        *known_lead(),
        mail_event("email_delivered", 0),
        mail_event("email_opened", 0.5),
        mail_event("email_clicked", 3),
        mail_event("email_clicked", 3.5, url="https://acme.example/b"),
        mail_event("email_opened", 400),
        mail_event("email_clicked", 420),
    ]
    folded, _ = fold(events, models)
    batched = apply_batch(None, events, models=models).state
    assert batched == folded


MODEL = """
format: 1
models:
  - id: m
    version: "1"
    decay: {email: 14d}
    engagement:
      - {id: open, event: email_opened, points: 1, group: email}
      - {id: delivered_open, event: email_opened, points: 0.5, group: email, machine: true}
    grades: {fit: [15, 8, 0], engagement: [60, 30, 10]}
    spam: {ignore_machine_events: IGNORE}
"""


def test_a_rule_can_score_machine_events_and_the_judgement_can_be_off() -> None:
    events = [
        *known_lead(),
        mail_event("email_delivered", 0),
        mail_event("email_opened", 0.2),
    ]
    on = parse_models(MODEL.replace("IGNORE", "true"))
    _, scored = fold(events, on)
    assert scored == ["delivered_open"]
    off = parse_models(MODEL.replace("IGNORE", "false"))
    _, scored = fold(events, off)
    assert scored == ["open", "delivered_open"]


def test_timing_can_be_turned_off_per_test() -> None:
    text = MODEL.replace("IGNORE", "true").replace(
        "spam: {ignore_machine_events: true}",
        "spam: {ignore_machine_events: true, machine_timing: {open_within: null}}",
    )
    events = [*known_lead(), mail_event("email_delivered", 0), mail_event("email_opened", 0.2)]
    _, scored = fold(events, parse_models(text))
    assert scored == ["open", "delivered_open"]


def test_memory_functions() -> None:
    mail = note_delivery((), TIMING, "m1", 100.0, sent=True)
    mail = note_delivery(mail, TIMING, "m1", 103.0, sent=False)  # the delivery replaces sending
    assert mail[0].delivered == 103.0
    assert note_delivery(mail, TIMING, "m1", 90.0, sent=True) == mail  # a late "sent" is ignored
    mail, reason = judge_open(mail, TIMING, "m1", 103.5, machine=False)
    assert reason == "o" and mail[0].opened is None
    mail, reason = judge_open(mail, TIMING, "m1", 110.0, machine=False)
    assert reason is None and mail[0].opened == 110.0
    mail, reason = judge_click(mail, TIMING, "m1", "L1", 140.0)
    assert reason is None
    mail, reason = judge_click(mail, TIMING, "m1", "L2", 141.0)
    assert reason == "l"
    mail, reason = judge_click(mail, TIMING, "m1", "L2", 141.5)  # the same link again
    assert reason is None
    assert prune(mail, TIMING, 142.0) == mail  # its next-link test is still open
    assert prune(mail, TIMING, 200.0) == ()
    many = ()
    for index in range(6):
        many = note_delivery(many, TIMING, f"m{index}", float(index), sent=False)
    assert [e.message for e in many] == ["m2", "m3", "m4", "m5"]


def test_clicks_before_any_delivery_still_catch_a_second_link(models: ModelSet) -> None:
    events = [
        *known_lead(),
        mail_event("email_clicked", 0, url="https://acme.example/a"),
        mail_event("email_clicked", 0.3, url="https://acme.example/b"),
        mail_event("email_clicked", 0.6, url="https://acme.example/c"),
    ]
    state, scored = fold(events, models)
    assert scored.count("email_click") == 2  # the first click, under each model
    assert machine(state) == (2, "l")


def test_lead_state_counts_are_merged(models: ModelSet) -> None:
    from stream.scoring import merge_lead_states

    a, _ = fold(
        [*known_lead(), mail_event("email_delivered", 0), mail_event("email_opened", 0.1)], models
    )
    other = [
        event("identify", -1, lead_id="lead-b", traits=Traits(email="b@x.example")),
        event("email_delivered", 0, lead_id="lead-b", message_id="m-b", source="sendgrid"),
        event("email_opened", 0.1 * SECOND, lead_id="lead-b", message_id="m-b", source="sendgrid"),
    ]
    b, _ = fold(other, models)
    assert a is not None and b is not None
    merged = merge_lead_states(a, b, models)
    assert merged.models["b2b"].machine == (2, "o")
    assert {e.message for e in merged.models["b2b"].mail} == {
        e.message for s in (a, b) for e in s.models["b2b"].mail
    }
