"""The collector's endpoints served over HTTP in a test, writing to a list instead of Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from stream.web.collector import Collector, Record, SinkUnavailable, routes


class ListSink:
    """Keeps what the collector writes; `down` makes it fail as Kafka would, `delay` slow."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False
        self.delay = 0.0

    async def send(self, records: Sequence[Record]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise SinkUnavailable("Kafka is down (test)")
        self.records.extend(records)


def collector_app(collector: Collector) -> web.Application:
    """An aiohttp application routing the collector's endpoints as the worker does."""
    app = web.Application()
    for path, methods in routes(collector).items():
        for method, handler in methods.items():

            async def call(request: web.Request, handler: Any = handler) -> web.StreamResponse:
                response: web.StreamResponse = await handler(request, **request.match_info)
                return response

            app.router.add_route(method.upper(), path, call)
    return app


class Served:
    """A collector served over HTTP: its test server, a client session, the sink it writes to."""

    def __init__(self, server: TestServer, session: ClientSession, sink: ListSink) -> None:
        self.server = server
        self.session = session
        self.sink = sink

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.sink.records]

    async def close(self) -> None:
        await self.session.close()
        await self.server.close()


async def serve(collector: Collector, sink: ListSink) -> Served:
    """`collector` (writing to `sink`) served over HTTP on a free local port."""
    server = TestServer(collector_app(collector))
    await server.start_server()
    return Served(server, ClientSession(), sink)
