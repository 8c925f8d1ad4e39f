"""The HTTP client of the connectors: httpx's interface over aiohttp's connection pool.

Destinations speak httpx (`httpx.AsyncClient`, `httpx.Response`, `httpx.TimeoutException`), but
httpx's own async pool costs milliseconds of CPU per request once tens of requests are in flight
(encode/httpx#3215: "httpx.AsyncClient has much worse performance than aiohttp.ClientSession
with concurrent requests"), which caps a connector at a few hundred requests a second. The
transport here sends each request with aiohttp (already a dependency, through Faust) and hands
back an `httpx.Response`, mapping aiohttp's failures to httpx's exceptions:

| aiohttp | httpx |
| --- | --- |
| a timeout (`asyncio.TimeoutError`, `ServerTimeoutError`) | `ReadTimeout` / `ConnectTimeout` |
| `ClientConnectorError` (refused, unreachable, DNS) | `ConnectError` |
| any other `ClientError` (a dropped connection, a bad answer) | `NetworkError` |

    client = http.client(timeout_s=10, max_connections=256)
    response = await client.post(url, content=body, headers=headers)

`Sender` skips the client's machinery (redirects, cookies, auth, proxies by URL) for requests a
connector builds whole, which saves a third of the CPU per request.
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp
import httpx

__all__ = ["AiohttpTransport", "Sender", "client"]

_NOT_FORWARDED: Final = frozenset({"host", "content-length", "transfer-encoding"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends with one `aiohttp.ClientSession` (made on first use, in
    the running event loop). Redirects are never followed; bodies are read whole."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                auto_decompress=False,  # httpx decodes by content-encoding itself
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("connect") or timeouts.get("pool"),
            sock_read=timeouts.get("read"),
        )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower().decode("latin-1") not in _NOT_FORWARDED
        ]
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                content = await answer.read()
                status = answer.status
                raw_headers = [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in answer.raw_headers
                ]
        except aiohttp.ServerTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)  # let the connector close its transports


def client(
    *, timeout_s: float, max_connections: int = 100, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` on the aiohttp transport; redirects are not followed."""
    return httpx.AsyncClient(
        timeout=timeout_s,
        transport=AiohttpTransport(max_connections=max_connections),
        follow_redirects=False,
        headers=headers,
    )


class Sender:
    """Sends requests straight to a transport (the aiohttp one by default)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.transport = transport or AiohttpTransport(max_connections=max_connections)
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._headers = headers or {}

    async def send(
        self, method: str, url: str, *, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """The answer, read whole; httpx's exceptions for timeouts and network failures."""
        request = httpx.Request(
            method,
            url,
            content=content,
            headers={**self._headers, **headers},
            extensions={"timeout": self._timeout},
        )
        response = await self.transport.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
