"""HubSpot: each stage change upserts the lead's contact through the CRM v3 API.

One `POST /crm/v3/objects/contacts/batch/upsert` per batch of at most 100 changes
(https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts),
authenticated with a private app's access token (`Authorization: Bearer`). Each input sets the
mapped `lifecyclestage`, `hs_lead_status` and score properties, and carries the change id as its
`objectWriteTraceId`, so HubSpot's multi-status answer (207) names the inputs it refused
(https://developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors").

**Which contact.** With `id_property: email` (the default), the lead id is the contact's email
address (`ada@example.com`, or `email:ada@example.com`); a lead whose id is not an address is
refused with that reason. Any other `id_property` is a unique-value contact property holding the
lead id, so leads keyed by your own ids upsert the contact holding that id.

**Backwards moves.** HubSpot keeps `lifecyclestage` from moving back: a value earlier than the
current one is silently ignored, and the documented way back is to clear the property first, in
a separate request, then set it (HubSpot's contacts guide; HubSpot answers in
https://integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333). When Leadstream moves a
lead back (recycled, for instance), its contact is first upserted with `lifecyclestage: ""`, then
with the new value. Only Leadstream's own backwards moves clear the stage: a forward move is a
plain set, which HubSpot ignores for a contact someone already moved further by hand.

**Companies.** With `connect hubspot --accounts`, each account stage change upserts a company
through `POST /crm/v3/objects/companies/batch/upsert`
(https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/companies/batch/upsert-companies),
found by `hubspot.companies.id_property` (default `leadstream_account_id`), a company property
with unique values holding the account id: an upsert needs a unique property, and a company's
`domain` is not one (HubSpot allows several companies per domain,
https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/companies/guide). The
company's `domain` is set too when the account id is a domain, and `lifecyclestage` from the
account stage (MQA → `marketingqualifiedlead`, opportunity, customer; target and engaged leave it
alone), cleared first on a backwards move as for contacts. The private app needs the
`crm.objects.companies.write` scope.

**Rate.** HubSpot allows a private app 100 requests per 10 seconds on Free and Starter accounts
and 190 on Professional and Enterprise
(https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines); the default
9.5 requests/s with a burst of 4 stays within 100 in any 10 seconds with a request to spare, so
the network's jitter does not push the hundredth into HubSpot's window. A batch with a backwards
move counts as two requests (`requests`).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx

from stream.connect.crm_api import Answer, call, complete, section_for
from stream.connect.destination import AccountChange, Change, Outcome, Verdict
from stream.connect.mapping import HubspotMapping, email_of, mapping_from
from stream.errors import ConfigurationError
from stream.settings import Settings

__all__ = ["MAX_BATCH", "HubspotDestination", "from_options"]

MAX_BATCH = 100
"""HubSpot's limit of inputs per batch call."""
UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
COMPANIES_UPSERT_PATH = "/crm/v3/objects/companies/batch/upsert"
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.[a-z]{2,63}$"
)

_C = TypeVar("_C", Change, AccountChange)


class HubspotDestination:
    """Stage changes as HubSpot contact upserts."""

    name = "hubspot"
    max_batch = MAX_BATCH

    def __init__(
        self,
        *,
        access_token: str,
        mapping: HubspotMapping,
        api_url: str = "https://api.hubapi.com",
        timeout: float = 10.0,
        rate_per_s: float = 9.5,
        burst: int = 4,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._mapping = mapping
        self._url = api_url.rstrip("/") + UPSERT_PATH
        self._companies_url = api_url.rstrip("/") + COMPANIES_UPSERT_PATH
        self._token = access_token
        self._secrets = [access_token]
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _input(self, change: Change) -> dict[str, Any] | Outcome:
        """The upsert input of `change`, or why it is not sent."""
        record = change.record
        section = section_for(self._mapping, "hubspot", change)
        if isinstance(section, Outcome):
            return section
        if section.id_property == "email":
            id_value = email_of(record.lead_id)
            if id_value is None:
                return Outcome(
                    Verdict.PERMANENT,
                    f"lead id {record.lead_id!r} is not an email address, and HubSpot finds "
                    "contacts by email (set hubspot.id_property in the mapping to a unique "
                    "contact property holding lead ids)",
                )
        else:
            id_value = record.lead_id
        properties: dict[str, str] = {}
        lifecycle = section.lifecycle(record.to_stage)
        if lifecycle is not None:
            properties["lifecyclestage"] = lifecycle
        status = section.lead_status(record.to_stage)
        if status is not None:
            properties["hs_lead_status"] = status
        for name, value in section.properties.values(record).items():
            properties[name] = str(value)
        if not properties:
            return Outcome(
                Verdict.SKIPPED, f"the mapping sets nothing for stage {record.to_stage.value!r}"
            )
        return {
            "idProperty": section.id_property,
            "id": id_value,
            "properties": properties,
            "objectWriteTraceId": change.key,
        }

    def requests(self, changes: Sequence[Change | AccountChange]) -> int:
        """Requests one `deliver` (or `deliver_accounts`) of `changes` makes: one, and one more
        (the clears) when a change moves a record's lifecycle stage back."""
        for change in changes:
            made = (
                self._company_input(change)
                if isinstance(change, AccountChange)
                else self._input(change)
            )
            if not isinstance(made, Outcome) and self._backwards(change, made["properties"]):
                return 2
        return 1

    def _company_input(self, change: AccountChange) -> dict[str, Any] | Outcome:
        """The company upsert input of an account stage change, or why it is not sent."""
        record = change.record
        section = section_for(self._mapping, "hubspot", change)
        if isinstance(section, Outcome):
            return section
        companies = section.companies
        properties: dict[str, str] = {}
        lifecycle = companies.lifecycle(record.to_stage)
        if lifecycle is not None:
            properties["lifecyclestage"] = lifecycle
        if companies.set_domain and _DOMAIN.fullmatch(record.account_id):
            properties["domain"] = record.account_id
        for name, value in companies.properties.values(record).items():
            properties[name] = str(value)
        if not properties:
            return Outcome(
                Verdict.SKIPPED,
                f"the mapping sets nothing for account stage {record.to_stage.value!r}",
            )
        return {
            "idProperty": companies.id_property,
            "id": record.account_id,
            "properties": properties,
            "objectWriteTraceId": change.key,
        }

    def _backwards(self, change: Change | AccountChange, properties: dict[str, str]) -> bool:
        section = self._mapping.for_model(change.record.model)
        if section is None or "lifecyclestage" not in properties:
            return False
        if isinstance(change, AccountChange):
            account_from = change.record.from_stage
            before = None if account_from is None else section.companies.lifecycle(account_from)
        else:
            lead_from = change.record.from_stage
            before = None if lead_from is None else section.lifecycle(lead_from)
        return section.is_backwards(before, properties["lifecyclestage"])

    async def deliver(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        return await self._deliver(changes, self._input, self._url, "contact")

    async def deliver_accounts(self, changes: Sequence[AccountChange]) -> Sequence[Outcome]:
        return await self._deliver(changes, self._company_input, self._companies_url, "company")

    async def _deliver(
        self,
        changes: Sequence[_C],
        make_input: Callable[[_C], dict[str, Any] | Outcome],
        url: str,
        noun: str,
    ) -> Sequence[Outcome]:
        if len(changes) > MAX_BATCH:
            raise ValueError(f"HubSpot takes at most {MAX_BATCH} records per call")
        outcomes: list[Outcome | None] = [None] * len(changes)
        pending: dict[int, dict[str, Any]] = {}
        records: set[tuple[str, str]] = set()
        for index, change in enumerate(changes):
            made = make_input(change)
            if isinstance(made, Outcome):
                outcomes[index] = made
            elif (made["idProperty"], made["id"]) in records:
                # HubSpot refuses a batch naming a record twice: this one goes next time.
                outcomes[index] = Outcome(
                    Verdict.TRANSIENT, f"another change of this batch names the same {noun}"
                )
            else:
                records.add((made["idProperty"], made["id"]))
                pending[index] = made
        clears = {
            index: {**item, "properties": {"lifecyclestage": ""}}
            for index, item in pending.items()
            if self._backwards(changes[index], item["properties"])
        }
        if clears:
            for index, outcome in (await self._upsert(clears, url, noun)).items():
                if outcome.verdict is not Verdict.DELIVERED:
                    outcomes[index] = outcome
                    del pending[index]
        if pending:
            for index, outcome in (await self._upsert(pending, url, noun)).items():
                outcomes[index] = outcome
        return complete(outcomes)

    async def _upsert(
        self, inputs: dict[int, dict[str, Any]], url: str, noun: str
    ) -> dict[int, Outcome]:
        answer = await call(
            self._client,
            "POST",
            url,
            json={"inputs": list(inputs.values())},
            headers={"Authorization": f"Bearer {self._token}"},
            secrets=self._secrets,
        )
        if answer.status == 207:
            return self._multi_status(inputs, answer, noun)
        outcome = answer.outcome(_reason(answer, noun))
        return dict.fromkeys(inputs, outcome)

    @staticmethod
    def _multi_status(
        inputs: dict[int, dict[str, Any]], answer: Answer, noun: str
    ) -> dict[int, Outcome]:
        by_trace = {item["objectWriteTraceId"]: index for index, item in inputs.items()}
        refused: dict[int, Outcome] = {}
        body = answer.json()
        errors = body.get("errors", []) if isinstance(body, dict) else []
        for error in errors if isinstance(errors, list) else []:
            context = error.get("context") if isinstance(error, dict) else None
            named = [
                value
                for values in (context or {}).values()
                if isinstance(values, list)
                for value in values
            ]
            for trace in named:
                index = by_trace.get(trace)
                if index is None:
                    continue
                status = str(error.get("status", ""))
                verdict = Verdict.TRANSIENT if status.startswith("5") else Verdict.PERMANENT
                reason = f"HubSpot refused the {noun}: {error.get('category', '')}: " + str(
                    error.get("message", "")
                )
                refused[index] = Outcome(verdict, reason, exchange=answer.exchange)
        results = body.get("results") if isinstance(body, dict) else None
        saved = len(results) if isinstance(results, list) else -1
        # An input no error names was saved, if HubSpot's count of results says so; otherwise
        # which inputs failed is unknown and they are all sent again (an upsert repeats safely).
        rest = (
            Outcome.delivered()
            if saved == len(inputs) - len(refused)
            else Outcome(
                Verdict.TRANSIENT,
                f"HubSpot saved {saved} of {len(inputs)} {_PLURAL[noun]} and did not say which "
                "failed",
                exchange=answer.exchange,
            )
        )
        return {index: refused.get(index, rest) for index in inputs}


def _reason(answer: Answer, noun: str = "contact") -> str:
    """Why HubSpot refused a whole call, in HubSpot's words."""
    body = answer.json()
    category = body.get("category", "") if isinstance(body, dict) else ""
    message = body.get("message", "") if isinstance(body, dict) else ""
    if answer.status == 401:
        return (
            f"HubSpot refused the access token ({category or 'HTTP 401'}): {message} "
            "(check LEADSTREAM_HUBSPOT_ACCESS_TOKEN: a private app's token, not expired or "
            "rotated)"
        ).strip()
    if answer.status == 403:
        return (
            f"HubSpot forbids the call ({category or 'HTTP 403'}): {message} "
            f"(the private app needs the scope {_SCOPES[noun]})"
        )
    if answer.status is None or not category:
        return ""
    return f"HTTP {answer.status} {category}: {message}"


_SCOPES = {"contact": "crm.objects.contacts.write", "company": "crm.objects.companies.write"}
_PLURAL = {"contact": "contacts", "company": "companies"}


# ----------------------------------------------------------------------------- command line


def from_options(args: argparse.Namespace, settings: Settings) -> HubspotDestination:
    """The destination the options and settings describe; the token comes from the settings
    (`LEADSTREAM_HUBSPOT_ACCESS_TOKEN`), never from the command line."""
    token = settings.hubspot_access_token
    if token is None or not token.get_secret_value():
        raise ConfigurationError(
            "LEADSTREAM_HUBSPOT_ACCESS_TOKEN is not set: create a private app in HubSpot "
            "(Settings > Integrations > Private Apps) with the crm.objects.contacts.write scope "
            "(and crm.objects.companies.write to deliver account stage changes)"
        )
    return HubspotDestination(
        access_token=token.get_secret_value(),
        mapping=mapping_from(args, settings).hubspot,
        api_url=getattr(args, "api_url", None) or settings.hubspot_api_url,
        timeout=settings.connect_timeout_s,
    )
