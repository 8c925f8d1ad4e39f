"""The lead API clients against local servers that enforce LinkedIn's and Meta's documented
contracts (tests/unit/web/conftest.py)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from stream.web.lead_apis import LeadApiError, LinkedInLeadApi, MetaLeadApi, appsecret_proof

LEAD_ID = "249592fc-d272-44ba-a7db-c2bdce579507-6"


def _linkedin(api: Any, **overrides: Any) -> LinkedInLeadApi:
    options: dict[str, Any] = {
        "base_url": api.base_url,
        "version": "202601",
        "access_token": "li-unit-access-token",
        "timeout": 2.0,
    }
    return LinkedInLeadApi(**{**options, **overrides})


def _meta(api: Any, **overrides: Any) -> MetaLeadApi:
    options: dict[str, Any] = {
        "base_url": api.base_url,
        "version": "v25.0",
        "access_token": "meta-unit-page-token",
        "app_secret": "meta-unit-app-secret",
        "timeout": 2.0,
    }
    return MetaLeadApi(**{**options, **overrides})


async def test_linkedin_reads_the_response_then_its_form(linkedin_api: Any) -> None:
    response, form = await _linkedin(linkedin_api).lead(LEAD_ID)
    assert response["id"] == LEAD_ID
    assert form is not None and form["id"] == 7234246  # from versionedLeadGenFormUrn
    first, second = linkedin_api.requests
    assert first["path"] == f"/rest/leadFormResponses/{LEAD_ID}"
    assert "form:(hiddenFields,creationLocale,name,id,content)" in first["query"]["fields"]
    assert second["path"] == "/rest/leadForms/7234246"
    for request in (first, second):
        headers = request["headers"]
        assert headers["Authorization"] == "Bearer li-unit-access-token"
        assert (headers["LinkedIn-Version"], headers["X-Restli-Protocol-Version"]) == (
            "202601",
            "2.0.0",
        )


async def test_linkedin_uses_the_form_the_answer_carries(linkedin_api: Any) -> None:
    decorated = {**linkedin_api.leads[LEAD_ID], "form": linkedin_api.forms["7992706"]}
    linkedin_api.leads[LEAD_ID] = decorated
    _, form = await _linkedin(linkedin_api).lead(LEAD_ID)
    assert form is not None and form["id"] == 7992706
    assert len(linkedin_api.requests) == 1


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"access_token": "wrong"}, "HTTP 401: Invalid access token"),
        ({"version": "202001"}, "HTTP 426: Requested version 202001 is not active"),
        ({"base_url": "http://127.0.0.1:9/rest"}, "ClientConnectorError"),
    ],
)
async def test_linkedin_failures_are_lead_api_errors(
    linkedin_api: Any, overrides: dict[str, Any], status: str
) -> None:
    with pytest.raises(LeadApiError, match=status) as failed:
        await _linkedin(linkedin_api, **overrides).lead(LEAD_ID)
    assert "li-unit-access-token" not in str(failed.value)


async def test_linkedin_missing_lead_timeouts_and_no_token(linkedin_api: Any) -> None:
    with pytest.raises(LeadApiError, match="HTTP 404: Not found"):
        await _linkedin(linkedin_api).lead("no-such-lead")
    linkedin_api.delay = 0.5
    with pytest.raises(LeadApiError, match="TimeoutError"):
        await _linkedin(linkedin_api, timeout=0.1).lead(LEAD_ID)
    with pytest.raises(LeadApiError, match="LEADSTREAM_LINKEDIN_ACCESS_TOKEN is not set"):
        await _linkedin(linkedin_api, access_token=None).lead(LEAD_ID)


async def test_meta_reads_the_lead_with_the_token_and_its_proof(meta_api: Any) -> None:
    lead = await _meta(meta_api).lead("123123123123")
    assert lead["field_data"][2] == {"name": "email", "values": ["joe@example.com"]}
    (request,) = meta_api.requests
    assert request["path"] == "/v25.0/123123123123"
    assert request["query"]["access_token"] == "meta-unit-page-token"
    expected = hmac.new(
        b"meta-unit-app-secret", b"meta-unit-page-token", hashlib.sha256
    ).hexdigest()
    assert request["query"]["appsecret_proof"] == expected
    assert appsecret_proof("meta-unit-app-secret", "meta-unit-page-token") == expected
    assert "fields" not in request["query"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"access_token": "wrong"}, "HTTP 400: Invalid OAuth access token"),
        ({"app_secret": None}, "HTTP 400: API calls from the server require an appsecret_proof"),
        ({"version": "v1.0"}, "HTTP 400: Unknown path components"),
        ({"access_token": None}, "LEADSTREAM_META_ACCESS_TOKEN is not set"),
    ],
)
async def test_meta_failures_are_lead_api_errors(
    meta_api: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(LeadApiError, match=message) as failed:
        await _meta(meta_api, **overrides).lead("123123123123")
    assert "meta-unit-page-token" not in str(failed.value)


async def test_meta_unknown_lead_and_server_errors(meta_api: Any) -> None:
    with pytest.raises(LeadApiError, match="Unsupported get request"):
        await _meta(meta_api).lead("999")
    meta_api.fail_with = 500
    with pytest.raises(LeadApiError, match="HTTP 500"):
        await _meta(meta_api).lead("123123123123")
