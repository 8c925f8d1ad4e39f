"""What every endpoint of the worker's web server answers with: JSON bodies and refusals.

A refused request is an `HttpError` (status, machine-readable `error` code, `detail` for
people), answered as ``{"error", "detail", ...}``. `guarded` wraps a handler so that what it
raises becomes that answer: its `HttpError`, a failed caller check (`Refusal`), a 503 when a
service it needs is down, and a 500 (logged) for anything else.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web

from stream.errors import LeadstreamError
from stream.web.auth import AuthFailure, Refusal

__all__ = [
    "BEARER_CHALLENGE",
    "NO_STORE",
    "Handler",
    "HttpError",
    "Unavailable",
    "guarded",
    "json_response",
    "loggable_path",
    "refusal_error",
]

NO_STORE: Final = {"Cache-Control": "no-store"}
"""The cache headers of every JSON answer (``headers`` may replace them)."""
BEARER_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="leadstream"'}
"""Sent with a 401 that asks for a bearer token."""
_BEARER_FAILURES: Final = frozenset(
    {AuthFailure.MISSING_TOKEN, AuthFailure.INVALID_TOKEN, AuthFailure.NOT_CONFIGURED}
)

Handler = Callable[..., Awaitable[web.StreamResponse]]


def json_response(
    body: object,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    charset: str | None = None,
) -> web.Response:
    """`body` as JSON, not to be cached; `headers` are added to (or replace) `NO_STORE`."""
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        charset=charset,
        headers={**NO_STORE, **(headers or {})},
    )


class HttpError(LeadstreamError):
    """A request refused with `status`, answered ``{"error": error, "detail": detail, **extra}``.

    `error` is the machine-readable code, `detail` says more to a person; `headers` go with the
    answer (e.g. `BEARER_CHALLENGE`).
    """

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}

    def response(
        self, headers: Mapping[str, str] | None = None, *, charset: str | None = None
    ) -> web.Response:
        """The answer; `headers` are the endpoint's own, the error's own come after them."""
        return json_response(
            self.body(), self.status, {**(headers or {}), **self.headers}, charset=charset
        )


def refusal_error(refusal: Refusal, *, invalid_token_status: int = 401) -> HttpError:
    """The answer to a caller that failed a check: 401 (with `BEARER_CHALLENGE` when a bearer
    token was wanted), or `invalid_token_status` for a token that is not accepted."""
    status = invalid_token_status if refusal.failure is AuthFailure.INVALID_TOKEN else 401
    challenge = status == 401 and refusal.failure in _BEARER_FAILURES
    return HttpError(
        status,
        refusal.failure.value,
        refusal.detail,
        headers=BEARER_CHALLENGE if challenge else None,
    )


@dataclass(frozen=True)
class Unavailable:
    """The errors of a service a handler needs (`what`) that are answered 503 with `detail`."""

    errors: tuple[type[Exception], ...]
    what: str
    detail: str


def guarded(
    handler: Handler,
    *,
    log: logging.Logger,
    prefix: str,
    headers: Mapping[str, str] | None = None,
    charset: str | None = None,
    unavailable: Unavailable | None = None,
    log_refusals: bool = False,
) -> Handler:
    """`handler` answering what it raises as JSON (`HttpError`'s body, with `headers`).

    A `Refusal` is answered as `refusal_error` says; `unavailable`'s errors 503; aiohttp's own
    HTTP exceptions pass; anything else is logged and answered 500. With `log_refusals`, every
    answer under 500 is logged at INFO. Log lines start with ``prefix:``.
    """
    down: tuple[type[Exception], ...] = unavailable.errors if unavailable else ()

    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> web.StreamResponse:
        request: web.Request = args[0]
        try:
            return await handler(*args, **kwargs)
        except HttpError as exc:
            refused = exc
        except Refusal as refusal:
            refused = refusal_error(refusal)
        except down as exc:
            assert unavailable is not None
            log.warning(
                "%s: %s %s: %s unavailable: %s",
                prefix,
                request.method,
                loggable_path(request.path),
                unavailable.what,
                exc,
            )
            refused = HttpError(503, "unavailable", unavailable.detail)
        except web.HTTPException:
            raise
        except Exception:
            log.exception(
                "%s: internal error on %s %s", prefix, request.method, loggable_path(request.path)
            )
            refused = HttpError(500, "internal", "internal error")
        if log_refusals and refused.status < 500:
            log.info(
                "%s: %s %s refused %d %s: %s",
                prefix,
                request.method,
                loggable_path(request.path),
                refused.status,
                refused.error,
                refused.detail[:256],
            )
        return refused.response(headers, charset=charset)

    return run


_TOKEN_PATH = re.compile(r"^/([ro])/[^/]+$")


def loggable_path(path: str) -> str:
    """`path` for a log line: a tracked link's token (which names the person) left out."""
    return _TOKEN_PATH.sub(r"/\1/<token>", path)
