"""The HubSpot destination against a local server enforcing HubSpot's documented contract."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from crm_fakes.base import Fault
from crm_fakes.changes import make_account_change, make_change
from crm_fakes.hubspot import TOKEN, HubspotFake

from schemas.stages import AccountStage, Stage
from stream.connect.destination import Verdict, requests_for
from stream.connect.hubspot import HubspotDestination
from stream.connect.mapping import parse_mapping


def _destination(fake: HubspotFake, mapping: str = "", **overrides: Any) -> HubspotDestination:
    options: dict[str, Any] = {
        "access_token": TOKEN,
        "mapping": parse_mapping(mapping).hubspot,
        "api_url": fake.base_url,
        "timeout": 0.5,
    }
    return HubspotDestination(**{**options, **overrides})


def _inputs(request: dict[str, Any]) -> list[dict[str, Any]]:
    return list(orjson.loads(request["body"])["inputs"])


async def test_a_batch_upserts_each_contact_by_email(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake)
    changes = [
        make_change("ada@example.com", Stage.MQL, Stage.LEAD, total=55.0, grade="B2"),
        make_change("email:Grace@Example.com", Stage.SQL, Stage.MQL, total=80.0, grade="A1"),
    ]
    outcomes = await destination.deliver(changes)
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.DELIVERED]
    (request,) = hubspot_fake.requests
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert [(i["idProperty"], i["id"], i["objectWriteTraceId"]) for i in _inputs(request)] == [
        ("email", "ada@example.com", changes[0].key),
        ("email", "grace@example.com", changes[1].key),
    ]
    ada = hubspot_fake.contact("email", "ada@example.com")
    assert ada == {
        "email": "ada@example.com",
        "lifecyclestage": "marketingqualifiedlead",
        "hs_lead_status": "OPEN",
        "leadstream_score": "55.0",
        "leadstream_grade": "B2",
        "leadstream_stage": "mql",
    }
    grace = hubspot_fake.contact("email", "grace@example.com")
    assert grace is not None and grace["lifecyclestage"] == "salesqualifiedlead"
    assert outcomes[0].exchange is None  # a delivered change keeps no copy of the exchange


async def test_a_lead_id_that_is_no_address_is_refused_without_a_call(
    hubspot_fake: HubspotFake,
) -> None:
    destination = _destination(hubspot_fake)
    outcomes = await destination.deliver([make_change("crm-0042"), make_change("bo@example.com")])
    await destination.aclose()
    assert outcomes[0].verdict is Verdict.PERMANENT
    assert "not an email address" in outcomes[0].reason
    assert "hubspot.id_property" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.DELIVERED
    assert [i["id"] for i in _inputs(hubspot_fake.requests[0])] == ["bo@example.com"]


async def test_a_unique_property_holds_lead_ids(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake, "hubspot: {id_property: leadstream_lead_id}")
    outcomes = await destination.deliver([make_change("crm-0042")])
    await destination.aclose()
    assert outcomes[0].verdict is Verdict.DELIVERED
    contact = hubspot_fake.contact("leadstream_lead_id", "crm-0042")
    assert contact is not None and contact["lifecyclestage"] == "marketingqualifiedlead"


async def test_a_recycled_lead_is_cleared_then_set(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake)
    await destination.deliver([make_change("cy@example.com", Stage.SQL, Stage.MQL)])
    outcomes = await destination.deliver([make_change("cy@example.com", Stage.RECYCLED, Stage.SQL)])
    await destination.aclose()
    assert outcomes[0].verdict is Verdict.DELIVERED
    clear, set_ = (_inputs(r)[0]["properties"] for r in hubspot_fake.requests[1:])
    assert clear == {"lifecyclestage": ""}
    assert set_["lifecyclestage"] == "lead"
    contact = hubspot_fake.contact("email", "cy@example.com")
    assert contact is not None
    assert (contact["lifecyclestage"], contact["hs_lead_status"]) == ("lead", "BAD_TIMING")


async def test_the_rate_limit_counts_the_requests_a_batch_really_makes(
    hubspot_fake: HubspotFake,
) -> None:
    destination = _destination(hubspot_fake)
    forward = [make_change(f"p{n}@example.com", Stage.SQL, Stage.MQL) for n in range(3)]
    mixed = [
        make_change("p0@example.com", Stage.RECYCLED, Stage.SQL),
        make_change("p1@example.com", Stage.OPPORTUNITY, Stage.SQL),
    ]
    counted = []
    for batch in (forward, mixed):
        counted.append(requests_for(destination, batch))
        before = len(hubspot_fake.requests)
        outcomes = await destination.deliver(batch)
        assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
        assert len(hubspot_fake.requests) - before == counted[-1]
    await destination.aclose()
    assert counted == [1, 2]  # the backwards move's clear is a request of its own


async def test_the_fake_ignores_a_backwards_move_that_was_not_cleared(
    hubspot_fake: HubspotFake,
) -> None:
    """The contract the clear-then-set path exists for: HubSpot keeps the later stage."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        url = f"{hubspot_fake.base_url}/crm/v3/objects/contacts/batch/upsert"
        for stage in ("salesqualifiedlead", "lead"):
            item = {"idProperty": "email", "id": "dee@example.com"}
            answer = await client.post(
                url, json={"inputs": [{**item, "properties": {"lifecyclestage": stage}}]}
            )
            assert answer.status_code == 200
    contact = hubspot_fake.contact("email", "dee@example.com")
    assert contact is not None and contact["lifecyclestage"] == "salesqualifiedlead"


async def test_a_forward_move_is_one_call(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake)
    await destination.deliver([make_change("ed@example.com", Stage.OPPORTUNITY, Stage.SQL)])
    await destination.aclose()
    assert len(hubspot_fake.requests) == 1


async def test_batches_hold_at_most_100_contacts(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake)
    assert destination.max_batch == 100
    changes = [make_change(f"p{n}@example.com") for n in range(100)]
    outcomes = await destination.deliver(changes)
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    assert len(hubspot_fake.requests) == 1 and len(_inputs(hubspot_fake.requests[0])) == 100
    with pytest.raises(ValueError, match="at most 100"):
        await destination.deliver([*changes, make_change("p100@example.com")])
    await destination.aclose()
    # The contract itself refuses 101 inputs.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        inputs = [
            {"idProperty": "email", "id": f"q{n}@example.com", "properties": {}} for n in range(101)
        ]
        answer = await client.post(
            f"{hubspot_fake.base_url}/crm/v3/objects/contacts/batch/upsert",
            json={"inputs": inputs},
        )
    assert answer.status_code == 400 and "exceeds the limit of 100" in answer.text


async def test_refused_inputs_fail_alone(hubspot_fake: HubspotFake) -> None:
    mapping = "hubspot: {models: {b2b: {}, consumer: {lifecyclestage: {mql: '1234567'}}}}"
    destination = _destination(hubspot_fake, mapping)
    changes = [
        make_change("fy@example.com"),
        make_change("gus@example.com", model="consumer"),
        make_change("hal@example.com", model="unmapped"),
    ]
    outcomes = await destination.deliver(changes)
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.PERMANENT,
        Verdict.SKIPPED,
    ]
    assert "1234567 was not one of the allowed options" in outcomes[1].reason
    assert outcomes[1].exchange is not None and outcomes[1].exchange.status == 207
    assert "'unmapped' is not in the mapping's hubspot.models" in outcomes[2].reason
    assert hubspot_fake.contact("email", "gus@example.com") is None
    assert len(_inputs(hubspot_fake.requests[0])) == 2


async def test_a_wrong_token_is_permanent_with_the_reason(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake, access_token="pat-na1-revoked")
    (outcome,) = await destination.deliver([make_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "HubSpot refused the access token (INVALID_AUTHENTICATION)" in outcome.reason
    assert outcome.exchange is not None
    assert outcome.exchange.request_headers["authorization"] == "***"
    assert "pat-na1-revoked" not in str(outcome.exchange)


async def test_an_expired_token_is_named(hubspot_fake: HubspotFake) -> None:
    hubspot_fake.expired_tokens.add("pat-na1-old")
    destination = _destination(hubspot_fake, access_token="pat-na1-old")
    (outcome,) = await destination.deliver([make_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT and "EXPIRED_AUTHENTICATION" in outcome.reason


async def test_the_rate_limit_answer_asks_to_wait() -> None:
    fake = await HubspotFake(rate_per_10s=2).serve()
    destination = _destination(fake)  # type: ignore[arg-type]
    outcomes = [
        (await destination.deliver([make_change(f"r{n}@example.com")]))[0] for n in range(3)
    ]
    await destination.aclose()
    await fake.close()
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.DELIVERED,
        Verdict.TRANSIENT,
    ]
    assert outcomes[2].retry_after is not None and 1 <= outcomes[2].retry_after <= 11
    assert outcomes[2].exchange is not None and outcomes[2].exchange.status == 429


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault(429, {"status": "error"}, {"Retry-After": "7"}), 429, 7.0),
        (Fault(502, None), 502, None),
        (Fault(503, {"status": "error"}, {"Retry-After": "2"}), 503, 2.0),
        (Fault(200, {}, delay=1.5), None, None),
    ],
)
async def test_overload_outages_and_timeouts_are_transient(
    hubspot_fake: HubspotFake, fault: Fault, status: int | None, retry_after: float | None
) -> None:
    hubspot_fake.fail_next(fault)
    destination = _destination(hubspot_fake)
    (outcome,) = await destination.deliver([make_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.retry_after == retry_after
    assert outcome.exchange is not None and outcome.exchange.status == status
    if status is None:
        assert "no answer within the timeout" in outcome.reason
    assert hubspot_fake.contact("email", "ada@example.com") is None


async def test_an_unreachable_api_is_transient() -> None:
    destination = HubspotDestination(
        access_token=TOKEN,
        mapping=parse_mapping("").hubspot,
        api_url="http://127.0.0.1:9",
        timeout=0.5,
    )
    (outcome,) = await destination.deliver([make_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.TRANSIENT and "cannot reach 127.0.0.1" in outcome.reason


async def test_one_contact_named_twice_in_a_batch_waits_its_turn(
    hubspot_fake: HubspotFake,
) -> None:
    destination = _destination(hubspot_fake)
    outcomes = await destination.deliver(
        [make_change("ada@example.com"), make_change("email:ada@example.com", Stage.SQL)]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.TRANSIENT]
    assert len(_inputs(hubspot_fake.requests[0])) == 1


async def test_errors_that_name_no_input_send_the_batch_again(hubspot_fake: HubspotFake) -> None:
    unnamed = {
        "status": "COMPLETE",
        "results": [],
        "errors": [{"status": "error", "category": "VALIDATION_ERROR", "message": "x"}],
        "numErrors": 1,
    }
    hubspot_fake.fail_next(Fault(207, unnamed))
    destination = _destination(hubspot_fake)
    outcomes = await destination.deliver(
        [make_change("ann@example.com"), make_change("bea@example.com")]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.TRANSIENT, Verdict.TRANSIENT]
    assert "saved 0 of 2 contacts and did not say which failed" in outcomes[0].reason


async def test_a_property_the_account_lacks_refuses_the_batch(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake, "hubspot: {properties: {score: lead_score_typo}}")
    outcomes = await destination.deliver([make_change("ann@example.com")])
    await destination.aclose()
    assert outcomes[0].verdict is Verdict.PERMANENT
    assert "HTTP 400 VALIDATION_ERROR" in outcomes[0].reason
    assert "PROPERTY_DOESNT_EXIST" in outcomes[0].reason
    assert hubspot_fake.contact("email", "ann@example.com") is None


# ----------------------------------------------------------------------------- companies


async def test_account_stage_changes_upsert_companies_by_the_account_id(
    hubspot_fake: HubspotFake,
) -> None:
    destination = _destination(hubspot_fake)
    changes = [
        make_account_change("acme.example", AccountStage.MQA, AccountStage.ENGAGED, score=104.0),
        make_account_change("acct-42", AccountStage.ENGAGED, AccountStage.TARGET, score=40.5),
    ]
    outcomes = await destination.deliver_accounts(changes)
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.DELIVERED]
    (request,) = hubspot_fake.requests
    assert request["path"] == "/crm/v3/objects/companies/batch/upsert"
    assert [(i["idProperty"], i["id"], i["objectWriteTraceId"]) for i in _inputs(request)] == [
        ("leadstream_account_id", "acme.example", changes[0].key),
        ("leadstream_account_id", "acct-42", changes[1].key),
    ]
    assert hubspot_fake.company("leadstream_account_id", "acme.example") == {
        "leadstream_account_id": "acme.example",
        "domain": "acme.example",  # the account id is a domain: the company carries it
        "lifecyclestage": "marketingqualifiedlead",
        "leadstream_account_score": "104.0",
        "leadstream_account_stage": "mqa",
    }
    # an explicit account id is no domain, and engaged leaves the lifecycle stage alone
    assert hubspot_fake.company("leadstream_account_id", "acct-42") == {
        "leadstream_account_id": "acct-42",
        "leadstream_account_score": "40.5",
        "leadstream_account_stage": "engaged",
    }
    assert hubspot_fake.contacts == {}


async def test_an_account_moved_back_clears_the_company_lifecycle_stage_first(
    hubspot_fake: HubspotFake,
) -> None:
    destination = _destination(hubspot_fake)
    forward = make_account_change("acme.example", AccountStage.OPPORTUNITY, AccountStage.MQA)
    back = make_account_change("acme.example", AccountStage.MQA, AccountStage.OPPORTUNITY)
    assert [requests_for(destination, [c]) for c in (forward, back)] == [1, 2]
    assert [o.verdict for o in await destination.deliver_accounts([forward])] == [Verdict.DELIVERED]
    assert [o.verdict for o in await destination.deliver_accounts([back])] == [Verdict.DELIVERED]
    await destination.aclose()
    clear, set_back = (_inputs(r)[0]["properties"] for r in hubspot_fake.requests[1:])
    assert clear == {"lifecyclestage": ""}
    assert set_back["lifecyclestage"] == "marketingqualifiedlead"
    company = hubspot_fake.company("leadstream_account_id", "acme.example")
    assert company is not None and company["lifecyclestage"] == "marketingqualifiedlead"


async def test_the_domain_is_no_id_property_for_companies(hubspot_fake: HubspotFake) -> None:
    destination = _destination(hubspot_fake, "hubspot: {companies: {id_property: domain}}")
    (outcome,) = await destination.deliver_accounts([make_account_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "not a property with unique values" in outcome.reason
    assert hubspot_fake.companies == {}


async def test_company_mapping_models_and_fields_apply(hubspot_fake: HubspotFake) -> None:
    mapping = (
        "hubspot:\n"
        "  models: [b2b]\n"
        "  companies:\n"
        "    set_domain: false\n"
        "    lifecyclestage: {engaged: lead}\n"
        "    properties: {score: null}\n"
    )
    destination = _destination(hubspot_fake, mapping)
    outcomes = await destination.deliver_accounts(
        [
            make_account_change("acme.example", AccountStage.ENGAGED, AccountStage.TARGET),
            make_account_change("globex.example", AccountStage.MQA, model="b2c"),
        ]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.SKIPPED]
    assert "not in the mapping's hubspot.models" in outcomes[1].reason
    assert hubspot_fake.company("leadstream_account_id", "acme.example") == {
        "leadstream_account_id": "acme.example",
        "lifecyclestage": "lead",
        "leadstream_account_stage": "engaged",
    }


async def test_a_token_without_the_companies_scope_names_it(hubspot_fake: HubspotFake) -> None:
    forbidden = {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call.",
        "correlationId": "c0ffee00-0000-4000-8000-000000000000",
        "category": "MISSING_SCOPES",
    }
    hubspot_fake.fail_next(Fault(403, forbidden, path="/crm/v3/objects/companies/batch/upsert"))
    destination = _destination(hubspot_fake)
    (outcome,) = await destination.deliver_accounts([make_account_change()])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "crm.objects.companies.write" in outcome.reason
