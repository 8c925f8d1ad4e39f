"""Salesforce: each stage change upserts the lead's Lead record by an External ID field.

One sObject Collections upsert per batch of at most 200 changes,
`PATCH /services/data/vXX.X/composite/sobjects/Lead/<ExternalIdField>` with
`{"allOrNone": false, "records": [...]}`
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm):
Salesforce answers one save result per record, in order, so a refused record fails alone. Each
record sets the External ID field to the lead id, the mapped `Status` and the score fields.

**Accounts.** With `connect salesforce --accounts`, each account stage change upserts the
account's Account record the same way (`.../composite/sobjects/Account/<ExternalIdField>`, by
default `Leadstream_Account_Id__c` holding the account id), setting the account score and stage
fields. Salesforce requires `Name` to create an Account, so an account id no Account holds yet
is refused (`REQUIRED_FIELD_MISSING`) and dead-lettered: put the account ids on your Accounts.

**Sign-in.** The OAuth 2.0 client credentials flow of a connected app (consumer key and secret,
against your My Domain's `/services/oauth2/token`), or the JWT bearer flow (consumer key, a user
and the private key whose certificate the app holds)
(https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm,
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm). The token is
kept until Salesforce refuses it: on a 401 (`INVALID_SESSION_ID`) one new token is fetched and
the call sent once more.

**New leads.** Salesforce requires `LastName` and `Company` to create a Lead: a lead id no Lead
holds yet is refused (`REQUIRED_FIELD_MISSING`) and dead-lettered with that reason. Give your
Leads the lead id (the CRM feedback loop already knows both) before they reach Salesforce.

**Rate.** Salesforce limits API requests per org per rolling 24 hours (Enterprise Edition:
100,000 plus 1,000 per user license,
https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm);
the default of one request per second (up to 200 leads each) spends at most 86,400 of them.
"""

from __future__ import annotations

import argparse
import base64
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from stream.connect.crm_api import (
    Answer,
    ClientCredentials,
    Token,
    TokenError,
    call,
    complete,
    section_for,
)
from stream.connect.destination import AccountChange, Change, Outcome, Verdict
from stream.connect.mapping import SalesforceMapping, mapping_from
from stream.errors import ConfigurationError
from stream.settings import Settings

__all__ = [
    "MAX_BATCH",
    "SalesforceDestination",
    "client_credentials_form",
    "from_options",
    "jwt_bearer_form",
]

MAX_BATCH = 200
"""Records per sObject Collections request at most."""
_TRANSIENT_CODES = {"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"}


def client_credentials_form(client_id: str, client_secret: str) -> Callable[[], dict[str, str]]:
    """The token request of the client credentials flow."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }
    return lambda: dict(form)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_bearer_form(
    client_id: str,
    username: str,
    private_key_pem: bytes,
    audience: str,
    clock: Callable[[], float] = time.time,
) -> Callable[[], dict[str, str]]:
    """The token request of the JWT bearer flow: a fresh RS256 assertion each time."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("the Salesforce JWT key must be an RSA private key (PEM)")

    def form() -> dict[str, str]:
        header = _b64url(orjson.dumps({"alg": "RS256"}))
        claims = {"iss": client_id, "sub": username, "aud": audience, "exp": int(clock()) + 180}
        signing_input = f"{header}.{_b64url(orjson.dumps(claims))}"
        signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": f"{signing_input}.{_b64url(signature)}",
        }

    return form


def _errors_text(errors: Any) -> str:
    """`CODE: message` of Salesforce's error list (`errorCode` or `statusCode`)."""
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            code = error.get("errorCode") or error.get("statusCode") or "ERROR"
            parts.append(f"{code}: {error.get('message', '')}")
    return "; ".join(parts)


class SalesforceDestination:
    """Stage changes as Salesforce Lead upserts."""

    name = "salesforce"
    max_batch = MAX_BATCH

    def __init__(
        self,
        *,
        login_url: str,
        token_form: Callable[[], dict[str, str]],
        mapping: SalesforceMapping,
        api_version: str = "v62.0",
        timeout: float = 10.0,
        rate_per_s: float = 1.0,
        burst: int = 2,
        secrets: Sequence[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._mapping = mapping
        self._version = api_version
        self._login_url = login_url
        self._secrets = list(secrets)
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._credentials = ClientCredentials(
            self._client,
            login_url.rstrip("/") + "/services/oauth2/token",
            token_form,
            secrets=self._secrets,
            vendor="Salesforce",
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _record(self, change: Change | AccountChange) -> tuple[str, dict[str, Any]] | Outcome:
        """(external id field, record) of `change`, or why it is not sent."""
        section = section_for(self._mapping, "salesforce", change)
        if isinstance(section, Outcome):
            return section
        if isinstance(change, AccountChange):
            accounts = section.accounts
            fields: dict[str, Any] = {"attributes": {"type": "Account"}}
            fields[accounts.external_id_field] = change.record.account_id
            fields.update(accounts.fields.values(change.record))
            return accounts.external_id_field, fields
        record = change.record
        fields = {"attributes": {"type": "Lead"}}
        fields[section.external_id_field] = record.lead_id
        status = section.lead_status(record.to_stage)
        if status is not None:
            fields["Status"] = status
        fields.update(section.fields.values(record))
        return section.external_id_field, fields

    async def deliver(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        return await self._deliver(changes, "Lead")

    async def deliver_accounts(self, changes: Sequence[AccountChange]) -> Sequence[Outcome]:
        return await self._deliver(changes, "Account")

    async def _deliver(
        self, changes: Sequence[Change | AccountChange], sobject: str
    ) -> Sequence[Outcome]:
        if len(changes) > MAX_BATCH:
            raise ValueError(f"Salesforce takes at most {MAX_BATCH} records per call")
        outcomes: list[Outcome | None] = [None] * len(changes)
        # Models may name different External ID fields: one call per field.
        groups: dict[str, dict[int, dict[str, Any]]] = {}
        for index, change in enumerate(changes):
            made = self._record(change)
            if isinstance(made, Outcome):
                outcomes[index] = made
            else:
                groups.setdefault(made[0], {})[index] = made[1]
        for field, records in groups.items():
            for index, outcome in (await self._upsert(sobject, field, records)).items():
                outcomes[index] = outcome
        return complete(outcomes)

    async def _send(
        self, token: Token, sobject: str, field: str, records: list[dict[str, Any]]
    ) -> Answer:
        base = (token.instance_url or self._login_url).rstrip("/")
        return await call(
            self._client,
            "PATCH",
            f"{base}/services/data/{self._version}/composite/sobjects/{sobject}/{field}",
            json={"allOrNone": False, "records": records},
            headers={"Authorization": f"Bearer {token.access_token}"},
            secrets=self._secrets,
        )

    async def _upsert(
        self, sobject: str, field: str, records: dict[int, dict[str, Any]]
    ) -> dict[int, Outcome]:
        try:
            token = await self._credentials.token()
            answer = await self._send(token, sobject, field, list(records.values()))
            if answer.status == 401:  # expired or revoked session: one new token, one more try
                self._credentials.refused(token)
                token = await self._credentials.token()
                answer = await self._send(token, sobject, field, list(records.values()))
        except TokenError as exc:
            return dict.fromkeys(records, exc.outcome)
        body = answer.json()
        if answer.status == 200 and isinstance(body, list) and len(body) == len(records):
            return {
                index: self._result(result, answer, sobject)
                for index, result in zip(records, body, strict=True)
            }
        return dict.fromkeys(records, self._refusal(answer, body))

    @staticmethod
    def _result(result: Any, answer: Answer, sobject: str = "Lead") -> Outcome:
        if isinstance(result, dict) and result.get("success") is True:
            return Outcome.delivered()
        errors = result.get("errors") if isinstance(result, dict) else None
        codes = {e.get("statusCode") for e in errors or [] if isinstance(e, dict)}
        verdict = Verdict.TRANSIENT if codes & _TRANSIENT_CODES else Verdict.PERMANENT
        return Outcome(
            verdict,
            f"Salesforce refused the {sobject}: {_errors_text(errors) or 'no reason given'}",
            exchange=answer.exchange,
        )

    @staticmethod
    def _refusal(answer: Answer, body: Any) -> Outcome:
        """The outcome of a whole call Salesforce did not carry out."""
        text = _errors_text(body)
        if answer.status == 401:
            return Outcome(
                Verdict.PERMANENT,
                f"Salesforce refused a new access token too ({text}): check the connected app's "
                "OAuth policies and the run-as user's API access",
                exchange=answer.exchange,
            )
        if answer.status == 403 and "REQUEST_LIMIT_EXCEEDED" in text:
            return Outcome(
                Verdict.TRANSIENT,
                f"Salesforce's API request limit is used up ({text})",
                exchange=answer.exchange,
            )
        if answer.status == 200:
            return Outcome(
                Verdict.TRANSIENT,
                "Salesforce's answer does not hold one result per record",
                exchange=answer.exchange,
            )
        return answer.outcome(f"HTTP {answer.status}: {text}" if text else "")


# ----------------------------------------------------------------------------- command line


def _audience(login_url: str) -> str:
    host = urlparse(login_url).hostname or ""
    sandbox = host == "test.salesforce.com" or ".sandbox." in host
    return "https://test.salesforce.com" if sandbox else "https://login.salesforce.com"


def from_options(args: argparse.Namespace, settings: Settings) -> SalesforceDestination:
    """The destination the options and settings describe (credentials from the settings)."""
    client_id = settings.salesforce_client_id
    if not client_id:
        raise ConfigurationError(
            "LEADSTREAM_SALESFORCE_CLIENT_ID is not set: the consumer key of a connected app"
        )
    login_url = getattr(args, "login_url", None) or settings.salesforce_login_url
    secrets: list[str] = []
    if settings.salesforce_client_secret is not None:
        secret = settings.salesforce_client_secret.get_secret_value()
        secrets.append(secret)
        form = client_credentials_form(client_id, secret)
    elif settings.salesforce_private_key_file is not None and settings.salesforce_username:
        key_file: Path = settings.salesforce_private_key_file
        try:
            pem = key_file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {key_file}: {exc.strerror}") from exc
        form = jwt_bearer_form(client_id, settings.salesforce_username, pem, _audience(login_url))
    else:
        raise ConfigurationError(
            "Salesforce needs LEADSTREAM_SALESFORCE_CLIENT_SECRET (client credentials flow) or "
            "LEADSTREAM_SALESFORCE_USERNAME and LEADSTREAM_SALESFORCE_PRIVATE_KEY_FILE (JWT bearer)"
        )
    return SalesforceDestination(
        login_url=login_url,
        token_form=form,
        mapping=mapping_from(args, settings).salesforce,
        api_version=settings.salesforce_api_version,
        timeout=settings.connect_timeout_s,
        secrets=secrets,
    )
