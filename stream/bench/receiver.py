"""A local webhook receiver: answers every POST to ``/hooks`` after a fixed delay and counts what
it got.

`leadstream bench connect` runs it as its own process (``python -m stream.bench.receiver``) so
the receiver's work is not the connector's; tests run it in their event loop with a signature
check and their own answers. It keeps, in arrival order, the ``webhook-id`` and the lead (or
account) of every request it accepted; ``GET /stats`` answers ``{"requests": N, "distinct": N}``.

    python -m stream.bench.receiver --port 8099 --delay-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Answer", "Delivery", "Receiver", "main"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted request."""

    msg_id: str
    kind: str
    lead_id: str
    """Empty for an account's event."""
    to_stage: str | None
    headers: Mapping[str, str]
    account_id: str | None = None
    """The account of an ``account.stage_changed`` event."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] | None = None
    body: str = ""


Verify = Callable[[bytes, Mapping[str, str]], None]
"""Raises when the signature is wrong (the request gets 401 and is not kept)."""
Respond = Callable[[Delivery], Awaitable[Answer] | Answer]


class Receiver:
    """An aiohttp server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        verify: Verify | None = None,
        respond: Respond | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.verify = verify
        self.respond = respond
        self.deliveries: list[Delivery] = []
        self.requests = 0
        self.rejected = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def ids(self) -> set[str]:
        return {d.msg_id for d in self.deliveries}

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._hook)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port or self.port))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close the server: connections are refused until `start()` again (same port)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if self.verify is not None:
            try:
                self.verify(body, headers)
            except Exception as exc:
                self.rejected += 1
                return web.Response(status=401, text=f"bad signature: {exc}")
        document: dict[str, Any] = orjson.loads(body)
        data = document["data"]
        delivery = Delivery(
            msg_id=headers["webhook-id"],
            kind=document["type"],
            lead_id=data.get("lead_id", ""),
            to_stage=data.get("to_stage"),
            headers=headers,
            account_id=data.get("account_id"),
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        answer = Answer()
        if self.respond is not None:
            produced = self.respond(delivery)
            answer = await produced if isinstance(produced, Awaitable) else produced
        if 200 <= answer.status < 300:
            self.deliveries.append(delivery)
        return web.Response(status=answer.status, headers=answer.headers, text=answer.body)

    async def _stats(self, request: web.Request) -> web.Response:
        stats = {"requests": self.requests, "distinct": len(self.ids())}
        return web.Response(body=orjson.dumps(stats), content_type="application/json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=50.0)
    args = parser.parse_args(argv)

    async def serve() -> None:
        receiver = Receiver(delay_s=args.delay_ms / 1000)
        await receiver.start(args.port, args.host)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
