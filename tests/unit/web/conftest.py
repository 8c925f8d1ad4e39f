"""Local stand-ins of the lead APIs the collector reads (LinkedIn's Lead Sync, Meta's Graph API).

Each is a real aiohttp server that enforces the documented contract: the path and API version,
the headers and query parameters the vendor requires, the access token, and answers shaped as
the vendor documents them (its documented examples, from tests/fixtures), with the vendor's
error shape otherwise. `requests` keeps what each request asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LINKEDIN_TOKEN = "li-unit-access-token"
LINKEDIN_VERSION = "202601"
META_TOKEN = "meta-unit-page-token"
META_APP_SECRET = "meta-unit-app-secret"
META_VERSION = "v25.0"


def _fixture(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text(encoding="utf-8"))


@dataclass
class LinkedInApi:
    """`/rest/leadFormResponses/{id}` and `/rest/leadForms/{id}` of LinkedIn's API."""

    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    forms: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    delay: float = 0.0
    base_url: str = ""

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"status": status, "message": message}, status=status)

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.requests.append(
            {"path": request.path, "query": dict(request.query), "headers": dict(request.headers)}
        )
        if self.fail_with is not None:
            return self._error(self.fail_with, "Internal Server Error")
        if request.headers.get("Authorization") != f"Bearer {LINKEDIN_TOKEN}":
            return self._error(401, "Invalid access token")
        version = request.headers.get("LinkedIn-Version")
        if version is None or not re.fullmatch(r"\d{6}", version):
            return self._error(400, "A version must be present. Please specify a version")
        if version != LINKEDIN_VERSION:
            return self._error(426, f"Requested version {version} is not active")
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return self._error(400, "X-Restli-Protocol-Version 2.0.0 is required")
        return None

    async def lead(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        if (refused := self._refusal(request)) is not None:
            return refused
        if "formResponse" not in request.query.get("fields", ""):
            return self._error(400, "fields must project formResponse")
        lead = self.leads.get(request.match_info["id"])
        return web.json_response(lead) if lead else self._error(404, "Not found")

    async def form(self, request: web.Request) -> web.Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        form = self.forms.get(request.match_info["id"])
        return web.json_response(form) if form else self._error(404, "Not found")


@dataclass
class MetaApi:
    """`GET /<version>/<leadgen id>` of Meta's Graph API."""

    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    require_proof: bool = True
    fail_with: int | None = None
    base_url: str = ""

    @staticmethod
    def _error(message: str, code: int, status: int = 400) -> web.Response:
        body = {"error": {"message": message, "type": "OAuthException", "code": code}}
        return web.json_response(body, status=status)

    async def lead(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "query": dict(request.query)})
        if self.fail_with is not None:
            return self._error("An unexpected error has occurred.", 2, self.fail_with)
        if request.match_info["version"] != META_VERSION:
            return self._error("Unknown path components", 2500)
        token = request.query.get("access_token")
        if token != META_TOKEN:
            return self._error("Invalid OAuth access token - Cannot parse access token", 190)
        proof = hmac.new(META_APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
        if self.require_proof and request.query.get("appsecret_proof") != proof:
            return self._error("API calls from the server require an appsecret_proof", 100)
        lead = self.leads.get(request.match_info["id"])
        if lead is None:
            return self._error("Unsupported get request.", 100)
        return web.json_response(lead)


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app)
    await server.start_server()
    return server


@pytest.fixture
async def linkedin_api() -> AsyncIterator[LinkedInApi]:
    api = LinkedInApi()
    lead = _fixture("linkedin/lead-sync-collection.lead-form-response.json")
    api.leads[lead["id"]] = lead
    for form in _fixture("linkedin/lead-sync-collection.lead-forms.json")["elements"]:
        api.forms[str(form["id"])] = form
    app = web.Application()
    app.router.add_get("/rest/leadFormResponses/{id}", api.lead)
    app.router.add_get("/rest/leadForms/{id}", api.form)
    server = await _serve(app)
    api.base_url = str(server.make_url("/rest"))
    yield api
    await server.close()


@pytest.fixture
async def meta_api() -> AsyncIterator[MetaApi]:
    api = MetaApi()
    lead = _fixture("meta/developers-docs.retrieving.lead.json")
    for leadgen_id in ("123123123123", "123123123124", "233370042045345"):
        api.leads[leadgen_id] = lead
    app = web.Application()
    app.router.add_get("/{version}/{id}", api.lead)
    server = await _serve(app)
    api.base_url = str(server.make_url("/")).rstrip("/")
    yield api
    await server.close()
