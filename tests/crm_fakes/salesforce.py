"""A local Salesforce org: the OAuth 2.0 token endpoint and the sObject Collections upsert of Lead
and Account.

Follows:
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm
  (`PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}`, body
  `{"allOrNone": bool, "records": [{"attributes": {"type": ...}, ...}]}`, at most 200 records,
  one save result `{"id", "success", "errors": [{"statusCode", "message", "fields"}], "created"}`
  per record in order; available since API v46.0);
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm (the
  error list `[{"message", "errorCode"}]`; 401 `INVALID_SESSION_ID` "Session expired or
  invalid"; 400 `INVALID_FIELD`; 403 `REQUEST_LIMIT_EXCEEDED`);
- https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_client_credentials_flow.htm
  and https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm (the token
  request `grant_type=client_credentials` with `client_id`/`client_secret`, or
  `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an RS256 `assertion` whose
  `iss`, `sub`, `aud`, `exp` are checked; the answer `access_token`, `instance_url`, `id`,
  `token_type`, `issued_at`, `signature`; refusals `{"error", "error_description"}`);
- the Lead object: `LastName` and `Company` are required to create one, `Status` is a restricted
  picklist (the default values of a new org);
- the Account object
  (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_account.htm):
  `Name` is required to create one.

`leads` and `accounts` hold the org's records by Id; `expire_sessions()` ends every issued token.
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crm_fakes.base import FakeServer

CLIENT_ID = "3MVG9fakeConsumerKey"
CLIENT_SECRET = "fake-consumer-secret-0123456789"
USERNAME = "integration@example.com"
STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
LEAD_FIELDS = {
    "LastName",
    "FirstName",
    "Company",
    "Email",
    "Status",
    "Leadstream_Lead_Id__c",
    "Leadstream_Score__c",
    "Leadstream_Grade__c",
    "Leadstream_Stage__c",
}
ACCOUNT_FIELDS = {
    "Name",
    "Website",
    "Industry",
    "Leadstream_Account_Id__c",
    "Leadstream_Account_Score__c",
    "Leadstream_Account_Stage__c",
}
FIELDS = {"Lead": LEAD_FIELDS, "Account": ACCOUNT_FIELDS}
EXTERNAL_IDS = {"Lead": {"Leadstream_Lead_Id__c"}, "Account": {"Leadstream_Account_Id__c"}}
REQUIRED = {"Lead": ("LastName", "Company"), "Account": ("Name",)}
"""Fields a new record must have."""


def _errors(status: int, code: str, message: str) -> web.Response:
    return web.json_response([{"message": message, "errorCode": code}], status=status)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class SalesforceFake(FakeServer):
    """A Salesforce org's token endpoint and Lead upsert."""

    def __init__(self, *, jwt_public_key: rsa.RSAPublicKey | None = None) -> None:
        super().__init__()
        self.jwt_public_key = jwt_public_key
        self.sessions: set[str] = set()
        self.tokens_issued = 0
        self.leads: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/services/oauth2/token", self.token)
        app.router.add_patch(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}", self.upsert
        )

    def add_lead(self, **fields: Any) -> str:
        lead_id = f"00Q5g00000{next(self._ids):08d}"
        self.leads[lead_id] = {"Status": STATUSES[0], **fields}
        return lead_id

    def add_account(self, **fields: Any) -> str:
        account_id = f"0015g00000{next(self._ids):08d}"
        self.accounts[account_id] = dict(fields)
        return account_id

    def account(self, external_id: str) -> dict[str, Any] | None:
        return next(
            (
                account
                for account in self.accounts.values()
                if account.get("Leadstream_Account_Id__c") == external_id
            ),
            None,
        )

    def lead(self, external_id: str) -> dict[str, Any] | None:
        return next(
            (
                lead
                for lead in self.leads.values()
                if lead.get("Leadstream_Lead_Id__c") == external_id
            ),
            None,
        )

    def expire_sessions(self) -> None:
        self.sessions.clear()

    # ------------------------------------------------------------------------------ OAuth

    def _jwt_ok(self, assertion: str) -> bool:
        if self.jwt_public_key is None:
            return False
        try:
            header, claims, signature = assertion.split(".")
            self.jwt_public_key.verify(
                _b64url_decode(signature),
                f"{header}.{claims}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            decoded = orjson.loads(_b64url_decode(claims))
        except (ValueError, InvalidSignature, orjson.JSONDecodeError):
            return False
        return (
            orjson.loads(_b64url_decode(header)).get("alg") == "RS256"
            and decoded.get("iss") == CLIENT_ID
            and decoded.get("sub") == USERNAME
            and decoded.get("aud") == "https://login.salesforce.com"
            and isinstance(decoded.get("exp"), int)
            and decoded["exp"] > time.time()
        )

    async def token(self, request: web.Request) -> web.Response:
        fault = await self.record(request)
        if fault is not None:
            return fault
        if request.content_type != "application/x-www-form-urlencoded":
            return self.oauth_refusal("invalid_request", "must be form-urlencoded")
        form = self.form()
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return self.oauth_refusal("invalid_client", "invalid client credentials")
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            if not self._jwt_ok(form.get("assertion", "")):
                return self.oauth_refusal("invalid_grant", "invalid assertion")
        else:
            return self.oauth_refusal("unsupported_grant_type", "grant type not supported")
        self.tokens_issued += 1
        access = f"00D5g000004fake!AQ0AQ.session-{self.tokens_issued}"
        self.sessions.add(access)
        return web.json_response(
            {
                "access_token": access,
                "signature": "c2lnbmF0dXJl",
                "scope": "api",
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/00D5g000004fake/0055g00000fakeUser",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
            }
        )

    # ------------------------------------------------------------------------------ upsert

    def _save(self, sobject: str, field: str, record: Any) -> dict[str, Any]:
        def failed(code: str, message: str, fields: list[str]) -> dict[str, Any]:
            error = {"statusCode": code, "message": message, "fields": fields}
            return {"success": False, "errors": [error]}

        key = record.get(field)
        if not isinstance(key, str) or not key:
            return failed("MISSING_ARGUMENT", f"{field} not specified", [field])
        status = record.get("Status")
        if sobject == "Lead" and status is not None and status not in STATUSES:
            return failed(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Lead Status: bad value for restricted picklist field: {status}",
                ["Status"],
            )
        values = {k: v for k, v in record.items() if k != "attributes"}
        stored = self.leads if sobject == "Lead" else self.accounts
        existing = next(
            ((record_id, held) for record_id, held in stored.items() if held.get(field) == key),
            None,
        )
        if existing is None:
            missing = [name for name in REQUIRED[sobject] if not values.get(name)]
            if missing:
                return failed(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
            add = self.add_lead if sobject == "Lead" else self.add_account
            return {"id": add(**values), "success": True, "errors": [], "created": True}
        record_id, held = existing
        held.update(values)
        return {"id": record_id, "success": True, "errors": [], "created": False}

    def _refusal(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if header.removeprefix("Bearer ") not in self.sessions or not header.startswith("Bearer "):
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        version = request.match_info["version"]
        try:
            number = float(version.removeprefix("v"))
        except ValueError:
            number = 0.0
        if not version.startswith("v") or number < 46.0:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        sobject = request.match_info["sobject"]
        if sobject not in FIELDS:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        field = request.match_info["field"]
        if field not in EXTERNAL_IDS[sobject]:
            return _errors(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} is not an External ID or indexed field for "
                f"{sobject}",
            )
        return None

    def _body_problem(self, raw: bytes, sobject: str) -> web.Response | list[Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _errors(400, "JSON_PARSER_ERROR", "Unexpected character in the request body")
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _errors(400, "JSON_PARSER_ERROR", "records is required")
        unknown_keys = set(body) - {"allOrNone", "records"}
        if unknown_keys:
            return _errors(
                400, "JSON_PARSER_ERROR", f"Unrecognized field {sorted(unknown_keys)[0]!r}"
            )
        records = body["records"]
        if len(records) > 200:
            return _errors(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records",
            )
        problem = next(
            filter(None, (self._record_problem(record, sobject) for record in records)), None
        )
        return problem if problem is not None else list(records)

    @staticmethod
    def _record_problem(record: Any, sobject: str) -> web.Response | None:
        if not isinstance(record, dict) or record.get("attributes", {}).get("type") != sobject:
            return _errors(400, "INVALID_TYPE", f"Each record must carry attributes.type {sobject}")
        unknown = set(record) - FIELDS[sobject] - {"attributes"}
        if unknown:
            name = sorted(unknown)[0]
            return _errors(
                400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
            )
        return None

    async def upsert(self, request: web.Request) -> web.Response:
        refused = await self.record(request) or self._refusal(request)
        if refused is not None:
            return refused
        sobject = request.match_info["sobject"]
        records = self._body_problem(self.requests[-1]["body"], sobject)
        if isinstance(records, web.Response):
            return records
        field = request.match_info["field"]
        return web.json_response([self._save(sobject, field, record) for record in records])
