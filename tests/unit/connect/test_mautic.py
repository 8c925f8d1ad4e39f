"""The Mautic destination against a local Mautic enforcing its documented API."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from crm_fakes.base import Fault
from crm_fakes.changes import make_change
from crm_fakes.mautic import CLIENT_ID, CLIENT_SECRET, PASSWORD, USER, MauticFake

from schemas.stages import Stage
from stream.connect.destination import Verdict
from stream.connect.mapping import parse_mapping
from stream.connect.mautic import MauticDestination

SEGMENTS = "mautic: {segments: {mql: 3, sql: 4, recycled: 7}}"


def _destination(fake: MauticFake, mapping: str = SEGMENTS, **overrides: Any) -> MauticDestination:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "mapping": parse_mapping(mapping).mautic,
        "username": USER,
        "password": PASSWORD,
        "timeout": 0.5,
    }
    return MauticDestination(**{**options, **overrides})


def _paths(fake: MauticFake) -> list[str]:
    return [request["path"] for request in fake.requests]


async def test_contacts_join_their_stage_segment_and_leave_the_last(
    mautic_fake: MauticFake,
) -> None:
    destination = _destination(mautic_fake)
    first = await destination.deliver(
        [make_change("ada@example.com", Stage.MQL), make_change("email:Bo@Example.com", Stage.MQL)]
    )
    ada = mautic_fake.contact_id("email", "ada@example.com")
    bo = mautic_fake.contact_id("email", "bo@example.com")
    assert ada is not None and bo is not None
    assert mautic_fake.segments[3] == {ada, bo}
    second = await destination.deliver([make_change("ada@example.com", Stage.SQL, Stage.MQL)])
    third = await destination.deliver([make_change("bo@example.com", Stage.RECYCLED, Stage.MQL)])
    await destination.aclose()
    assert {o.verdict for o in (*first, *second, *third)} == {Verdict.DELIVERED}
    assert mautic_fake.contact_id("email", "ada@example.com") == ada  # matched, not duplicated
    assert (mautic_fake.segments[3], mautic_fake.segments[4], mautic_fake.segments[7]) == (
        set(),
        {ada},
        {bo},
    )
    assert _paths(mautic_fake)[:2] == ["/api/contacts/batch/new", "/api/segments/3/contacts/add"]
    assert _paths(mautic_fake)[2:5] == [
        "/api/contacts/batch/new",
        "/api/segments/4/contacts/add",
        "/api/segments/3/contacts/remove",
    ]
    assert orjson.loads(mautic_fake.requests[0]["body"]) == [
        {"email": "ada@example.com"},
        {"email": "bo@example.com"},
    ]
    assert mautic_fake.requests[0]["headers"]["Authorization"].startswith("Basic ")


async def test_the_previous_segment_can_be_kept(mautic_fake: MauticFake) -> None:
    mapping = "mautic: {segments: {mql: 3, sql: 4}, remove_from_previous: false}"
    destination = _destination(mautic_fake, mapping)
    await destination.deliver([make_change("cy@example.com", Stage.MQL)])
    await destination.deliver([make_change("cy@example.com", Stage.SQL, Stage.MQL)])
    await destination.aclose()
    cy = mautic_fake.contact_id("email", "cy@example.com")
    assert cy in mautic_fake.segments[3] and cy in mautic_fake.segments[4]


async def test_fields_and_a_lead_id_field(mautic_fake: MauticFake) -> None:
    mapping = (
        "mautic: {match_field: leadstream_lead_id, segments: {mql: 3},"
        " fields: {score: leadstream_score}}"
    )
    destination = _destination(mautic_fake, mapping)
    outcomes = await destination.deliver(
        [make_change("crm-7", Stage.MQL, total=61.0), make_change("crm-8", Stage.LEAD, None)]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.DELIVERED]
    crm_7 = mautic_fake.contact_id("leadstream_lead_id", "crm-7")
    crm_8 = mautic_fake.contact_id("leadstream_lead_id", "crm-8")
    assert crm_7 is not None and crm_8 is not None
    assert mautic_fake.contacts[crm_7]["leadstream_score"] == 61.0
    assert mautic_fake.segments[3] == {crm_7}  # lead has no segment: fields only


async def test_what_cannot_be_sent_and_what_mautic_refuses(mautic_fake: MauticFake) -> None:
    mapping = "mautic: {segments: {mql: 3, sql: 99}, models: [b2b]}"
    destination = _destination(mautic_fake, mapping)
    outcomes = await destination.deliver(
        [
            make_change("ed@example.com", Stage.MQL),
            make_change("crm-9", Stage.MQL),
            make_change("fay@exa_mple.com", Stage.MQL),
            make_change("gil@example.com", Stage.SQL, Stage.MQL),
            make_change("hu@example.com", Stage.OPPORTUNITY, Stage.SQL),
            make_change("ivy@example.com", Stage.MQL, model="consumer"),
        ]
    )
    await destination.aclose()
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.PERMANENT,
        Verdict.PERMANENT,
        Verdict.PERMANENT,
        Verdict.SKIPPED,
        Verdict.SKIPPED,
    ]
    assert "not an email address" in outcomes[1].reason
    assert "Mautic refused the contact (HTTP 400): email: A valid email is required." in (
        outcomes[2].reason
    )
    assert "segment 99 (add): HTTP 404" in outcomes[3].reason
    assert "has no segment" in outcomes[4].reason
    assert "'consumer' is not in the mapping's mautic.models" in outcomes[5].reason
    ed = mautic_fake.contact_id("email", "ed@example.com")
    assert mautic_fake.segments[3] == {ed}


async def test_batches_hold_at_most_200_contacts(mautic_fake: MauticFake) -> None:
    destination = _destination(mautic_fake)
    assert destination.max_batch == 200
    changes = [make_change(f"p{n}@example.com", Stage.MQL) for n in range(200)]
    outcomes = await destination.deliver(changes)
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    assert len(mautic_fake.segments[3]) == 200
    assert _paths(mautic_fake) == ["/api/contacts/batch/new", "/api/segments/3/contacts/add"]
    with pytest.raises(ValueError, match="at most 200"):
        await destination.deliver([*changes, make_change("p200@example.com")])
    await destination.aclose()
    async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
        answer = await client.post(
            f"{mautic_fake.base_url}/api/contacts/batch/new",
            json=[{"email": f"q{n}@example.com"} for n in range(201)],
        )
    assert answer.status_code == 400 and "max of 200" in answer.text


async def test_oauth_tokens_are_kept_and_renewed_once(mautic_fake: MauticFake) -> None:
    destination = _destination(
        mautic_fake, username=None, password=None, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    await destination.deliver([make_change("jo@example.com", Stage.MQL)])
    await destination.deliver([make_change("jo@example.com", Stage.SQL, Stage.MQL)])
    assert mautic_fake.tokens_issued == 1
    mautic_fake.expire_tokens()
    (outcome,) = await destination.deliver(
        [make_change("jo@example.com", Stage.RECYCLED, Stage.SQL)]
    )
    await destination.aclose()
    assert outcome.verdict is Verdict.DELIVERED
    assert mautic_fake.tokens_issued == 2
    jo = mautic_fake.contact_id("email", "jo@example.com")
    assert jo in mautic_fake.segments[7] and jo not in mautic_fake.segments[4]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"password": "wrong-password-9"}, "Mautic refused the credentials (access_denied"),
        (
            {"username": None, "password": None, "client_id": CLIENT_ID, "client_secret": "nope-8"},
            "Mautic refused the credentials at",
        ),
    ],
)
async def test_wrong_credentials_are_permanent_and_masked(
    mautic_fake: MauticFake, overrides: dict[str, Any], reason: str
) -> None:
    destination = _destination(mautic_fake, **overrides)
    (outcome,) = await destination.deliver([make_change("kim@example.com", Stage.MQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.PERMANENT and reason in outcome.reason
    assert "wrong-password-9" not in str(outcome) and "nope-8" not in str(outcome)
    assert mautic_fake.contact_id("email", "kim@example.com") is None


_LIMITED = {"errors": [{"message": "Too many requests", "code": 429, "type": None}]}


@pytest.mark.parametrize("path", ["/api/contacts/batch/new", "/api/segments/4/contacts/add"])
@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault(429, _LIMITED, {"Retry-After": "60"}), 429, 60.0),
        (Fault(500, None), 500, None),
        (Fault(201, {}, delay=1.5), None, None),
    ],
)
async def test_overload_outages_and_timeouts_are_transient(
    mautic_fake: MauticFake, path: str, fault: Fault, status: int | None, retry_after: float | None
) -> None:
    destination = _destination(mautic_fake)
    await destination.deliver([make_change("lu@example.com", Stage.MQL)])
    fault.path = path
    mautic_fake.fail_next(fault)
    (outcome,) = await destination.deliver([make_change("lu@example.com", Stage.SQL, Stage.MQL)])
    await destination.aclose()
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.retry_after == retry_after
    assert outcome.exchange is not None and outcome.exchange.status == status
    assert mautic_fake.contact_id("email", "lu@example.com") not in mautic_fake.segments[4]
