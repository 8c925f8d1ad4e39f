"""Clients of the APIs that hold the answers of a social lead form: LinkedIn's `leadFormResponses`
and Meta's Graph API. A lead notification only names the lead; the collector fetches it here.

Each client takes its API's base URL (the real one by default; tests point it at a local server)
and makes one short-lived HTTP session per lead. Anything that keeps the lead from being read (no
access token configured, a timeout, a refused token, an error answer, an answer that is not the
documented JSON object) raises `LeadApiError`: the collector answers 503, so the vendor delivers
the notification again later. Error messages name the status and the API's own error text, never
the token.

LinkedIn (`https://api.linkedin.com/rest`, Lead Sync):
`GET /leadFormResponses/{id}?fields=...` with `Authorization: Bearer <token>`,
`LinkedIn-Version: <YYYYMM>` and `X-Restli-Protocol-Version: 2.0.0`, the projection of
LinkedIn's Lead Sync collection (the response, decorated with the form's questions as `form`).
When the answer carries no form questions, the form is read from `GET /leadForms/{form id}`
(same headers). The id is URL-encoded into the path.

Meta (`https://graph.facebook.com`): `GET /<version>/<leadgen id>?access_token=<token>`, plus
`appsecret_proof` (hex HMAC-SHA256 of the token under the app secret, which Meta asks for when
the app requires it and accepts otherwise). No `fields` are asked for: the default answer has
`created_time`, `id`, `ad_id`, `form_id` and `field_data`; fields such as `campaign_id` need
the ads permissions on the token and would fail the whole read without them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final
from urllib.parse import quote

import aiohttp
import orjson

from schemas.adapters.linkedin import form_id_of
from stream.errors import InfrastructureError

__all__ = [
    "LINKEDIN_LEAD_FIELDS",
    "LeadApiError",
    "LinkedInLeadApi",
    "MetaLeadApi",
    "appsecret_proof",
]

LINKEDIN_LEAD_FIELDS: Final = (
    "ownerInfo,associatedEntityInfo,leadMetadataInfo,owner,leadType,versionedLeadGenFormUrn,id,"
    "submittedAt,testLead,formResponse,form:(hiddenFields,creationLocale,name,id,content),"
    "associatedEntity,leadMetadata,submitter"
)
"""The projection of LinkedIn's Lead Sync collection ("Fetch Full Lead Data"), plus the raw
`associatedEntity`, `leadMetadata` and `submitter` the adapter reads."""


class LeadApiError(InfrastructureError):
    """The lead could not be read from the vendor's API: answer 503, the vendor retries."""


async def _get_json(
    url: str,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    seconds: float,
    what: str,
) -> dict[str, Any]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(url, params=params, headers=headers) as response,
        ):
            body = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise LeadApiError(f"{what}: {type(exc).__name__}") from exc
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    if status != 200:
        raise LeadApiError(f"{what}: HTTP {status}: {_error_text(payload)}")
    if not isinstance(payload, dict):
        raise LeadApiError(f"{what}: the answer is not a JSON object")
    return payload


def _error_text(payload: object) -> str:
    """The API's own error message (LinkedIn: `message`; Meta: `error.message`), cut short."""
    if isinstance(payload, dict):
        error = payload.get("error")
        message = error.get("message") if isinstance(error, dict) else payload.get("message")
        if isinstance(message, str):
            return message[:200]
    return "no error message"


class LinkedInLeadApi:
    """Reads a lead form response, and its form's questions, from LinkedIn."""

    def __init__(
        self, *, base_url: str, version: str, access_token: str | None, timeout: float
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._token = access_token
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
        if not self._token:
            raise LeadApiError("LEADSTREAM_LINKEDIN_ACCESS_TOKEN is not set")
        return {
            "Authorization": f"Bearer {self._token}",
            "LinkedIn-Version": self.version,
            "X-Restli-Protocol-Version": "2.0.0",
            "Accept": "application/json",
        }

    async def form_response(self, response_id: str) -> dict[str, Any]:
        """`GET /leadFormResponses/{id}` with the Lead Sync projection."""
        return await _get_json(
            f"{self.base_url}/leadFormResponses/{quote(response_id, safe='')}",
            params={"fields": LINKEDIN_LEAD_FIELDS},
            headers=self._headers(),
            seconds=self.timeout,
            what="LinkedIn leadFormResponses",
        )

    async def form(self, form_id: str) -> dict[str, Any]:
        """`GET /leadForms/{id}`: the form, with its questions."""
        return await _get_json(
            f"{self.base_url}/leadForms/{quote(form_id, safe='')}",
            params={},
            headers=self._headers(),
            seconds=self.timeout,
            what="LinkedIn leadForms",
        )

    async def lead(self, response_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The response and its form (`None` when the response names no form to read)."""
        response = await self.form_response(response_id)
        form = response.get("form")
        if isinstance(form, dict) and isinstance(form.get("content"), dict):
            return response, form
        form_id = form_id_of(response.get("versionedLeadGenFormUrn"))
        return response, (await self.form(form_id) if form_id else None)


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """Meta's `appsecret_proof`: hex HMAC-SHA256 of the access token under the app secret."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class MetaLeadApi:
    """Reads a lead (its `field_data`) from Meta's Graph API."""

    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        access_token: str | None,
        app_secret: str | None,
        timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._token = access_token
        self._secret = app_secret
        self.timeout = timeout

    async def lead(self, leadgen_id: str) -> dict[str, Any]:
        """`GET /<version>/<leadgen id>`."""
        if not self._token:
            raise LeadApiError("LEADSTREAM_META_ACCESS_TOKEN is not set")
        params = {"access_token": self._token}
        if self._secret:
            params["appsecret_proof"] = appsecret_proof(self._secret, self._token)
        return await _get_json(
            f"{self.base_url}/{self.version}/{quote(leadgen_id, safe='')}",
            params=params,
            headers={"Accept": "application/json"},
            seconds=self.timeout,
            what="Meta Graph API lead",
        )
