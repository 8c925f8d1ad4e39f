"""What every local CRM stand-in shares: a real aiohttp server on 127.0.0.1, a log of the
requests it received, and faults a test can queue (an answer of its choice, or a delay longer
than the client's timeout) before the vendor's own checks run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Fault:
    """One queued answer: `status` with `body` and `headers`, after `delay` seconds, to the
    next request (to `path` only, when given)."""

    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None


class FakeServer:
    """Base of the vendor stand-ins: `serve()` starts it, `base_url` is where it listens."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.base_url = ""
        self._server: TestServer | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail_next(self, fault: Fault) -> None:
        self.faults.append(fault)

    async def record(self, request: web.Request) -> web.Response | None:
        """Log `request`; the queued fault's answer, if one is queued."""
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        fault = next((f for f in self.faults if f.path in (None, request.path)), None)
        if fault is None:
            return None
        self.faults.remove(fault)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.body is None:
            return web.Response(status=fault.status, headers=fault.headers)
        return web.json_response(fault.body, status=fault.status, headers=fault.headers)

    def form(self) -> dict[str, str]:
        """The last request's `application/x-www-form-urlencoded` body."""
        body = self.requests[-1]["body"].decode()
        return {key: values[0] for key, values in parse_qs(body).items()}

    @staticmethod
    def oauth_refusal(error: str, description: str) -> web.Response:
        """A token endpoint's refusal (RFC 6749 section 5.2)."""
        return web.json_response({"error": error, "error_description": description}, status=400)

    async def serve(self, port: int | None = None) -> FakeServer:
        """Listen on 127.0.0.1 (`port`, or a free one)."""
        app = web.Application()
        self.routes(app)
        self._server = TestServer(app, host="127.0.0.1", port=port)
        await self._server.start_server()
        self.base_url = str(self._server.make_url("")).rstrip("/")
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
