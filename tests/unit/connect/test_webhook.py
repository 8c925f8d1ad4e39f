"""The webhook destination against a local receiver: signatures (checked with the
`standardwebhooks` library), the verdict of every kind of answer, filters and endpoint files."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
import pytest
from crm_fakes.changes import make_account_change
from standardwebhooks import Webhook

from schemas.outputs import LeadErasedRecord
from schemas.stages import AccountStage
from stream.bench.connect import sample_changes
from stream.bench.receiver import Answer, Receiver
from stream.connect.destination import Change, Erasure, Verdict, retry_after_seconds
from stream.connect.webhook import (
    Endpoint,
    WebhookDestination,
    load_endpoints,
    make_endpoint,
    parse_secret,
    sign,
)
from stream.errors import ConfigurationError

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    # The vector of the reference library's test_sign_function
    # (github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py).
    key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with whsec_"),
        ("whsec_not base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
    ],
)
def test_a_bad_secret_is_refused_with_what_is_wrong(secret: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_secret(secret)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == pytest.approx(90.0)


# ----------------------------------------------------------------------------- over HTTP


def _verifier(secret: str) -> Callable[[bytes, dict[str, str]], None]:
    return Webhook(secret).verify


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    served = Receiver(verify=_verifier(SECRET))
    await served.start()
    yield served
    await served.stop()


def _changes(count: int = 3, leads: int = 3) -> list[Change]:
    return [
        Change(record, "t", 0, offset) for offset, record in enumerate(sample_changes(count, leads))
    ]


async def test_a_change_arrives_signed_as_the_library_verifies(receiver: Receiver) -> None:
    destination = WebhookDestination([make_endpoint(receiver.url, SECRET)])
    try:
        changes = _changes(3)
        outcomes = await destination.deliver(changes)
    finally:
        await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 3
    assert receiver.rejected == 0
    assert [d.msg_id for d in receiver.deliveries] == [c.key for c in changes]
    first = receiver.deliveries[0]
    assert first.kind == "lead.stage_changed"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-signature"].startswith("v1,")


async def test_a_receiver_with_another_secret_refuses_it(receiver: Receiver) -> None:
    destination = WebhookDestination([make_endpoint(receiver.url, OTHER_SECRET)])
    try:
        (outcome,) = await destination.deliver(_changes(1, 1))
    finally:
        await destination.aclose()
    assert receiver.rejected == 1
    assert outcome.verdict is Verdict.PERMANENT  # 401: fix the secret, then redrive
    assert outcome.exchange is not None and outcome.exchange.status == 401
    assert outcome.exchange.request_headers["webhook-signature"] == "***"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (301, Verdict.PERMANENT),
        (400, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (408, Verdict.TRANSIENT),
        (409, Verdict.TRANSIENT),
        (410, Verdict.PERMANENT),
        (422, Verdict.PERMANENT),
        (429, Verdict.TRANSIENT),
        (500, Verdict.TRANSIENT),
        (502, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
    ],
)
async def test_each_answer_gets_its_verdict(status: int, verdict: Verdict) -> None:
    served = Receiver(respond=lambda _: Answer(status, {"location": "https://elsewhere.example/"}))
    await served.start()
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    try:
        (outcome,) = await destination.deliver(_changes(1, 1))
    finally:
        await destination.aclose()
        await served.stop()
    assert outcome.verdict is verdict
    if verdict is not Verdict.DELIVERED:
        assert outcome.exchange is not None and outcome.exchange.status == status
        assert str(status) in outcome.reason


async def test_429_passes_on_retry_after() -> None:
    served = Receiver(respond=lambda _: Answer(429, {"retry-after": "7"}, '{"error":"slow down"}'))
    await served.start()
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    try:
        (outcome,) = await destination.deliver(_changes(1, 1))
    finally:
        await destination.aclose()
        await served.stop()
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.retry_after == 7.0
    assert outcome.exchange is not None and "slow down" in outcome.exchange.response_body


async def test_no_answer_is_transient_a_timeout_and_a_refused_connection() -> None:
    slow = Receiver(delay_s=2.0)
    await slow.start()
    destination = WebhookDestination([make_endpoint(slow.url, SECRET)], timeout_s=0.3)
    try:
        (timed_out,) = await destination.deliver(_changes(1, 1))
    finally:
        await destination.aclose()
        await slow.stop()
    assert timed_out.verdict is Verdict.TRANSIENT
    assert "timed out" in timed_out.reason
    assert timed_out.exchange is not None and timed_out.exchange.status is None

    destination = WebhookDestination([make_endpoint(slow.url, SECRET)])  # stopped: refused
    try:
        (refused,) = await destination.deliver(_changes(1, 1))
    finally:
        await destination.aclose()
    assert refused.verdict is Verdict.TRANSIENT
    assert "no answer" in refused.reason


async def test_filters_pick_endpoints_and_a_change_nobody_wants_is_skipped() -> None:
    mql_only, everything = Receiver(), Receiver()
    await mql_only.start()
    await everything.start()
    destination = WebhookDestination(
        [
            make_endpoint(mql_only.url, SECRET, stages=["mql"]),
            make_endpoint(everything.url, SECRET, models=["default"]),
        ]
    )
    other_model = Change(sample_changes(1, 1)[0].model_copy(update={"model": "b2c"}), "t", 0, 9)
    try:
        changes = _changes(6, 1)  # one lead: subscriber, lead, mql, sql, opportunity, customer
        outcomes = await destination.deliver([*changes, other_model])
    finally:
        await destination.aclose()
        await mql_only.stop()
        await everything.stop()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 6 + [Verdict.SKIPPED]
    assert [d.to_stage for d in mql_only.deliveries] == ["mql"]
    assert len(everything.deliveries) == 6


async def test_a_retry_goes_only_to_the_endpoints_that_did_not_take_it() -> None:
    answers = iter([503, 200])
    good = Receiver()
    flaky = Receiver(respond=lambda _: Answer(next(answers)))
    await good.start()
    await flaky.start()
    destination = WebhookDestination(
        [make_endpoint(good.url, SECRET), make_endpoint(flaky.url, SECRET)]
    )
    try:
        changes = _changes(1, 1)
        (first,) = await destination.deliver(changes)
        (second,) = await destination.deliver(changes)
    finally:
        await destination.aclose()
        await good.stop()
        await flaky.stop()
    assert (first.verdict, second.verdict) == (Verdict.TRANSIENT, Verdict.DELIVERED)
    assert good.requests == 1
    assert flaky.requests == 2


async def test_an_erasure_is_posted_as_lead_erased_to_endpoints_of_its_model(
    receiver: Receiver,
) -> None:
    destination = WebhookDestination([make_endpoint(receiver.url, SECRET, models=["default"])])
    record = LeadErasedRecord.build(
        lead_id="lead-9",
        model="default",
        triggering_event_id="evt-9",
        occurred_at=datetime.now(UTC),
    )
    other = LeadErasedRecord.build(
        lead_id="lead-9", model="b2c", triggering_event_id="evt-9", occurred_at=datetime.now(UTC)
    )
    try:
        outcomes = await destination.erase([Erasure(record, "t", 0, 1), Erasure(other, "t", 0, 2)])
    finally:
        await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.SKIPPED]
    (delivery,) = receiver.deliveries
    assert (delivery.kind, delivery.msg_id, delivery.lead_id) == (
        "lead.erased",
        str(record.event_id),
        "lead-9",
    )


async def test_the_body_is_type_timestamp_and_the_record() -> None:
    bodies: list[bytes] = []
    served = Receiver(verify=lambda body, _: bodies.append(body))
    await served.start()
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    try:
        (change,) = _changes(1, 1)
        await destination.deliver([change])
    finally:
        await destination.aclose()
        await served.stop()
    document = orjson.loads(bodies[0])
    assert document["type"] == "lead.stage_changed"
    assert document["timestamp"] == change.record.occurred_at.isoformat().replace("+00:00", "Z")
    assert document["data"]["event_id"] == change.key
    assert document["data"]["to_stage"] == change.record.to_stage.value


# ----------------------------------------------------------------------------- endpoint files


def test_an_endpoints_file_gives_each_endpoint_its_secret_and_filters(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        "  - url: https://crm.example.com/hooks\n"
        f"    secret: {SECRET}\n"
        "    stages: [mql, sql]\n"
        "  - url: https://nurture.example.com/in\n"
        "    secret_env: NURTURE_SECRET\n"
        "    models: [b2c]\n"
    )
    first, second = load_endpoints(path, {"NURTURE_SECRET": OTHER_SECRET})
    assert first == Endpoint(
        "https://crm.example.com/hooks", b"k" * 32, frozenset(), frozenset({"mql", "sql"})
    )
    assert second.key == b"o" * 32 and second.models == frozenset({"b2c"})
    assert "k" * 32 not in repr(first)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("endpoints: []\n", "endpoints"),
        ("endpoints:\n  - url: ftp://x\n    secret: s\n", "endpoints.0.url"),
        ("endpoints:\n  - url: https://x.example\n", "exactly one of secret and secret_env"),
        ("endpoints:\n  - url: https://x.example\n    secret_env: NOPE\n", "NOPE is unset"),
        (
            f"endpoints:\n  - url: https://x.example\n    secret: {SECRET}\n    stages: [mq]\n",
            "stages",
        ),
        (
            f"endpoints:\n  - url: https://x.example\n    secret: {SECRET}\n    colour: red\n",
            "colour",
        ),
        ("endpoints: [\n", "not valid YAML"),
    ],
)
def test_a_bad_endpoints_file_says_which_entry_and_why(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        load_endpoints(path, {})


def test_an_unknown_stage_on_the_command_line_lists_the_stages() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown stage.*mql"):
        make_endpoint("https://x.example", SECRET, stages=["qualified"])


# ----------------------------------------------------------------------------- account stages


async def test_an_account_stage_change_arrives_as_its_own_signed_event(
    receiver: Receiver,
) -> None:
    bodies: list[bytes] = []
    verify = _verifier(SECRET)
    served = Receiver(verify=lambda body, headers: (verify(body, headers), bodies.append(body)))
    await served.start()
    destination = WebhookDestination([make_endpoint(served.url, SECRET)])
    change = make_account_change("acme.example", AccountStage.MQA, model="default")
    try:
        (outcome,) = await destination.deliver_accounts([change])
    finally:
        await destination.aclose()
        await served.stop()
    assert outcome.verdict is Verdict.DELIVERED and served.rejected == 0
    (delivery,) = served.deliveries
    assert (delivery.kind, delivery.msg_id, delivery.account_id, delivery.to_stage) == (
        "account.stage_changed",
        str(change.record.event_id),
        "acme.example",
        "mqa",
    )
    document = orjson.loads(bodies[0])
    assert document["data"] == orjson.loads(change.record.model_dump_json())


async def test_event_type_model_and_stage_filters_apply_to_account_changes() -> None:
    leads_only, mqa_only, everything = Receiver(), Receiver(), Receiver()
    for served in (leads_only, mqa_only, everything):
        await served.start()
    destination = WebhookDestination(
        [
            make_endpoint(leads_only.url, SECRET, events=["lead.stage_changed"]),
            make_endpoint(mqa_only.url, SECRET, stages=["mqa"]),
            make_endpoint(everything.url, SECRET, models=["default"]),
        ]
    )
    mqa = make_account_change("acme.example", AccountStage.MQA, model="default")
    engaged = make_account_change("globex.example", AccountStage.ENGAGED, model="default")
    other_model = make_account_change("initech.example", AccountStage.MQA, model="b2c")
    erased = LeadErasedRecord.build(
        lead_id="lead-9", model="default", triggering_event_id="e", occurred_at=datetime.now(UTC)
    )
    try:
        accounts = await destination.deliver_accounts([mqa, engaged, other_model])
        leads = await destination.deliver(_changes(1, 1))
        erasures = await destination.erase([Erasure(erased, "t", 0, 1)])
    finally:
        await destination.aclose()
        for served in (leads_only, mqa_only, everything):
            await served.stop()
    assert [o.verdict for o in [*accounts, *leads, *erasures]] == [Verdict.DELIVERED] * 5
    assert [(d.kind, d.lead_id) for d in leads_only.deliveries] == [
        ("lead.stage_changed", "lead-0"),
        ("lead.erased", "lead-9"),
    ]
    # the changes of one call go at once: compare what arrived, not in which order
    assert sorted((d.kind, d.account_id or d.lead_id) for d in mqa_only.deliveries) == [
        ("account.stage_changed", "acme.example"),
        ("account.stage_changed", "initech.example"),
        ("lead.erased", "lead-9"),
    ]
    assert sorted(d.account_id or d.lead_id for d in everything.deliveries) == [
        "acme.example",
        "globex.example",
        "lead-0",
        "lead-9",
    ]


async def test_an_account_change_no_endpoint_wants_is_skipped() -> None:
    destination = WebhookDestination(
        [make_endpoint("http://127.0.0.1:9/hooks", SECRET, events=["lead.stage_changed"])]
    )
    try:
        (outcome,) = await destination.deliver_accounts([make_account_change()])
    finally:
        await destination.aclose()
    assert outcome.verdict is Verdict.SKIPPED


def test_an_endpoints_file_takes_event_types_and_account_stages(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        "  - url: https://abm.example.com/in\n"
        f"    secret: {SECRET}\n"
        "    events: [account.stage_changed]\n"
        "    stages: [mqa, customer]\n"
    )
    (endpoint,) = load_endpoints(path, {})
    assert endpoint.events == frozenset({"account.stage_changed"})
    assert endpoint.stages == frozenset({"mqa", "customer"})
    path.write_text(
        f"endpoints:\n  - url: https://x.example\n    secret: {SECRET}\n"
        "    events: [account.changed]\n"
    )
    with pytest.raises(ConfigurationError, match=r"endpoints.0: unknown event type.*account"):
        load_endpoints(path, {})
