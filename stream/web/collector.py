"""The HTTP collector: a tracking pixel, its JavaScript snippet, a Segment-compatible API and
email-platform webhooks, served by the worker's web server.

Every endpoint turns what it receives into contract events (`schemas.adapters`), checks each one
exactly as the consumers will (`schemas.codec.decode`), writes them to their source topic keyed by
lead or anonymous id, and answers once Kafka has acknowledged them:

| endpoint | caller check | answer |
| --- | --- | --- |
| `GET /collect/pixel.gif` | none | 200, a 1x1 transparent GIF; sets the `ls_aid` cookie |
| `GET /collect/leadstream.js` | none | the snippet that loads the pixel |
| `GET /r/{token}` | signed token (`stream.web.links`) | 302 to the link's target |
| `GET /o/{token}.gif` | signed token | 200, a 1x1 transparent GIF (an email open) |
| `POST /v1/track`, `/v1/identify`, `/v1/page`, `/v1/batch` | bearer token | 202 |
| `POST /webhooks/sendgrid` | ECDSA signature, timestamp | 202 |
| `POST /webhooks/mailgun` | HMAC, timestamp, token used once | 202 |
| `GET`/`POST /webhooks/mailchimp/{secret}` | secret in the path | 200 / 202 |
| `POST /webhooks/postmark` | HTTP Basic credentials | 202 |
| `POST /webhooks/ses` | SNS signature, topic allow-list | 202 (200 for subscription messages) |
| `POST /webhooks/brevo` | HTTP Basic credentials (or bearer token) | 202 |
| `POST /webhooks/mailjet` | HTTP Basic credentials | 202 |
| `POST /webhooks/customerio` | HMAC of timestamp and body, timestamp | 202 |
| `POST /webhooks/rudderstack` | its own bearer (or Basic) token | 202 |
| `GET`/`POST /webhooks/linkedin` | challenge / `X-LI-Signature`; reads the lead | 200 / 202 |
| `GET`/`POST /webhooks/meta` | verify token / `X-Hub-Signature-256`; reads the lead | 200 / 202 |

A 202 body lists the ids of the events written and every part of the request that made none,
with the reason: ``{"accepted": [...], "rejected": [{"where", "kind", "reason"}]}``. An item that
repeats the event id of an earlier item of the same request is not written (consumers would
drop it as a duplicate) and is listed under ``rejected``, saying whether its content is the same
as the earlier one's or differs from it. Refusals are
JSON ``{"error", "detail"}``: 400 (not JSON, not a valid call), 401 (any failed caller check, see
`stream.web.auth`), 413 (body over the limit, refused from ``Content-Length`` before it is
read, or as soon as a streamed body passes it), 503 (Kafka or Redis unavailable, or the lead a
LinkedIn or Meta notification names could not be read from their API: retry later).
Bad input never causes a 5xx.

The pixel, the redirect and the open pixel keep what a machine requested (a ``HEAD``, a
browser's prefetch, a security scanner's user agent or address: `schemas.adapters.machine`)
with the event's `machine` set to the reason, so scoring can skip it; they answer it as they
answer a person.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import SecretStr
from redis.exceptions import RedisError

from schemas import codec
from schemas.adapters import (
    Conversion,
    brevo,
    customerio,
    linkedin,
    machine,
    mailchimp,
    mailgun,
    mailjet,
    meta,
    postmark,
    rudderstack,
    segment,
    sendgrid,
    ses,
    snowplow,
)
from schemas.adapters.base import identifier, skip, text, utm_from_url
from schemas.errors import DecodeError
from schemas.events import EventBase, PageViewed
from schemas.topics import INBOUND_TOPICS, topic_for
from stream import metrics
from stream.errors import InfrastructureError
from stream.settings import Settings
from stream.web.auth import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    AuthFailure,
    BearerAuth,
    MemoryReplayGuard,
    RedisReplayGuard,
    Refusal,
    ReplayGuard,
    check_webhook_credentials,
    load_sendgrid_key,
    secret_matches,
    verify_mailgun,
    verify_sendgrid,
)
from stream.web.http import Handler, HttpError, guarded, json_response, refusal_error
from stream.web.lead_apis import LeadApiError, LinkedInLeadApi, MetaLeadApi
from stream.web.links import (
    InvalidLink,
    InvalidToken,
    Link,
    LinkSigner,
    click_conversion,
    open_conversion,
)
from stream.web.signatures import (
    CUSTOMERIO_SIGNATURE_HEADER,
    CUSTOMERIO_TIMESTAMP_HEADER,
    LINKEDIN_SIGNATURE_HEADER,
    META_SIGNATURE_HEADER,
    linkedin_challenge_response,
    meta_verification,
    verify_customerio,
    verify_linkedin,
    verify_meta,
)
from stream.web.sns import SNS_MESSAGE_TYPE_HEADER, SnsUnavailable, SnsVerifier

__all__ = [
    "COOKIE_NAME",
    "PIXEL_GIF",
    "Collector",
    "FaustSink",
    "Record",
    "Sink",
    "SinkUnavailable",
    "anonymous_id_from_cookie",
    "client_ip",
    "pixel_conversion",
    "read_body",
    "register",
    "routes",
]

log = logging.getLogger(__name__)

PIXEL_GIF: Final = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b"!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A 1x1 GIF89a whose one pixel is the transparent colour (43 bytes)."""

COOKIE_NAME: Final = "ls_aid"
COOKIE_MAX_AGE: Final = 400 * 24 * 3600
"""400 days: the longest lifetime browsers keep a cookie; refreshed on every pixel hit."""

PIXEL_SOURCE: Final = "web"
PIXEL_NAMESPACE: Final = uuid.UUID("6f1d2c58-8a53-5b0e-9a47-1c3e52d0b7a4")
"""The uuid5 namespace of pixel event ids derived from the snippet's `eid`. Never change it."""

NO_CACHE: Final = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
SEND_TIMEOUT_SECONDS: Final = 10.0
SEGMENT_CALLS: Final = ("track", "identify", "page")
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_READ_CHUNK = 64 * 1024
_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")
LINK_WAIT_SECONDS: Final = 2.0
"""Longest a tracked link's answer waits for Kafka to take its event; the write goes on after."""
BASIC_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="leadstream webhooks"'}
"""Sent with a 401 of a webhook that takes HTTP Basic credentials (some vendors' HTTP clients
send the credentials of a `https://user:password@host/` URL only when challenged)."""
_T = TypeVar("_T")


# ----------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class Record:
    """One record for a source topic (its contract name: the sink adds the environment prefix)."""

    topic: str
    key: bytes
    value: bytes


class SinkUnavailable(InfrastructureError):
    """The records could not be written (Kafka down or too slow): the caller answers 503."""


class Sink(Protocol):
    """Where accepted events go."""

    async def send(self, records: Sequence[Record]) -> None:
        """Write every record, returning once all are acknowledged; `SinkUnavailable` if not."""


class FaustSink:
    """Writes through the worker's Faust producer to the prefixed source topics."""

    def __init__(self, app: Any, settings: Settings, *, timeout: float = SEND_TIMEOUT_SECONDS):
        self._timeout = timeout
        self._topics: dict[str, Any] = {
            spec.name: app.topic(
                settings.topic(spec.name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.topic_partitions,
            )
            for spec in INBOUND_TOPICS
        }

    async def send(self, records: Sequence[Record]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                pending = [
                    await self._topics[r.topic].send(key=r.key, value=r.value, force=True)
                    for r in records
                ]
                await asyncio.gather(*pending)
        except (TimeoutError, OSError) as exc:
            raise SinkUnavailable(f"Kafka did not acknowledge: {type(exc).__name__}") from exc
        except KafkaError as exc:
            raise SinkUnavailable(f"Kafka refused the records: {exc}") from exc


# ----------------------------------------------------------------------------- request parsing


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or 413 when it is longer than `limit` bytes (400 when it cannot be
    read, e.g. a body that is not in its declared ``Content-Encoding``).

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    without one (chunked) is read at most `limit` + 1 bytes.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.read(min(_READ_CHUNK, limit + 1 - size))
        except web.RequestPayloadError as exc:  # e.g. Content-Encoding: gzip on a plain body
            raise HttpError(400, "bad_body", f"the body cannot be read: {exc}") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "too_large", f"the body is larger than the limit of {limit} bytes")


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "not_json", f"the body is not valid JSON: {exc}") from None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _merge(into: Conversion, made: Conversion) -> None:
    into.events.extend(made.events)
    into.rejected.extend(made.rejected)


async def _fetch_all(vendor: str, reads: Sequence[tuple[str, Awaitable[_T]]]) -> list[_T]:
    """Every lead the notification names, read concurrently; 503 when any cannot be read, so
    the vendor delivers the notification again (nothing of it is written)."""
    results = await asyncio.gather(*(read for _, read in reads), return_exceptions=True)
    for (lead_id, _), result in zip(reads, results, strict=True):
        if isinstance(result, LeadApiError):
            log.error("collector: %s lead %s could not be read: %s", vendor, lead_id, result)
            raise HttpError(
                503, "unavailable", f"the lead could not be read from {vendor}; retry"
            ) from result
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]


def anonymous_id_from_cookie(value: str | None) -> str | None:
    """The visitor's anonymous id from the cookie, when it looks like one we set."""
    if value and _COOKIE_VALUE.fullmatch(value):
        return value
    return None


def client_ip(request: web.Request, *, trust_forwarded_for: bool) -> str | None:
    """The client's address: the first entry of ``X-Forwarded-For`` when the proxy in front is
    trusted to set it (`LEADSTREAM_COLLECTOR_TRUST_FORWARDED_FOR`), else the connection's peer."""
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",", 1)[0].strip()
        if forwarded:
            return forwarded
    return request.remote


def pixel_conversion(
    params: Mapping[str, str],
    *,
    anonymous_id: str,
    referer: str | None,
    user_agent: str | None,
    received_at: datetime,
    machine: str | None = None,
) -> Conversion:
    """The event of one pixel hit.

    Parameters: `url` (else the ``Referer`` header), `ref` (the page's referrer), `title`,
    `sid` (session id), `eid` (a client-side id of the hit: the event id is derived from it and
    the anonymous id, so a retried hit is the same event). Snowplow tracker parameters (`e=...`)
    are read by the Snowplow adapter instead, with the cookie as network user id. `machine`:
    why a machine made the request (`schemas.adapters.machine.from_request`), set on the events.
    """
    if "e" in params:
        result = snowplow.convert_params(
            params, received_at=received_at, network_user_id=anonymous_id
        )
    else:
        result = Conversion()
        result.attempt(
            "",
            "page_viewed",
            lambda: _page_viewed(params, anonymous_id, referer, user_agent, received_at),
        )
    if machine:
        result.events = [
            e if e.machine else e.model_copy(update={"machine": machine[:256]})
            for e in result.events
        ]
    return result


def _page_viewed(
    params: Mapping[str, str],
    anonymous_id: str,
    referer: str | None,
    user_agent: str | None,
    received_at: datetime,
) -> EventBase:
    url = text(params.get("url"), 4096) or text(referer, 4096)
    if url is None:
        raise skip("no page url: pass url= or let the browser send a Referer")
    client_id = identifier(params.get("eid"))
    event_id = (
        str(uuid.uuid5(PIXEL_NAMESPACE, f"{anonymous_id}\x1f{client_id}"))
        if client_id
        else str(uuid.uuid4())
    )
    return PageViewed(
        event_id=event_id,
        occurred_at=received_at,
        anonymous_id=anonymous_id,
        source=PIXEL_SOURCE,
        url=url,
        path=urlsplit(url).path or None,
        referrer=text(params.get("ref"), 4096),
        title=text(params.get("title"), 4096),
        utm=utm_from_url(url),
        session_id=identifier(params.get("sid")),
        user_agent=text(user_agent, 4096),
    )


def segment_call(payload: Any, kind: str) -> dict[str, Any]:
    """The Segment call in a request to ``/v1/{kind}``, or 400."""
    if not isinstance(payload, dict):
        raise HttpError(400, "invalid_call", "the body is not a JSON object")
    declared = payload.get("type") or payload.get("action")
    if declared is not None and declared != kind:
        raise HttpError(
            400, "invalid_call", f"a {str(declared)[:32]!r} call was sent to /v1/{kind}"
        )
    return {**payload, "type": kind}


# ----------------------------------------------------------------------------- the collector


def _repeat(event: EventBase, earlier_where: str, earlier_value: bytes, value: bytes) -> str:
    """Why an event that repeats the id of an earlier one of the same request is not written."""
    earlier = f"the earlier item {earlier_where}" if earlier_where else "an earlier event"
    if value == earlier_value:
        return (
            f"repeats the event id {event.event_id!r} of {earlier}, same content: "
            "a duplicate, written once"
        )
    return (
        f"repeats the event id {event.event_id!r} of {earlier}, different content: only the "
        "earlier one is written, consumers would drop this one as a duplicate"
    )


@dataclass
class Outcome:
    """What one request made: the records to write, their event ids, what was rejected."""

    records: list[Record] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": self.rejected}


class Collector:
    """The endpoints' logic, on aiohttp requests; `register` routes them on a Faust app."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        replays: ReplayGuard,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sns: SnsVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.replays = replays
        self.clock = clock
        self.sns = sns or SnsVerifier()
        self.auth = BearerAuth(
            [t.get_secret_value() for t in settings.auth_tokens], disabled=settings.auth_disabled
        )
        key = settings.sendgrid_public_key
        self.sendgrid_key = load_sendgrid_key(key.get_secret_value()) if key else None
        rudder = settings.rudderstack_token
        self.rudderstack_auth = BearerAuth(
            [rudder.get_secret_value()] if rudder else [], disabled=settings.auth_disabled
        )
        self.linkedin_api = LinkedInLeadApi(
            base_url=settings.linkedin_api_url,
            version=settings.linkedin_api_version,
            access_token=_secret(settings.linkedin_access_token),
            timeout=settings.lead_api_timeout_seconds,
        )
        self.meta_api = MetaLeadApi(
            base_url=settings.meta_graph_url,
            version=settings.meta_graph_version,
            access_token=_secret(settings.meta_access_token),
            app_secret=_secret(settings.meta_app_secret),
            timeout=settings.lead_api_timeout_seconds,
        )
        self.script = resources.files("stream.web.static").joinpath("leadstream.js").read_bytes()

    # --- shared steps

    def _outcome(self, conversion: Conversion, received_at: datetime) -> Outcome:
        outcome = Outcome()
        outcome.rejected = [
            {"where": r.where, "kind": r.vendor_kind, "reason": r.reason}
            for r in conversion.rejected
        ]
        written: dict[str, tuple[str, bytes]] = {}  # event id -> where it came from, its value
        for index, event in enumerate(conversion.events):
            value = codec.encode(event)
            try:
                codec.decode(value, now=received_at)
            except DecodeError as exc:
                outcome.rejected.append(
                    {"where": event.event_id, "kind": event.type, "reason": str(exc)}
                )
                continue
            where = conversion.origin(index)
            if (earlier := written.get(event.event_id)) is not None:
                outcome.rejected.append(
                    {"where": where, "kind": event.type, "reason": _repeat(event, *earlier, value)}
                )
                continue
            written[event.event_id] = (where, value)
            outcome.records.append(Record(topic_for(event), codec.event_key(event), value))
            outcome.accepted.append(event.event_id)
        return outcome

    async def _write(self, outcome: Outcome) -> None:
        if not outcome.records:
            return
        try:
            await self.sink.send(outcome.records)
        except SinkUnavailable as exc:
            log.error("collector: %s", exc)
            raise HttpError(503, "unavailable", "the events could not be written; retry") from exc

    async def _accept(self, conversion: Conversion, received_at: datetime) -> web.Response:
        outcome = self._outcome(conversion, received_at)
        await self._write(outcome)
        return json_response(outcome.body(), 202, NO_CACHE, charset="utf-8")

    # --- the pixel and its snippet

    def _machine(self, request: web.Request) -> str | None:
        """Why a machine made `request` (HEAD, prefetch, scanner user agent or address), or None."""
        return machine.from_request(
            request.method,
            request.headers,
            ip=client_ip(request, trust_forwarded_for=self.settings.collector_trust_forwarded_for),
            extra_ranges=self.settings.machine_ip_ranges,
        )

    async def pixel(self, request: web.Request) -> web.Response:
        received_at = self.clock()
        anonymous_id = anonymous_id_from_cookie(request.cookies.get(COOKIE_NAME))
        anonymous_id = anonymous_id or uuid.uuid4().hex
        conversion = pixel_conversion(
            request.query,
            anonymous_id=anonymous_id,
            referer=request.headers.get("Referer"),
            user_agent=request.headers.get("User-Agent"),
            received_at=received_at,
            machine=self._machine(request),
        )
        outcome = self._outcome(conversion, received_at)
        headers = dict(NO_CACHE)
        if outcome.accepted:
            headers["X-Leadstream-Event-Id"] = ",".join(outcome.accepted)
        if outcome.rejected:
            reasons = "; ".join(r["reason"] for r in outcome.rejected)[:512]
            headers["X-Leadstream-Rejected"] = _HEADER_UNSAFE.sub("?", reasons)
        status = 200
        try:
            await self._write(outcome)
        except HttpError:
            status = 503
        response = web.Response(
            body=PIXEL_GIF, status=status, content_type="image/gif", headers=headers
        )
        self._set_cookie(request, response, anonymous_id)
        return response

    def _set_cookie(self, request: web.Request, response: web.Response, value: str) -> None:
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=COOKIE_MAX_AGE,
            path="/",
            domain=self.settings.collector_cookie_domain,
            samesite="Lax",
            secure=secure or None,
        )

    async def pixel_head(self, request: web.Request) -> web.Response:
        """HEAD of the pixel: the GET's answer without its body; its event is kept, marked as a
        machine's (`HEAD request`)."""
        return await self.pixel(request)

    async def snippet(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.script,
            content_type="application/javascript",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    # --- tracked links (stream.web.links): GET and HEAD /r/{token}, /o/{token}.gif

    link_wait_seconds: float = LINK_WAIT_SECONDS

    @functools.cached_property
    def links(self) -> LinkSigner:
        """The tracked links' keys (`LEADSTREAM_LINK_SIGNING_KEY`)."""
        return LinkSigner.from_settings(self.settings)

    @functools.cached_property
    def _link_writes(self) -> set[asyncio.Task[bool]]:
        return set()  # the writes still going on after their answer (kept from the collector)

    def _link(self, token: str) -> Link:
        try:
            return self.links.verify(token)
        except InvalidToken as exc:
            raise HttpError(404, "unknown_link", f"no such link: {exc}") from None
        except InvalidLink as exc:
            raise HttpError(400, "invalid_link", str(exc)) from None

    async def _write_link_event(self, records: Sequence[Record], kind: str) -> bool:
        try:
            await self.sink.send(records)
        except Exception as exc:  # the person was answered: nobody else will hear of it
            metrics.tracked_link_event_lost(kind)
            log.error(
                "collector: tracked link %s event LOST, Kafka did not take it (the request was "
                "answered anyway; leadstream_tracked_link_events_lost_total counts these): %s",
                kind,
                exc if isinstance(exc, SinkUnavailable) else repr(exc),
            )
            return False
        return True

    async def _record_link_event(self, outcome: Outcome, kind: str) -> bool:
        """Write the event of a tracked link; whether Kafka took it within
        `link_wait_seconds` (the write goes on after that, and a failure is logged and counted
        then: the answer never waits for Kafka longer)."""
        if not outcome.records:
            return False
        task = asyncio.ensure_future(self._write_link_event(outcome.records, kind))
        self._link_writes.add(task)
        task.add_done_callback(self._link_writes.discard)
        try:
            async with asyncio.timeout(self.link_wait_seconds):
                return await asyncio.shield(task)
        except TimeoutError:
            log.warning(
                "collector: Kafka has not taken a tracked link %s event after %.1f s: "
                "answering now, the write goes on",
                kind,
                self.link_wait_seconds,
            )
            return False

    @staticmethod
    def _link_headers(outcome: Outcome, written: bool) -> dict[str, str]:
        headers = dict(NO_CACHE)
        if written:
            headers["X-Leadstream-Event-Id"] = ",".join(outcome.accepted)
        if outcome.rejected:
            reasons = "; ".join(r["reason"] for r in outcome.rejected)[:512]
            headers["X-Leadstream-Rejected"] = _HEADER_UNSAFE.sub("?", reasons)
        return headers

    async def redirect(self, request: web.Request, token: str) -> web.Response:
        """A tracked link: 302 to its target, and a click event (`email_clicked` when the link
        names a message, else `clicked`). 404 for a token that does not verify, 400 for one
        without an http(s) target: no redirect and no event then. A machine's request is
        redirected too, its event marked; Kafka being down delays the answer at most
        `link_wait_seconds` and never stops the redirect."""
        received_at = self.clock()
        link = self._link(token)
        if link.target is None:
            raise HttpError(400, "invalid_link", "the link has no target URL")
        conversion = click_conversion(
            link,
            token,
            received_at=received_at,
            user_agent=request.headers.get("User-Agent"),
            referer=request.headers.get("Referer"),
            machine=self._machine(request),
        )
        outcome = self._outcome(conversion, received_at)
        written = await self._record_link_event(outcome, "click")
        headers = {**self._link_headers(outcome, written), "Location": link.target}
        return web.Response(status=302, headers=headers)

    async def email_open(self, request: web.Request, token: str) -> web.Response:
        """An email's open pixel: the 1x1 GIF, and an `email_opened` event for the link's
        message. 404 (a token that does not verify) or 400 (a link without a message id) with
        the GIF and no event; 200 otherwise, also when Kafka is down (the event is lost then,
        logged and counted)."""
        received_at = self.clock()
        try:
            link = self._link(token)
            if link.message_id is None:
                raise HttpError(400, "invalid_link", "an open pixel's link needs a message id")
        except HttpError as refused:
            log.info("collector: %s /o/ refused %d %s", request.method, refused.status, refused)
            headers = {**NO_CACHE, "X-Leadstream-Rejected": refused.error}
            return web.Response(
                body=PIXEL_GIF, status=refused.status, content_type="image/gif", headers=headers
            )
        conversion = open_conversion(
            link,
            token,
            received_at=received_at,
            user_agent=request.headers.get("User-Agent"),
            machine=self._machine(request),
        )
        outcome = self._outcome(conversion, received_at)
        written = await self._record_link_event(outcome, "open")
        return web.Response(
            body=PIXEL_GIF, content_type="image/gif", headers=self._link_headers(outcome, written)
        )

    # --- Segment

    async def segment(self, request: web.Request, kind: str) -> web.Response:
        try:
            self.auth.check(request.headers.get("Authorization"))
        except Refusal as refusal:
            raise refusal_error(refusal) from None
        batch = kind == "batch"
        limit = (
            self.settings.collector_max_webhook_bytes
            if batch
            else self.settings.collector_max_call_bytes
        )
        received_at = self.clock()
        payload = _parse_json(await read_body(request, limit))
        if batch:
            if not (isinstance(payload, dict) and isinstance(payload.get("batch"), list)):
                raise HttpError(400, "invalid_call", 'the body is not {"batch": [...]}')
            return await self._accept(
                segment.convert(
                    payload,
                    received_at=received_at,
                    machine_ranges=self.settings.machine_ip_ranges,
                ),
                received_at,
            )
        call = segment_call(payload, kind)
        converted = segment.convert(
            call, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        outcome = self._outcome(converted, received_at)
        unmapped = kind == "track" and segment.track_event_type(call.get("event")) is None
        if not outcome.accepted and not unmapped:
            reasons = "; ".join(r["reason"] for r in outcome.rejected) or "no event"
            raise HttpError(400, "invalid_call", reasons, extra={"rejected": outcome.rejected})
        await self._write(outcome)
        return json_response(outcome.body(), 202, NO_CACHE, charset="utf-8")

    # --- webhooks

    def _unconfigured(self, setting: str) -> HttpError:
        return HttpError(
            401,
            AuthFailure.NOT_CONFIGURED.value,
            f"this webhook is not configured (LEADSTREAM_{setting.upper()})",
        )

    async def sendgrid(self, request: web.Request) -> web.Response:
        if self.sendgrid_key is None and not self.settings.auth_disabled:
            raise self._unconfigured("sendgrid_public_key")
        signature = request.headers.get(SENDGRID_SIGNATURE_HEADER)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER)
        if self.sendgrid_key is not None and not (signature and timestamp):
            raise HttpError(
                401,
                AuthFailure.MISSING_SIGNATURE.value,
                f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} are required",
            )
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        if self.sendgrid_key is not None:
            try:
                verify_sendgrid(
                    self.sendgrid_key,
                    signature=signature,
                    timestamp=timestamp,
                    body=body,
                    now=received_at,
                    tolerance_seconds=self.settings.webhook_tolerance_seconds,
                )
            except Refusal as refusal:
                raise refusal_error(refusal) from None
        payload = _parse_json(body)
        conversion = sendgrid.convert(
            payload, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        return await self._accept(conversion, received_at)

    async def mailgun(self, request: web.Request) -> web.Response:
        key = self.settings.mailgun_signing_key
        if key is None and not self.settings.auth_disabled:
            raise self._unconfigured("mailgun_signing_key")
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        payload = _parse_json(body)
        token: str | None = None
        if key is not None:
            try:
                token = await verify_mailgun(
                    key.get_secret_value(),
                    payload,
                    now=received_at,
                    tolerance_seconds=self.settings.webhook_tolerance_seconds,
                    replays=self.replays,
                )
            except Refusal as refusal:
                raise refusal_error(refusal) from None
            except (RedisError, OSError) as exc:
                log.error("collector: the Mailgun replay cache is unavailable: %s", exc)
                raise HttpError(503, "unavailable", "the replay cache is unavailable") from exc
        conversion = mailgun.convert(
            payload, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        try:
            return await self._accept(conversion, received_at)
        except HttpError:
            if token is not None:  # let Mailgun's retry of this delivery through
                try:
                    await self.replays.forget(token)
                except (RedisError, OSError):
                    log.exception("collector: could not forget a Mailgun token")
            raise

    def _check_mailchimp(self, secret: str) -> None:
        expected = self.settings.mailchimp_webhook_key
        if expected is None:
            if self.settings.auth_disabled:
                return
            raise self._unconfigured("mailchimp_webhook_key")
        if not secret_matches(secret, expected.get_secret_value()):
            raise HttpError(401, AuthFailure.WRONG_SECRET.value, "the URL's secret is wrong")

    async def mailchimp_check(self, request: web.Request, secret: str) -> web.Response:
        """Mailchimp's GET of the webhook URL when it is saved: 200 when the secret is right."""
        self._check_mailchimp(secret)
        return json_response({"status": "ok"}, 200, NO_CACHE, charset="utf-8")

    async def mailchimp(self, request: web.Request, secret: str) -> web.Response:
        self._check_mailchimp(secret)
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        return await self._accept(mailchimp.convert(body, received_at=received_at), received_at)

    # --- email platforms: shared steps

    def _check_credentials(
        self,
        request: web.Request,
        vendor: str,
        user: str,
        password: SecretStr | None,
        *,
        bearer: bool = False,
    ) -> None:
        """The vendor's configured HTTP Basic credentials (or, with `bearer`, its token)."""
        if password is None:
            if self.settings.auth_disabled:
                return
            raise self._unconfigured(f"{vendor}_webhook_password")
        try:
            check_webhook_credentials(
                request.headers.get("Authorization"),
                user=user,
                password=password.get_secret_value(),
                bearer=bearer,
            )
        except Refusal as refusal:
            raise HttpError(
                401, refusal.failure.value, refusal.detail, headers=BASIC_CHALLENGE
            ) from None

    async def _email_webhook(
        self, request: web.Request, convert: Callable[..., Conversion]
    ) -> web.Response:
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        payload = _parse_json(body)
        conversion = convert(
            payload, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        return await self._accept(conversion, received_at)

    # --- Postmark

    async def postmark(self, request: web.Request) -> web.Response:
        settings = self.settings
        self._check_credentials(
            request, "postmark", settings.postmark_webhook_user, settings.postmark_webhook_password
        )
        return await self._email_webhook(request, postmark.convert)

    # --- Amazon SES through SNS

    async def ses(self, request: web.Request) -> web.Response:
        """An SNS message: a `Notification` of an SES event, or a subscription message."""
        topics = self.settings.ses_sns_topic_arns
        if not topics and not self.settings.auth_disabled:
            raise self._unconfigured("ses_sns_topic_arns")
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        message = _parse_json(body)
        kind = message.get("Type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            raise HttpError(400, "invalid_call", "the body is not an SNS message (no Type)")
        declared = request.headers.get(SNS_MESSAGE_TYPE_HEADER)
        if declared is not None and declared != kind:
            raise HttpError(
                400, "invalid_call", f"{SNS_MESSAGE_TYPE_HEADER} {declared[:40]!r} is not {kind!r}"
            )
        if kind not in ("Notification", *ses.SNS_CONTROL_TYPES):
            raise HttpError(400, "invalid_call", f"unknown SNS message type {kind[:40]!r}")
        if topics or kind != "Notification":  # unsigned notifications only with auth disabled
            await self._verify_sns(message, topics)
        topic = str(message.get("TopicArn"))
        if kind == "SubscriptionConfirmation":
            try:
                await self.sns.confirm(message)
            except SnsUnavailable as exc:
                log.error("collector: could not confirm the SNS subscription: %s", exc)
                raise HttpError(503, "unavailable", "SNS could not be reached; retry") from exc
            log.info("collector: confirmed the SNS subscription to %s", topic)
            return json_response({"status": "confirmed", "topic_arn": topic}, 200, NO_CACHE)
        if kind == "UnsubscribeConfirmation":
            log.warning("collector: the SNS subscription to %s was deleted", topic)
            return json_response({"status": "unsubscribed", "topic_arn": topic}, 200, NO_CACHE)
        conversion = ses.convert(
            message, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        return await self._accept(conversion, received_at)

    async def _verify_sns(self, message: dict[str, Any], topics: Sequence[str]) -> None:
        if not topics:
            raise self._unconfigured("ses_sns_topic_arns")
        topic = message.get("TopicArn")
        if topic not in topics:
            raise HttpError(
                401,
                AuthFailure.UNEXPECTED_TOPIC.value,
                "the TopicArn is not in LEADSTREAM_SES_SNS_TOPIC_ARNS",
            )
        try:
            await self.sns.verify(message)
        except Refusal as refusal:
            raise refusal_error(refusal) from None
        except SnsUnavailable as exc:
            log.error("collector: the SNS signing certificate is unavailable: %s", exc)
            raise HttpError(
                503, "unavailable", "the signing certificate could not be fetched; retry"
            ) from exc

    # --- Brevo

    async def brevo(self, request: web.Request) -> web.Response:
        settings = self.settings
        self._check_credentials(
            request,
            "brevo",
            settings.brevo_webhook_user,
            settings.brevo_webhook_password,
            bearer=True,
        )
        return await self._email_webhook(request, brevo.convert)

    # --- Mailjet

    async def mailjet(self, request: web.Request) -> web.Response:
        settings = self.settings
        self._check_credentials(
            request, "mailjet", settings.mailjet_webhook_user, settings.mailjet_webhook_password
        )
        return await self._email_webhook(request, mailjet.convert)

    # --- Customer.io reporting webhooks

    async def customerio(self, request: web.Request) -> web.Response:
        key = self.settings.customerio_signing_key
        if key is None and not self.settings.auth_disabled:
            raise self._unconfigured("customerio_signing_key")
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        if key is not None:
            try:
                verify_customerio(
                    key.get_secret_value(),
                    signature=request.headers.get(CUSTOMERIO_SIGNATURE_HEADER),
                    timestamp=request.headers.get(CUSTOMERIO_TIMESTAMP_HEADER),
                    body=body,
                    now=received_at,
                    tolerance_seconds=self.settings.webhook_tolerance_seconds,
                )
            except Refusal as refusal:
                raise refusal_error(refusal) from None
        payload = _parse_json(body)
        conversion = customerio.convert(payload, received_at=received_at)
        return await self._accept(conversion, received_at)

    # --- RudderStack (its Webhook destination, or its HTTP destination)

    async def rudderstack(self, request: web.Request) -> web.Response:
        if not self.rudderstack_auth.configured and not self.settings.auth_disabled:
            raise self._unconfigured("rudderstack_token")
        try:
            self.rudderstack_auth.check(request.headers.get("Authorization"))
        except Refusal as refusal:
            raise refusal_error(refusal) from None
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        payload = _parse_json(body)
        conversion = rudderstack.convert(
            payload, received_at=received_at, machine_ranges=self.settings.machine_ip_ranges
        )
        return await self._accept(conversion, received_at)

    # --- LinkedIn Lead Gen Forms (Lead Sync notifications)

    async def linkedin_validation(self, request: web.Request) -> web.Response:
        """LinkedIn's URL validation: `challengeCode` → its HMAC under the client secret.

        `applicationId` (sent to parent-child applications, to say whose secret to use) is not
        read: one LinkedIn application per worker.
        """
        secret = self.settings.linkedin_client_secret
        if secret is None:  # the answer needs the secret, even with authentication disabled
            raise self._unconfigured("linkedin_client_secret")
        code = request.query.get("challengeCode")
        if not code:
            raise HttpError(400, "invalid_call", "challengeCode is required")
        answer = {
            "challengeCode": code,
            "challengeResponse": linkedin_challenge_response(secret.get_secret_value(), code),
        }
        return json_response(answer, 200, NO_CACHE, charset="utf-8")

    async def _signed_body(
        self, request: web.Request, setting: str, verify: Callable[..., None], header: str
    ) -> tuple[bytes, datetime]:
        """The body of a webhook signed (`header`) with the secret of `setting`, and when it
        came: 401 when the signature does not hold, or when the secret is not configured (unless
        authentication is disabled: then nothing is checked)."""
        secret: SecretStr | None = getattr(self.settings, setting)
        if secret is None and not self.settings.auth_disabled:
            raise self._unconfigured(setting)
        body = await read_body(request, self.settings.collector_max_webhook_bytes)
        received_at = self.clock()
        if secret is not None:
            try:
                verify(secret.get_secret_value(), signature=request.headers.get(header), body=body)
            except Refusal as refusal:
                raise refusal_error(refusal) from None
        return body, received_at

    async def linkedin(self, request: web.Request) -> web.Response:
        body, received_at = await self._signed_body(
            request, "linkedin_client_secret", verify_linkedin, LINKEDIN_SIGNATURE_HEADER
        )
        found, conversion = linkedin.notices(_parse_json(body))
        leads = await _fetch_all(
            "LinkedIn", [(n.response_id, self.linkedin_api.lead(n.response_id)) for n in found]
        )
        for notice, (response, form) in zip(found, leads, strict=True):
            _merge(
                conversion,
                linkedin.convert_lead(notice, response, form, received_at=received_at),
            )
        return await self._accept(conversion, received_at)

    # --- Meta Lead Ads (Page leadgen webhooks)

    async def meta_verification(self, request: web.Request) -> web.Response:
        """Meta's verification request: echo `hub.challenge` when `hub.verify_token` is ours."""
        token = self.settings.meta_verify_token
        if token is None and not self.settings.auth_disabled:
            raise self._unconfigured("meta_verify_token")
        query = request.query
        challenge = meta_verification(
            token.get_secret_value() if token else query.get("hub.verify_token", ""),
            mode=query.get("hub.mode"),
            token=query.get("hub.verify_token", ""),
            challenge=query.get("hub.challenge"),
        )
        return web.Response(text=challenge, content_type="text/plain", headers=NO_CACHE)

    async def meta(self, request: web.Request) -> web.Response:
        body, received_at = await self._signed_body(
            request, "meta_app_secret", verify_meta, META_SIGNATURE_HEADER
        )
        found, conversion = meta.notices(_parse_json(body))
        leads = await _fetch_all(
            "Meta", [(n.leadgen_id, self.meta_api.lead(n.leadgen_id)) for n in found]
        )
        for notice, lead in zip(found, leads, strict=True):
            _merge(conversion, meta.convert_lead(notice, lead, received_at=received_at))
        return await self._accept(conversion, received_at)


def _view(path: str, **methods: Handler) -> Any:
    """A Faust view class whose HTTP methods call `methods` with the aiohttp request."""
    import faust  # noqa: PLC0415

    name = "collector_" + re.sub(r"\W+", "_", path).strip("_")

    def method(handler: Handler) -> Callable[..., Awaitable[web.StreamResponse]]:
        async def call(self: Any, request: web.Request, **match: str) -> web.StreamResponse:
            return await handler(request, **match)

        return call

    return type(name, (faust.web.View,), {m: method(h) for m, h in methods.items()})


def routes(collector: Collector) -> dict[str, dict[str, Handler]]:
    """Path → HTTP method (lower case) → handler of the aiohttp request and the path's parts."""
    g = functools.partial(
        guarded, log=log, prefix="collector", headers=NO_CACHE, charset="utf-8", log_refusals=True
    )
    table: dict[str, dict[str, Handler]] = {
        "/collect/pixel.gif": {"get": g(collector.pixel), "head": g(collector.pixel_head)},
        "/collect/leadstream.js": {"get": g(collector.snippet)},
        "/r/{token}": {"get": g(collector.redirect), "head": g(collector.redirect)},
        "/o/{token}.gif": {"get": g(collector.email_open), "head": g(collector.email_open)},
        "/webhooks/sendgrid": {"post": g(collector.sendgrid)},
        "/webhooks/mailgun": {"post": g(collector.mailgun)},
        "/webhooks/mailchimp/{secret}": {
            "get": g(collector.mailchimp_check),
            "post": g(collector.mailchimp),
        },
    }
    table["/webhooks/customerio"] = {"post": g(collector.customerio)}
    table["/webhooks/rudderstack"] = {"post": g(collector.rudderstack)}
    table["/webhooks/linkedin"] = {
        "get": g(collector.linkedin_validation),
        "post": g(collector.linkedin),
    }
    table["/webhooks/meta"] = {"get": g(collector.meta_verification), "post": g(collector.meta)}
    for kind in (*SEGMENT_CALLS, "batch"):
        table[f"/v1/{kind}"] = {"post": g(functools.partial(collector.segment, kind=kind))}
    # email platforms
    table["/webhooks/postmark"] = {"post": g(collector.postmark)}
    table["/webhooks/ses"] = {"post": g(collector.ses)}
    table["/webhooks/brevo"] = {"post": g(collector.brevo)}
    table["/webhooks/mailjet"] = {"post": g(collector.mailjet)}
    return table


def register(
    app: Any,
    settings: Settings,
    *,
    sink: Sink | None = None,
    replays: ReplayGuard | None = None,
) -> Collector | None:
    """Route the collector's endpoints on `app`'s web server (unless it is disabled)."""
    if not settings.collector_enabled:
        return None
    if replays is None:
        if settings.webhook_replay_store == "redis":
            import redis.asyncio  # noqa: PLC0415

            client = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
            replays = RedisReplayGuard(client, prefix=f"{settings.app_id}:mailgun-token:")
        else:
            replays = MemoryReplayGuard()
    collector = Collector(settings, sink or FaustSink(app, settings), replays=replays)
    collector.links  # noqa: B018  (a link signing key too short to use stops the worker here)
    _warn_about_configuration(settings, collector)

    for path, methods in routes(collector).items():
        app.page(path)(_view(path, **methods))
    return collector


def _warn_about_configuration(settings: Settings, collector: Collector) -> None:
    if not settings.web_enabled:
        return
    if settings.auth_disabled:
        log.warning(
            "collector: authentication is DISABLED (LEADSTREAM_AUTH_DISABLED=true): anyone "
            "who reaches the web server can write events"
        )
    elif not collector.auth.configured:
        log.warning(
            "collector: no collector token is configured (LEADSTREAM_AUTH_TOKENS): /v1/* "
            "answers 401 to every request"
        )
    if not collector.links.configured:
        log.info("collector: LEADSTREAM_LINK_SIGNING_KEY is not set: tracked links answer 404")
    if not settings.auth_disabled:
        for setting, value in (
            ("sendgrid_public_key", settings.sendgrid_public_key),
            ("mailgun_signing_key", settings.mailgun_signing_key),
            ("mailchimp_webhook_key", settings.mailchimp_webhook_key),
            ("customerio_signing_key", settings.customerio_signing_key),
            ("rudderstack_token", settings.rudderstack_token),
            ("linkedin_client_secret", settings.linkedin_client_secret),
            ("meta_app_secret", settings.meta_app_secret),
        ):
            if value is None:
                log.info(
                    "collector: LEADSTREAM_%s is not set: that webhook answers 401",
                    setting.upper(),
                )
        # email platforms
        for setting, configured in (
            ("postmark_webhook_password", settings.postmark_webhook_password is not None),
            ("ses_sns_topic_arns", bool(settings.ses_sns_topic_arns)),
            ("brevo_webhook_password", settings.brevo_webhook_password is not None),
            ("mailjet_webhook_password", settings.mailjet_webhook_password is not None),
        ):
            if not configured:
                log.info(
                    "collector: LEADSTREAM_%s is not set: that webhook answers 401",
                    setting.upper(),
                )
    for vendor, secret, token in (
        ("linkedin", settings.linkedin_client_secret, settings.linkedin_access_token),
        ("meta", settings.meta_app_secret, settings.meta_access_token),
    ):
        if (secret is not None or settings.auth_disabled) and token is None:
            log.warning(
                "collector: LEADSTREAM_%s_ACCESS_TOKEN is not set: /webhooks/%s cannot read the "
                "leads its notifications name and answers them 503 (the vendor retries)",
                vendor.upper(),
                vendor,
            )
