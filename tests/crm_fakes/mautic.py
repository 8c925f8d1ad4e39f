"""A local Mautic instance: contacts, segments and the API's two ways to sign in.

Follows Mautic's REST API documentation (https://developer.mautic.org/#rest-api and the
developer-documentation repository it is built from) and Mautic's own API tests:
- `POST /api/contacts/batch/new`: a JSON list of contacts, at most `api_batch_max_limit` (200);
  a contact matching an existing one on a unique identifier field (email by default) updates it
  (mautic/mautic#5396), and values of fields the instance does not have are dropped; the
  answer is 201 with `contacts` (each with its `id`) and `statusCodes`
  in order, and `errors` keyed by position for the refused ones (an invalid email is refused);
- `POST /api/segments/{id}/contacts/add` and `.../remove` with `{"ids": [...]}`: the answer
  `{"success": 1, "details": {"<contactId>": {"success": true}}}`; an unknown segment is 404
  `{"errors": [{"message": "Item was not found.", "code": 404, "type": null}]}`;
- authentication: HTTP Basic with a Mautic user, or `POST /oauth/v2/token` with
  `grant_type=client_credentials` answering `access_token`, `expires_in` (3600), `token_type`;
  a wrong or expired credential is 401 `{"errors": [{"message": ..., "code": 401, "type": ...}]}`.

`contacts` holds the contacts by id, `segments` the members of each segment.
"""

from __future__ import annotations

import base64
import itertools
import re
from typing import Any

import orjson
from aiohttp import web

from crm_fakes.base import FakeServer

USER, PASSWORD = "leadstream-api", "mautic-api-password-1"
CLIENT_ID, CLIENT_SECRET = "1_mauticPublicKey", "mautic-secret-key-2"
FIELDS = {
    "email",
    "firstname",
    "lastname",
    "company",
    "points",
    "leadstream_lead_id",
    "leadstream_score",
}
UNIQUE = ("email", "leadstream_lead_id")
# Symfony's Email constraint in its HTML5 mode, which Mautic's contact form applies.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _errors(status: int, message: str, kind: str | None) -> web.Response:
    return web.json_response(
        {"errors": [{"message": message, "code": status, "type": kind}]}, status=status
    )


class MauticFake(FakeServer):
    """A Mautic instance's contacts, segments and API authentication."""

    def __init__(self, *, segment_ids: tuple[int, ...] = (3, 4, 7)) -> None:
        super().__init__()
        self.contacts: dict[int, dict[str, Any]] = {}
        self.segments: dict[int, set[int]] = {segment: set() for segment in segment_ids}
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/v2/token", self.token)
        app.router.add_post("/api/contacts/batch/new", self.batch_new)
        app.router.add_post("/api/segments/{id}/contacts/{action}", self.segment)

    def contact_id(self, field: str, value: str) -> int | None:
        return next((cid for cid, c in self.contacts.items() if c.get(field) == value), None)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # ------------------------------------------------------------------------------ auth

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user = password = ""
            if (user, password) == (USER, PASSWORD):
                return None
        elif header.startswith("Bearer "):
            if header[7:] in self.tokens:
                return None
            return _errors(401, "The access token provided has expired.", "invalid_grant")
        return _errors(401, "API authorization denied.", "access_denied")

    async def token(self, request: web.Request) -> web.Response:
        fault = await self.record(request)
        if fault is not None:
            return fault
        form = self.form()
        if form.get("grant_type") != "client_credentials":
            return self.oauth_refusal("invalid_grant", "Invalid grant_type parameter")
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return self.oauth_refusal("invalid_client", "The client credentials are invalid")
        self.tokens_issued += 1
        access = f"mautic-access-token-{self.tokens_issued}"
        self.tokens.add(access)
        return web.json_response(
            {"access_token": access, "expires_in": 3600, "token_type": "bearer", "scope": None}
        )

    # ------------------------------------------------------------------------------ contacts

    def _save(self, item: Any) -> tuple[int, dict[str, Any] | None, str]:
        if not isinstance(item, dict):
            return 400, None, "A contact is an object of field values."
        email = item.get("email")
        if email is not None and not (isinstance(email, str) and _EMAIL.fullmatch(email)):
            return 400, None, "email: A valid email is required."
        values = {k: v for k, v in item.items() if k in FIELDS}
        match = next(
            (
                cid
                for field in UNIQUE
                if values.get(field)
                for cid in [self.contact_id(field, values[field])]
                if cid is not None
            ),
            None,
        )
        if match is None:
            match = next(self._ids)
            self.contacts[match] = {}
            code = 201
        else:
            code = 200
        self.contacts[match].update(values)
        return code, {"id": match, "fields": {"all": {"id": match, **self.contacts[match]}}}, ""

    async def batch_new(self, request: web.Request) -> web.Response:
        refused = await self.record(request) or self._auth(request)
        if refused is not None:
            return refused
        try:
            items = orjson.loads(self.requests[-1]["body"])
        except orjson.JSONDecodeError:
            return _errors(400, "Request body is not valid JSON.", "invalid_request")
        if not isinstance(items, list):
            return _errors(400, "A batch is a list of contacts.", "invalid_request")
        if len(items) > 200:
            return _errors(400, "A max of 200 entities are supported at a time.", None)
        contacts, codes, errors = [], [], {}
        for position, item in enumerate(items):
            code, contact, message = self._save(item)
            codes.append(code)
            if contact is None:
                errors[str(position)] = {"code": code, "message": message, "type": None}
            else:
                contacts.append(contact)
        body: dict[str, Any] = {"contacts": contacts, "statusCodes": codes}
        if errors:
            body["errors"] = errors
        return web.json_response(body, status=201)

    async def segment(self, request: web.Request) -> web.Response:
        refused = await self.record(request) or self._auth(request)
        if refused is not None:
            return refused
        action = request.match_info["action"]
        try:
            segment_id = int(request.match_info["id"])
        except ValueError:
            segment_id = -1
        if action not in ("add", "remove") or segment_id not in self.segments:
            return _errors(404, "Item was not found.", None)
        try:
            body = orjson.loads(self.requests[-1]["body"])
        except orjson.JSONDecodeError:
            body = None
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            return _errors(400, "ids is a list of contact ids.", None)
        details = {}
        members = self.segments[segment_id]
        for contact_id in ids:
            known = contact_id in self.contacts
            if known:
                (members.add if action == "add" else members.discard)(contact_id)
            details[str(contact_id)] = {"success": known}
        return web.json_response({"success": 1, "details": details})
