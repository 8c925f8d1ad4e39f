"""A local HubSpot CRM v3 contacts and companies API enforcing the documented contract of batch
upsert.

Follows:
- https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
  (`POST /crm/v3/objects/contacts/batch/upsert`, `{"inputs": [{"id", "idProperty", "properties",
  "objectWriteTraceId"}]}`, the BatchResponse answer with `status`, `results`, `startedAt`,
  `completedAt`, and `errors`/`numErrors` when some inputs failed);
- https://developers.hubspot.com/docs/api-reference/error-handling (the error shape `status`,
  `message`, `correlationId`, `category`; 207 multi-status naming the failed inputs by their
  `objectWriteTraceId`; 401 for invalid authentication; 429 for rate limits);
- https://developers.hubspot.com/docs/api/crm/contacts (email is the unique identifier;
  `idProperty` is `email` or a property with unique values; `lifecyclestage` takes internal
  values) and the lifecycle rule HubSpot's staff describe in
  https://integrate.hubspot.com/t/update-lifecycle-stage-using-api/1333: a move to an earlier
  stage is ignored unless the property was cleared (set to "") first;
- https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines (batch inputs
  at most 100; 100 requests per 10 seconds for a private app on Free and Starter);
- https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/companies/batch/upsert-companies
  (`POST /crm/v3/objects/companies/batch/upsert`, the same input and answer shapes; `idProperty`
  "refers to a property whose values are unique for the object") and the companies guide
  https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/companies/guide (`domain`
  identifies companies but is not unique, so it is no `idProperty`; `lifecyclestage` as for
  contacts).

It keeps the records it holds in `contacts` and `companies` (by HubSpot id) so a test reads the
end state, every upsert call's arrival time, status and input count in `calls`, and every input
it saved in `applied`. `GET /_fake/stats` (a path of this stand-in, not HubSpot's) answers the
calls and the saved inputs as JSON, for a process that runs the stand-in in another process
(`python -m crm_fakes hubspot --port 8098`, with tests/ on the import path).
"""

from __future__ import annotations

import re
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from aiohttp import web

from crm_fakes.base import FakeServer
from schemas.stages import HubspotLifecycleStage

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
# HubSpot's default lifecycle stages, first to last (its internal values).
LIFECYCLE = get_args(HubspotLifecycleStage)
LEAD_STATUS = (
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BUILTIN = {
    "contacts": {"email", "lifecyclestage", "hs_lead_status", "firstname", "lastname"},
    "companies": {"domain", "name", "lifecyclestage", "industry", "numberofemployees"},
}
"""Default properties of each object (a sample: the ones the tests use)."""
_UNIQUE_BUILTIN = {"contacts": {"email"}, "companies": set()}
"""Default properties with unique values: `idProperty` candidates besides custom ones."""
_CLEAR = {"lifecyclestage": ""}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, category: str, message: str, **extra: Any) -> web.Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return web.json_response(body, status=status)


def _input_count(raw: bytes) -> int:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    inputs = body.get("inputs") if isinstance(body, dict) else None
    return len(inputs) if isinstance(inputs, list) else 0


class HubspotFake(FakeServer):
    """HubSpot's contacts batch upsert, with its auth, validation, limits and lifecycle rule."""

    def __init__(
        self, *, custom_properties: dict[str, bool] | None = None, rate_per_10s: int = 100
    ) -> None:
        super().__init__()
        self.tokens = {TOKEN}
        self.expired_tokens: set[str] = set()
        # Custom contact properties the account has, name → has unique values.
        self.custom_properties = {
            "leadstream_score": False,
            "leadstream_grade": False,
            "leadstream_stage": False,
            "leadstream_lead_id": True,
            **(custom_properties or {}),
        }
        # Custom company properties, name → has unique values.
        self.custom_company_properties = {
            "leadstream_account_score": False,
            "leadstream_account_stage": False,
            "leadstream_account_id": True,
        }
        self.contacts: dict[str, dict[str, str]] = {}
        self.companies: dict[str, dict[str, str]] = {}
        # (object, unique property, value) → HubSpot id, as HubSpot finds a record by idProperty
        self._by_unique: dict[tuple[str, str, str], str] = {}
        self.rate_per_10s = rate_per_10s
        self._calls: deque[float] = deque()
        self.calls: list[tuple[float, int, int]] = []
        """Every upsert call: arrival (`time.monotonic()`), the status answered, inputs sent."""
        self.applied: list[tuple[str, str, bool]] = []
        """Every input saved, in order: the record's id value, its `objectWriteTraceId`, and
        whether it only cleared `lifecyclestage`."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/crm/v3/objects/contacts/batch/upsert", self.upsert)
        app.router.add_post("/crm/v3/objects/companies/batch/upsert", self.upsert_companies)
        app.router.add_get("/_fake/stats", self.stats)

    async def stats(self, request: web.Request) -> web.Response:
        body = {
            "rate_per_10s": self.rate_per_10s,
            "calls": self.calls,
            "applied": self.applied,
            "contacts": len(self.contacts),
            "companies": len(self.companies),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def contact(self, prop: str, value: str) -> dict[str, str] | None:
        return self._find("contacts", prop, value)

    def company(self, prop: str, value: str) -> dict[str, str] | None:
        return self._find("companies", prop, value)

    def _records(self, kind: str) -> dict[str, dict[str, str]]:
        return self.contacts if kind == "contacts" else self.companies

    def _find(self, kind: str, prop: str, value: str) -> dict[str, str] | None:
        records = self._records(kind)
        rid = self._by_unique.get((kind, prop, value))
        if rid is not None:
            return records[rid]
        for properties in records.values():
            if properties.get(prop) == value:
                return properties
        return None

    def _custom(self, kind: str) -> dict[str, bool]:
        return self.custom_properties if kind == "contacts" else self.custom_company_properties

    def _known(self, name: str, kind: str = "contacts") -> bool:
        return name in _BUILTIN[kind] or name in self._custom(kind)

    def _unique(self, name: str, kind: str) -> bool:
        return name in _UNIQUE_BUILTIN[kind] or self._custom(kind).get(name, False)

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        if token in self.expired_tokens:
            return _error(
                401,
                "EXPIRED_AUTHENTICATION",
                "The OAuth token used to make this call expired 1 day(s) ago.",
            )
        if token not in self.tokens:
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        return None

    def _rate(self) -> web.Response | None:
        now = time.monotonic()
        while self._calls and now - self._calls[0] >= 10:
            self._calls.popleft()
        if len(self._calls) >= self.rate_per_10s:
            wait = max(1, int(10 - (now - self._calls[0])) + 1)
            response = _error(
                429,
                "RATE_LIMITS",
                "You have reached your ten_secondly_rolling limit.",
                errorType="RATE_LIMIT",
                policyName="TEN_SECONDLY_ROLLING",
            )
            response.headers["Retry-After"] = str(wait)
            return response
        self._calls.append(now)
        return None

    def _invalid(self, item: Any, kind: str = "contacts") -> str | None:
        """Why one input is malformed as a whole (a 400 for the batch)."""
        if not isinstance(item, dict):
            return "each input must be an object"
        unknown = set(item) - {"id", "idProperty", "properties", "objectWriteTraceId"}
        id_property = item.get("idProperty")
        properties = item.get("properties")
        problems = [
            (bool(unknown), f"Unrecognized field(s) {sorted(unknown)} in input"),
            (not isinstance(item.get("id"), str) or not item["id"], "input.id is required"),
            (not isinstance(properties, dict), "input.properties is required"),
            (
                not self._unique(str(id_property), kind),
                f"idProperty {id_property!r} is not a property with unique values "
                f"({'email or ' if kind == 'contacts' else ''}a unique custom property)",
            ),
        ]
        for name, value in properties.items() if isinstance(properties, dict) else ():
            problems.append(
                (
                    not self._known(name, kind),
                    f'Property values were not valid: [{{"name":"{name}",'
                    f'"error":"PROPERTY_DOESNT_EXIST",'
                    f'"message":"Property {name} does not exist"}}]',
                )
            )
            problems.append((not isinstance(value, str), f"Property {name} must be a string"))
        return next((message for failed, message in problems if failed), None)

    def _value_error(self, item: dict[str, Any]) -> str | None:
        """Why one input's values are refused (that input fails, the others go on)."""
        properties = item["properties"]
        if item["idProperty"] == "email" and not _EMAIL.fullmatch(item["id"]):
            return f"Email address {item['id']} is invalid"
        stage = properties.get("lifecyclestage")
        if stage not in (None, "") and stage not in LIFECYCLE:
            return f"{stage} was not one of the allowed options for lifecyclestage"
        status = properties.get("hs_lead_status")
        if status not in (None, "") and status not in LEAD_STATUS:
            return f"{status} was not one of the allowed options for hs_lead_status"
        return None

    def _apply(self, item: dict[str, Any], kind: str = "contacts") -> dict[str, Any]:
        records = self._records(kind)
        id_property, id_value = item["idProperty"], item["id"]
        found = self._by_unique.get((kind, id_property, id_value))
        new = found is None
        if found is None:
            cid, props = str(100 + len(records)), {id_property: id_value}
            records[cid] = props
            self._by_unique[kind, id_property, id_value] = cid
        else:
            cid, props = found, records[found]
        for name, value in item["properties"].items():
            if name == "lifecyclestage" and value:
                current = props.get("lifecyclestage") or ""
                if current and LIFECYCLE.index(value) < LIFECYCLE.index(current):
                    continue  # backwards without a clear first: HubSpot ignores it
            if self._unique(name, kind):
                self._by_unique.pop((kind, name, props.get(name, "")), None)
                self._by_unique[kind, name, value] = cid
            props[name] = value
        self.applied.append(
            (id_value, str(item.get("objectWriteTraceId", "")), item["properties"] == _CLEAR)
        )
        return {
            "id": cid,
            "properties": dict(props),
            "new": new,
            "createdAt": _now(),
            "updatedAt": _now(),
            "archived": False,
        }

    def _batch_problem(
        self, raw: bytes, kind: str = "contacts"
    ) -> web.Response | list[dict[str, Any]]:
        """The inputs of a well-formed batch, or HubSpot's 400 for the whole batch."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        inputs = body.get("inputs") if isinstance(body, dict) and set(body) == {"inputs"} else None
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "VALIDATION_ERROR", 'The body must be {"inputs": [...]}, not empty')
        if len(inputs) > 100:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Batch input size {len(inputs)} exceeds the limit of 100",
                subCategory="BATCH_INPUT_TOO_LARGE",
            )
        problem = next(filter(None, (self._invalid(item, kind) for item in inputs)), None)
        if problem is None and len({item["id"] for item in inputs}) != len(inputs):
            problem = "Duplicate IDs found in batch input"
        return _error(400, "VALIDATION_ERROR", problem) if problem is not None else inputs

    async def upsert(self, request: web.Request) -> web.Response:
        return await self._logged(request, "contacts")

    async def upsert_companies(self, request: web.Request) -> web.Response:
        return await self._logged(request, "companies")

    async def _logged(self, request: web.Request, kind: str) -> web.Response:
        arrived = time.monotonic()
        response = await self._upsert(request, kind)
        self.calls.append((arrived, response.status, _input_count(await request.read())))
        return response

    async def _upsert(self, request: web.Request, kind: str) -> web.Response:
        started = _now()
        refused = await self.record(request) or self._auth(request) or self._rate()
        if refused is not None:
            return refused
        inputs = self._batch_problem(self.requests[-1]["body"], kind)
        if isinstance(inputs, web.Response):
            return inputs
        traced = all(isinstance(item.get("objectWriteTraceId"), str) for item in inputs)
        results, errors = [], []
        for item in inputs:
            problem = self._value_error(item)
            if problem is None:
                results.append(self._apply(item, kind))
            elif not traced:  # without trace ids HubSpot cannot say which input failed
                return _error(400, "VALIDATION_ERROR", problem)
            else:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": problem,
                        "context": {"objectWriteTraceId": [item["objectWriteTraceId"]]},
                    }
                )
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now(),
            "requestedAt": started,
        }
        if errors:
            answer |= {"errors": errors, "numErrors": len(errors)}
        return web.json_response(answer, status=207 if errors else 200)
