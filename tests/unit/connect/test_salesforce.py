"""The Salesforce destination against a local org enforcing Salesforce's documented contract."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from crm_fakes.base import Fault
from crm_fakes.changes import make_account_change, make_change
from crm_fakes.salesforce import CLIENT_ID, CLIENT_SECRET, USERNAME, SalesforceFake
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from schemas.stages import AccountStage, Stage
from stream.connect.destination import Verdict
from stream.connect.mapping import parse_mapping
from stream.connect.salesforce import (
    SalesforceDestination,
    client_credentials_form,
    jwt_bearer_form,
)


def _destination(
    fake: SalesforceFake, mapping: str = "", secret: str = CLIENT_SECRET, **overrides: Any
) -> SalesforceDestination:
    options: dict[str, Any] = {
        "login_url": fake.base_url,
        "token_form": client_credentials_form(CLIENT_ID, secret),
        "mapping": parse_mapping(mapping).salesforce,
        "timeout": 0.5,
        "secrets": [secret],
    }
    return SalesforceDestination(**{**options, **overrides})


def _upserts(fake: SalesforceFake) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["method"] == "PATCH"]


def _known(fake: SalesforceFake, *lead_ids: str) -> None:
    for lead_id in lead_ids:
        fake.add_lead(LastName="Lovelace", Company="Analytical", Leadstream_Lead_Id__c=lead_id)


async def test_a_batch_upserts_leads_by_the_external_id(salesforce_fake: SalesforceFake) -> None:
    _known(salesforce_fake, "lead-1", "lead-2")
    destination = _destination(salesforce_fake)
    first = await destination.deliver([make_change("lead-1", Stage.SQL, Stage.MQL, total=81.5)])
    second = await destination.deliver([make_change("lead-2", Stage.DISQUALIFIED, Stage.LEAD)])
    await destination.aclose()
    assert [o.verdict for o in (*first, *second)] == [Verdict.DELIVERED, Verdict.DELIVERED]
    assert salesforce_fake.tokens_issued == 1  # the token is kept between calls
    request = _upserts(salesforce_fake)[0]
    assert request["path"] == "/services/data/v62.0/composite/sobjects/Lead/Leadstream_Lead_Id__c"
    assert request["headers"]["Authorization"].startswith("Bearer 00D5g000004fake!")
    body = orjson.loads(request["body"])
    assert body["allOrNone"] is False
    assert body["records"] == [
        {
            "attributes": {"type": "Lead"},
            "Leadstream_Lead_Id__c": "lead-1",
            "Status": "Working - Contacted",
            "Leadstream_Score__c": 81.5,
            "Leadstream_Grade__c": "B2",
            "Leadstream_Stage__c": "sql",
        }
    ]
    lead_2 = salesforce_fake.lead("lead-2")
    assert lead_2 is not None and lead_2["Status"] == "Closed - Not Converted"
    assert lead_2["LastName"] == "Lovelace"  # only the mapped fields change


async def test_refused_records_fail_alone(salesforce_fake: SalesforceFake) -> None:
    _known(salesforce_fake, "lead-1", "lead-3")
    mapping = "salesforce: {models: {b2b: {}, consumer: {status: {mql: Nurturing}}}}"
    destination = _destination(salesforce_fake, mapping)
    outcomes = await destination.deliver(
        [
            make_change("lead-1"),
            make_change("lead-unknown"),
            make_change("lead-3", model="consumer"),
            make_change("lead-4", model="other"),
        ]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.PERMANENT,
        Verdict.PERMANENT,
        Verdict.SKIPPED,
    ]
    assert "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName, Company]" in (
        outcomes[1].reason
    )
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in outcomes[2].reason
    assert salesforce_fake.lead("lead-unknown") is None
    assert len(_upserts(salesforce_fake)) == 1


async def test_batches_hold_at_most_200_records(salesforce_fake: SalesforceFake) -> None:
    lead_ids = [f"lead-{n}" for n in range(200)]
    _known(salesforce_fake, *lead_ids)
    destination = _destination(salesforce_fake)
    assert destination.max_batch == 200
    changes = [make_change(lead_id) for lead_id in lead_ids]
    outcomes = await destination.deliver(changes)
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    assert len(_upserts(salesforce_fake)) == 1
    with pytest.raises(ValueError, match="at most 200"):
        await destination.deliver([*changes, make_change("lead-200")])
    await destination.aclose()
    token = next(iter(salesforce_fake.sessions))
    records = [
        {"attributes": {"type": "Lead"}, "Leadstream_Lead_Id__c": f"x{n}"} for n in range(201)
    ]
    async with httpx.AsyncClient() as client:
        answer = await client.patch(
            f"{salesforce_fake.base_url}/services/data/v62.0/composite/sobjects/Lead/"
            "Leadstream_Lead_Id__c",
            json={"allOrNone": False, "records": records},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


async def test_an_expired_session_takes_one_new_token(salesforce_fake: SalesforceFake) -> None:
    _known(salesforce_fake, "lead-1")
    destination = _destination(salesforce_fake)
    await destination.deliver([make_change("lead-1", Stage.MQL)])
    salesforce_fake.expire_sessions()
    (outcome,) = await destination.deliver([make_change("lead-1", Stage.SQL, Stage.MQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.DELIVERED
    assert salesforce_fake.tokens_issued == 2
    statuses = [r["method"] for r in salesforce_fake.requests]
    assert statuses == ["POST", "PATCH", "PATCH", "POST", "PATCH"]
    lead = salesforce_fake.lead("lead-1")
    assert lead is not None and lead["Status"] == "Working - Contacted"


async def test_a_session_refused_twice_is_permanent(salesforce_fake: SalesforceFake) -> None:
    _known(salesforce_fake, "lead-1")
    refusal = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    destination = _destination(salesforce_fake)
    await destination.deliver([make_change("lead-1")])
    salesforce_fake.fail_next(Fault(401, refusal))
    salesforce_fake.fail_next(
        Fault(200, {"access_token": "tok-2", "instance_url": salesforce_fake.base_url})
    )
    salesforce_fake.fail_next(Fault(401, refusal))
    (outcome,) = await destination.deliver([make_change("lead-1")])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "refused a new access token too (INVALID_SESSION_ID" in outcome.reason
    assert (
        outcome.exchange is not None and outcome.exchange.request_headers["authorization"] == "***"
    )


async def test_wrong_credentials_are_permanent_and_masked(salesforce_fake: SalesforceFake) -> None:
    destination = _destination(salesforce_fake, secret="not-the-secret-42")
    (outcome,) = await destination.deliver([make_change("lead-1")])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "invalid_client: invalid client credentials" in outcome.reason
    assert "not-the-secret-42" not in str(outcome)
    assert _upserts(salesforce_fake) == []


def _rsa_pem() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


async def test_the_jwt_bearer_flow_signs_in() -> None:
    key, pem = _rsa_pem()
    _, other_pem = _rsa_pem()
    fake = SalesforceFake(jwt_public_key=key.public_key())
    await fake.serve()
    _known(fake, "lead-1")
    outcomes = []
    for signing_pem in (pem, other_pem):
        form = jwt_bearer_form(CLIENT_ID, USERNAME, signing_pem, "https://login.salesforce.com")
        destination = _destination(fake, token_form=form)
        outcomes.extend(await destination.deliver([make_change("lead-1")]))
        await destination.aclose()
    await fake.close()
    assert outcomes[0].verdict is Verdict.DELIVERED
    assert outcomes[1].verdict is Verdict.PERMANENT
    assert "invalid_grant: invalid assertion" in outcomes[1].reason


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault(503, None, {"Retry-After": "30"}), 503, 30.0),
        (Fault(500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "boom"}]), 500, None),
        (
            Fault(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests"}]),
            403,
            None,
        ),
        (Fault(429, None, {"Retry-After": "3"}), 429, 3.0),
        (Fault(200, [], delay=1.5), None, None),
    ],
)
async def test_limits_outages_and_timeouts_are_transient(
    salesforce_fake: SalesforceFake, fault: Fault, status: int | None, retry_after: float | None
) -> None:
    _known(salesforce_fake, "lead-1")
    destination = _destination(salesforce_fake)
    await destination.deliver([make_change("lead-1", Stage.LEAD, None)])
    salesforce_fake.fail_next(fault)
    (outcome,) = await destination.deliver([make_change("lead-1")])
    await destination.aclose()
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.retry_after == retry_after
    assert outcome.exchange is not None and outcome.exchange.status == status


async def test_a_token_endpoint_outage_is_transient(salesforce_fake: SalesforceFake) -> None:
    salesforce_fake.fail_next(Fault(503, None))
    destination = _destination(salesforce_fake)
    (outcome,) = await destination.deliver([make_change("lead-1")])
    await destination.aclose()
    assert outcome.verdict is Verdict.TRANSIENT and "token endpoint" in outcome.reason


async def test_a_field_lead_lacks_refuses_the_call(salesforce_fake: SalesforceFake) -> None:
    _known(salesforce_fake, "lead-1")
    destination = _destination(salesforce_fake, "salesforce: {fields: {fit: Fit_Score__c}}")
    (outcome,) = await destination.deliver([make_change("lead-1")])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT
    assert "INVALID_FIELD: No such column 'Fit_Score__c' on sobject of type Lead" in outcome.reason


# ----------------------------------------------------------------------------- accounts


async def test_account_stage_changes_upsert_accounts_by_their_external_id(
    salesforce_fake: SalesforceFake,
) -> None:
    salesforce_fake.add_account(Name="Acme", Leadstream_Account_Id__c="acme.example")
    destination = _destination(salesforce_fake)
    known = make_account_change("acme.example", AccountStage.MQA, score=104.0)
    unknown = make_account_change("globex.example", AccountStage.ENGAGED)
    outcomes = await destination.deliver_accounts([known, unknown])
    await destination.aclose()
    (request,) = _upserts(salesforce_fake)
    assert request["path"] == (
        "/services/data/v62.0/composite/sobjects/Account/Leadstream_Account_Id__c"
    )
    assert orjson.loads(request["body"])["records"][0] == {
        "attributes": {"type": "Account"},
        "Leadstream_Account_Id__c": "acme.example",
        "Leadstream_Account_Score__c": 104.0,
        "Leadstream_Account_Stage__c": "mqa",
    }
    assert salesforce_fake.account("acme.example") == {
        "Name": "Acme",
        "Leadstream_Account_Id__c": "acme.example",
        "Leadstream_Account_Score__c": 104.0,
        "Leadstream_Account_Stage__c": "mqa",
    }
    # an account no Account holds yet: Salesforce needs a Name to create one; it fails alone
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.PERMANENT]
    assert "Salesforce refused the Account: REQUIRED_FIELD_MISSING" in outcomes[1].reason
    assert salesforce_fake.account("globex.example") is None


async def test_account_fields_and_models_come_from_the_mapping(
    salesforce_fake: SalesforceFake,
) -> None:
    salesforce_fake.add_account(Name="Acme", Acct__c="acme.example")
    mapping = (
        "salesforce:\n"
        "  models: [b2b]\n"
        "  accounts: {external_id_field: Acct__c, fields: {score: null}}\n"
    )
    destination = _destination(salesforce_fake, mapping)
    outcomes = await destination.deliver_accounts(
        [make_account_change("acme.example"), make_account_change("acme.example", model="b2c")]
    )
    await destination.aclose()
    # the org has no such External ID field: the whole call is refused, and says why
    assert outcomes[0].verdict is Verdict.PERMANENT
    assert "Acct__c is not an External ID" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.SKIPPED
    body = orjson.loads(_upserts(salesforce_fake)[0]["body"])
    assert body["records"] == [
        {
            "attributes": {"type": "Account"},
            "Acct__c": "acme.example",
            "Leadstream_Account_Stage__c": "mqa",
        }
    ]
