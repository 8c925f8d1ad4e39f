"""What the CRM destinations share: calling a vendor's HTTP API and reading its answers.

`call` sends one request and never raises for the network: a timeout or refused connection is an
answer without a status. `Answer.outcome` maps a status to a verdict (2xx delivered; `TRANSIENT_4XX`
and 5xx transient, with `Retry-After`; other 4xx permanent) and keeps the exchange, secrets
masked, for the dead letters. `ClientCredentials` fetches and caches an OAuth 2.0 access token.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson

from stream.connect.destination import (
    AccountChange,
    Change,
    Exchange,
    Outcome,
    Verdict,
    retry_after_seconds,
    transient_status,
)
from stream.connect.mapping import MappingSection
from stream.errors import LeadstreamError
from stream.logmask import MASK, mask

__all__ = [
    "Answer",
    "ClientCredentials",
    "Token",
    "TokenError",
    "call",
    "complete",
    "retry_after",
    "section_for",
]

MAX_KEPT_BODY = 16 * 1024
"""Characters of a request or response body kept in an exchange."""
_SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "x-api-key"}


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if any."""
    return retry_after_seconds(headers.get("retry-after"), now)


def _masked_headers(headers: Iterable[tuple[str, str]], secrets: list[str]) -> dict[str, str]:
    return {
        name: MASK if name.lower() in _SECRET_HEADERS else mask(value, secrets)
        for name, value in headers
    }


def _text(body: bytes) -> str:
    return body[:MAX_KEPT_BODY].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Answer:
    """A vendor's answer to one request: its status (`None` when none came) and body.

    Its `exchange` (the request and answer as a dead letter keeps them, secrets and addresses
    masked) is built when first asked for: masking a batch's bodies costs more CPU than the rest
    of its delivery, and a delivered batch never needs it."""

    request: httpx.Request
    request_body: bytes
    secrets: Sequence[str]
    status: int | None
    headers: httpx.Headers
    body: bytes
    failure: str = ""
    """Why no answer came (timeout, connection refused)."""

    @functools.cached_property
    def exchange(self) -> Exchange:
        secrets = list(self.secrets)
        answered = self.status is not None
        return Exchange(
            method=self.request.method,
            url=mask(str(self.request.url), secrets),
            request_headers=_masked_headers(self.request.headers.multi_items(), secrets),
            request_body=mask(_text(self.request_body), secrets),
            status=self.status,
            response_headers=_masked_headers(self.headers.multi_items(), secrets)
            if answered
            else {},
            response_body=mask(_text(self.body), secrets) if answered else "",
        )

    def json(self) -> Any:
        """The body as JSON, or `None` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def outcome(self, reason: str = "") -> Outcome:
        """The verdict the status calls for, with `reason` (or a default) and the exchange."""
        status = self.status
        if status is None:
            return Outcome(Verdict.TRANSIENT, reason or self.failure, exchange=self.exchange)
        if 200 <= status < 300:
            return Outcome.delivered()
        wait = retry_after(self.headers) if status in (429, 503) else None
        verdict = Verdict.TRANSIENT if transient_status(status) else Verdict.PERMANENT
        return Outcome(
            verdict,
            reason or f"HTTP {status}: {_text(self.body)[:300]}",
            retry_after=wait,
            exchange=self.exchange,
        )


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    secrets: list[str],
    json: Any = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """Send one request; every network failure becomes an `Answer` without a status."""
    content = orjson.dumps(json) if json is not None else None
    all_headers = {**(headers or {})}
    if content is not None:
        all_headers["Content-Type"] = "application/json"
    request = client.build_request(
        method, url, content=content, data=data, headers=all_headers, params=params
    )
    sent_body = content if content is not None else (request.content or b"")
    if data is not None:
        sent_body = b"(form)"  # a token request: credentials, never kept
    try:
        response = await client.send(request)
        body = await response.aread()
    except httpx.TimeoutException as exc:
        failure = f"no answer within the timeout ({type(exc).__name__})"
        return Answer(request, sent_body, secrets, None, httpx.Headers(), b"", failure)
    except httpx.TransportError as exc:
        failure = (
            f"cannot reach {request.url.host}: {type(exc).__name__}: {mask(str(exc), secrets)}"
        )
        return Answer(request, sent_body, secrets, None, httpx.Headers(), b"", failure)
    return Answer(request, sent_body, secrets, response.status_code, response.headers, body)


_SectionT = TypeVar("_SectionT", bound=MappingSection)


def section_for(
    section: _SectionT, kind: str, change: Change | AccountChange
) -> _SectionT | Outcome:
    """The mapping section that applies to `change`'s model, or why the change is skipped."""
    model = change.record.model
    applied = section.for_model(model)
    if applied is None:
        return Outcome(Verdict.SKIPPED, f"model {model!r} is not in the mapping's {kind}.models")
    return applied


def complete(outcomes: Sequence[Outcome | None]) -> list[Outcome]:
    """`outcomes` with a transient one wherever none was recorded (never expected)."""
    return [
        outcome
        if outcome is not None
        else Outcome(Verdict.TRANSIENT, "no outcome was recorded for this change")
        for outcome in outcomes
    ]


# ------------------------------------------------------------------------------ OAuth 2.0


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    instance_url: str = ""
    """Salesforce: the org's API base URL, returned with the token."""
    expires_at: float | None = None


class TokenError(LeadstreamError):
    """No access token: the outcome every change of the batch gets (caught by the destination,
    never raised out of `deliver`)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class ClientCredentials:
    """An OAuth 2.0 token endpoint (RFC 6749 section 4.4, or an assertion grant), its token
    cached until it expires or the API refuses it.

    `form` builds the token request's form each time (a JWT assertion is signed anew)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        form: Callable[[], dict[str, str]],
        *,
        secrets: list[str],
        vendor: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._form = form
        self._secrets = secrets
        self._vendor = vendor
        self._clock = clock
        self._token: Token | None = None

    async def token(self) -> Token:
        """The cached token, or a new one; raises `TokenError` with the batch's outcome."""
        token = self._token
        if token is not None and (token.expires_at is None or self._clock() < token.expires_at):
            return token
        answer = await call(
            self._client, "POST", self._token_url, data=self._form(), secrets=self._secrets
        )
        body = answer.json()
        if not answer.ok or not isinstance(body, dict) or "access_token" not in body:
            if answer.status is not None and 400 <= answer.status < 500 and answer.status != 429:
                detail = body if isinstance(body, dict) else {}
                reason = (
                    f"{self._vendor} refused the credentials at {self._token_url}: "
                    f"{detail.get('error', answer.status)}: {detail.get('error_description', '')}"
                ).rstrip(": ")
                raise TokenError(Outcome(Verdict.PERMANENT, reason, exchange=answer.exchange))
            raise TokenError(
                answer.outcome(f"{self._vendor} token endpoint: {answer.failure or answer.status}")
            )
        access = str(body["access_token"])
        self._secrets.append(access)
        expires_in = body.get("expires_in")
        expires_at = (
            self._clock() + float(expires_in) - 30 if isinstance(expires_in, int | float) else None
        )
        self._token = Token(access, str(body.get("instance_url", "")), expires_at)
        return self._token

    def refused(self, token: Token | None = None) -> None:
        """The API refused `token` (401; by default the current one): the next `token()`
        fetches a new one."""
        if token is None or self._token == token:
            self._token = None
