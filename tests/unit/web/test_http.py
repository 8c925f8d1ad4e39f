"""The JSON answers and refusals every endpoint shares, served by a real aiohttp server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from stream.errors import InfrastructureError, LeadstreamError
from stream.web.auth import AuthFailure, Refusal
from stream.web.collector import SinkUnavailable
from stream.web.http import (
    BEARER_CHALLENGE,
    HttpError,
    Unavailable,
    guarded,
    json_response,
    refusal_error,
)

LOG = logging.getLogger("test.http")
COLLECTOR_CACHE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


# ----------------------------------------------------------------------------- the pieces


def test_a_json_response_is_the_compact_body_not_to_be_cached() -> None:
    response = json_response({"a": [1, "é"]}, 202, {"X-Extra": "1"})
    assert (response.status, response.body) == (202, orjson.dumps({"a": [1, "é"]}))
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Extra"] == "1"
    assert response.content_type == "application/json"
    assert response.charset is None


def test_a_json_response_takes_the_endpoints_cache_headers_and_charset() -> None:
    response = json_response({}, headers=COLLECTOR_CACHE, charset="utf-8")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store, no-cache"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_an_http_error_renders_error_detail_and_extra_with_its_status_and_headers() -> None:
    error = HttpError(
        400, "invalid_call", "no event", extra={"rejected": []}, headers={"X-Why": "test"}
    )
    assert isinstance(error, LeadstreamError)
    assert str(error) == "400 invalid_call: no event"
    response = error.response(COLLECTOR_CACHE, charset="utf-8")
    assert response.status == 400
    assert response.body == b'{"error":"invalid_call","detail":"no event","rejected":[]}'
    assert response.headers["X-Why"] == "test"
    assert response.headers["Pragma"] == "no-cache"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_an_http_error_without_extras_is_error_and_detail_only() -> None:
    response = HttpError(404, "unknown_model", "no scores for model 'x'").response()
    assert response.status == 404
    assert response.body == b'{"error":"unknown_model","detail":"no scores for model \'x\'"}'
    assert dict(response.headers) == {
        "Cache-Control": "no-store",
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize(
    "failure", [AuthFailure.MISSING_TOKEN, AuthFailure.INVALID_TOKEN, AuthFailure.NOT_CONFIGURED]
)
def test_a_refused_token_is_401_with_a_bearer_challenge(failure: AuthFailure) -> None:
    error = refusal_error(Refusal(failure, "why"))
    assert (error.status, error.error, error.detail) == (401, failure.value, "why")
    assert error.headers == BEARER_CHALLENGE


def test_a_token_that_is_not_accepted_can_be_403_without_a_challenge() -> None:
    error = refusal_error(
        Refusal(AuthFailure.INVALID_TOKEN, "the token is not accepted"), invalid_token_status=403
    )
    assert (error.status, error.error, error.headers) == (403, "invalid_token", {})
    missing = refusal_error(Refusal(AuthFailure.MISSING_TOKEN, "x"), invalid_token_status=403)
    assert (missing.status, missing.headers) == (401, BEARER_CHALLENGE)


@pytest.mark.parametrize(
    "failure",
    [AuthFailure.INVALID_SIGNATURE, AuthFailure.REPLAYED, AuthFailure.WRONG_SECRET],
)
def test_a_failed_signature_or_secret_is_401_without_a_challenge(failure: AuthFailure) -> None:
    error = refusal_error(Refusal(failure, "why"))
    assert (error.status, error.error, error.headers) == (401, failure.value, {})


# ----------------------------------------------------------------------------- guarded handlers


async def _refuse(request: web.Request) -> web.Response:
    raise HttpError(400, "bad_limit", "limit must be a positive integer")


async def _check(request: web.Request) -> web.Response:
    raise Refusal(AuthFailure.MISSING_TOKEN, "send Authorization: Bearer <token>")


async def _down(request: web.Request) -> web.Response:
    raise ConnectionRefusedError("Redis is down (test)")


async def _bug(request: web.Request) -> web.Response:
    raise RuntimeError("a bug (test)")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def _part(request: web.Request, name: str) -> web.Response:
    return json_response({"name": name})


Handlers = dict[str, Callable[..., Awaitable[web.StreamResponse]]]
HANDLERS: Handlers = {
    "/refuse": _refuse,
    "/check": _check,
    "/down": _down,
    "/bug": _bug,
    "/redirect": _redirect,
}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    started: list[TestServer] = []

    async def start(**options: Any) -> str:
        app = web.Application()
        for path, handler in HANDLERS.items():
            app.router.add_get(path, guarded(handler, log=LOG, prefix="test", **options))
        part = guarded(_part, log=LOG, prefix="test", **options)

        async def with_part(request: web.Request) -> web.StreamResponse:
            return await part(request, **request.match_info)

        app.router.add_get("/part/{name}", with_part)
        server = TestServer(app)
        await server.start_server()
        started.append(server)
        return str(server.make_url(""))

    yield start
    for server in started:
        await server.close()


async def _get(base: str, path: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        ClientSession() as session,
        session.get(base + path, allow_redirects=False) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def test_a_guarded_handler_answers_its_refusals_as_json(
    serve: Callable[..., Awaitable[str]],
) -> None:
    base = await serve()
    status, headers, body = await _get(base, "/refuse")
    assert (status, body) == (
        400,
        b'{"error":"bad_limit","detail":"limit must be a positive integer"}',
    )
    assert (headers["Cache-Control"], headers["Content-Type"]) == ("no-store", "application/json")
    status, headers, body = await _get(base, "/check")
    assert status == 401
    assert orjson.loads(body) == {
        "error": "missing_token",
        "detail": "send Authorization: Bearer <token>",
    }
    assert headers["WWW-Authenticate"] == 'Bearer realm="leadstream"'
    status, headers, body = await _get(base, "/part/p1")  # path parts reach the handler
    assert (status, headers["Cache-Control"], body) == (200, "no-store", b'{"name":"p1"}')


async def test_a_guarded_handler_answers_a_service_that_is_down_with_503(
    serve: Callable[..., Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    down = Unavailable((OSError,), "Redis", "the read model is unavailable")
    base = await serve(unavailable=down)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        status, _, body = await _get(base, "/down")
    assert (status, body) == (
        503,
        b'{"error":"unavailable","detail":"the read model is unavailable"}',
    )
    assert "test: GET /down: Redis unavailable: Redis is down (test)" in caplog.messages


async def test_a_guarded_handler_answers_a_bug_with_500_and_logs_it(
    serve: Callable[..., Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    base = await serve()
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert (await _get(base, "/down"))[0] == 500  # not a service it was told about
        status, _, body = await _get(base, "/bug")
    assert (status, body) == (500, b'{"error":"internal","detail":"internal error"}')
    assert "test: internal error on GET /bug" in caplog.messages
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


async def test_aiohttp_answers_pass_through_a_guard(serve: Callable[..., Awaitable[str]]) -> None:
    status, headers, _ = await _get(await serve(), "/redirect")
    assert (status, headers["Location"]) == (302, "/elsewhere")


async def test_a_guard_uses_the_endpoints_headers_and_logs_refusals_when_asked(
    serve: Callable[..., Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    base = await serve(headers=COLLECTOR_CACHE, charset="utf-8", log_refusals=True)
    with caplog.at_level(logging.INFO, logger=LOG.name):
        status, headers, _ = await _get(base, "/refuse")
        await _get(base, "/bug")
    assert status == 400
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert (headers["Cache-Control"], headers["Pragma"]) == ("no-store, no-cache", "no-cache")
    refusals = [m for m in caplog.messages if " refused " in m]
    assert refusals == ["test: GET /refuse refused 400 bad_limit: limit must be a positive integer"]


def test_a_sink_that_cannot_write_is_an_infrastructure_error() -> None:
    assert issubclass(SinkUnavailable, InfrastructureError)
    assert issubclass(Refusal, LeadstreamError)


def test_a_tracked_link_s_token_stays_out_of_log_lines() -> None:
    from stream.web.http import loggable_path

    assert loggable_path("/r/1.eyJ1IjoiaHR0cHM6Ly9hIn0.c2ln") == "/r/<token>"
    assert loggable_path("/o/1.eyJtIjoibSJ9.c2ln.gif") == "/o/<token>"
    assert loggable_path("/collect/pixel.gif") == "/collect/pixel.gif"
    assert loggable_path("/webhooks/sendgrid") == "/webhooks/sendgrid"
