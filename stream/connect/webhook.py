"""Signed webhooks: each stage change POSTed as JSON to one or more endpoints.

Requests follow the Standard Webhooks specification (https://www.standardwebhooks.com/, the
spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):

- headers ``webhook-id`` (the stage change's ``event_id``: the same on every retry, so the
  receiver drops duplicates by it), ``webhook-timestamp`` (Unix seconds of this attempt) and
  ``webhook-signature``: ``v1,<base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``;
- the secret is ``whsec_`` followed by the base64 of the key (24 to 64 bytes);
- the body is ``{"type": "lead.stage_changed", "timestamp": <occurred_at>, "data": <the stage
  change as on leads.stage-changes.v1>}`` (``lead.erased`` with the erasure record for an erased
  lead, sent to every endpoint that takes lead stage changes and whose model filter matches;
  ``account.stage_changed`` with the account stage change as on
  leads.account-stage-changes.v1, when the connector reads account stages), the ``webhook-id``
  being the record's ``event_id``.

Each endpoint has its own secret and optional filters: event types, models and target stages
(``to_stage``, lead or account stages). A change no endpoint wants is skipped. Answers: 2xx
delivered; 5xx and `TRANSIENT_4XX`, a timeout or a connection error transient (``Retry-After``
honoured); any other status permanent (a redirect is not followed). With several endpoints, a
change is delivered once every endpoint that wants it took it; a retry goes only to the
endpoints that have not.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from schemas import codec
from schemas.outputs import AccountStageChanged, LeadErasedRecord, StageChanged
from schemas.stages import AccountStage, Stage
from stream import __version__
from stream.connect import http
from stream.connect.destination import (
    AccountChange,
    Change,
    Erasure,
    Exchange,
    Outcome,
    Verdict,
    retry_after_seconds,
    transient_status,
)
from stream.errors import ConfigurationError
from stream.logmask import mask
from stream.model_files import load_default_models, load_model_file
from stream.scoring.spec import suggest
from stream.settings import Settings

__all__ = [
    "ACCOUNT_STAGE_CHANGED",
    "DEFAULT_BURST",
    "DEFAULT_RATE_PER_S",
    "EVENT_TYPES",
    "LEAD_STAGE_CHANGED",
    "Endpoint",
    "WebhookDestination",
    "from_options",
    "load_endpoints",
    "option_secrets",
    "parse_secret",
    "sign",
    "unknown_models",
]

log = logging.getLogger(__name__)

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix, not a secret
DEFAULT_RATE_PER_S: Final = 5000.0
"""Requests per second to all endpoints together, unless LEADSTREAM_CONNECT_RATE_PER_S says."""
DEFAULT_BURST: Final = 500
DEFAULT_CONNECTIONS: Final = 256
"""Connections open at most to each endpoint host (requests beyond wait for one)."""
MAX_BATCH: Final = 100
"""Changes per call of the core; each is its own request, all sent at once."""
_BODY_CHARS: Final = 4096
_PARTIAL_MEMORY: Final = 10_000
_DELIVERED: Final = Outcome.delivered()

LEAD_STAGE_CHANGED: Final = "lead.stage_changed"
ACCOUNT_STAGE_CHANGED: Final = "account.stage_changed"
LEAD_ERASED: Final = "lead.erased"
EVENT_TYPES: Final = (LEAD_STAGE_CHANGED, ACCOUNT_STAGE_CHANGED)
"""The event types an endpoint can ask for (``lead.erased`` goes with ``lead.stage_changed``)."""
STAGE_NAMES: Final = frozenset(stage.value for stage in Stage) | frozenset(
    stage.value for stage in AccountStage
)
"""What a stage filter can name: lead stages and account stages."""


def parse_secret(text: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; `ConfigurationError` says what is wrong."""
    if not text.startswith(SECRET_PREFIX):
        raise ConfigurationError(
            "a webhook secret starts with whsec_ followed by base64 (Standard Webhooks), e.g. "
            "whsec_" + base64.b64encode(b"\0" * 24).decode()
        )
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("the webhook secret after whsec_ is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise ConfigurationError(
            f"the webhook secret's key is {len(key)} bytes; Standard Webhooks keys are 24 to 64"
        )
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``{msg_id}.{timestamp}.{body}``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One receiver: where, its key, and which changes it wants (each filter empty: all)."""

    url: str
    key: bytes
    models: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    """Lead or account stages: a change into one of them is sent."""
    events: frozenset[str] = frozenset()
    """`EVENT_TYPES` this endpoint takes."""

    def wants_event(self, kind: str) -> bool:
        if kind == LEAD_ERASED:  # an erasure follows the lead's stage changes
            kind = LEAD_STAGE_CHANGED
        return not self.events or kind in self.events

    def wants_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def wants(self, change: Change | AccountChange) -> bool:
        kind = ACCOUNT_STAGE_CHANGED if isinstance(change, AccountChange) else LEAD_STAGE_CHANGED
        return (
            self.wants_event(kind)
            and self.wants_model(change.record.model)
            and (not self.stages or change.record.to_stage.value in self.stages)
        )

    def __repr__(self) -> str:  # the key never appears in logs
        models, stages, events = sorted(self.models), sorted(self.stages), sorted(self.events)
        return f"Endpoint({mask(self.url)!r}, models={models}, stages={stages}, events={events})"


# ----------------------------------------------------------------------------- endpoints file

_Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]


class _EndpointEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: _Url
    secret: str | None = None
    secret_env: str | None = None
    models: list[str] = Field(default_factory=list)
    stages: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class _EndpointsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[_EndpointEntry] = Field(min_length=1)


def unknown_models(endpoints: Sequence[Endpoint], known: Sequence[str]) -> list[str]:
    """A line for every model an endpoint's filter names that the model file does not have:
    such a filter matches no stage change, so the endpoint would get none of them."""
    lines = []
    for endpoint in endpoints:
        for model in sorted(endpoint.models - set(known)):
            lines.append(
                f"the endpoint {mask(endpoint.url)!r} takes only changes of model {model!r}, "
                f"which the model file does not have{suggest(model, known)}; its models are "
                f"{', '.join(known)}"
            )
    return lines


def _check_models(endpoints: Sequence[Endpoint], settings: Settings) -> None:
    """Warn of model filters that name no model of the worker's model file
    (LEADSTREAM_MODELS_PATH, else the default models)."""
    if not any(e.models for e in endpoints):
        return
    path = settings.models_path
    try:
        known = (load_model_file(path) if path else load_default_models()).ids
    except Exception as exc:
        log.warning("model filters not checked: cannot read the model file %s (%s)", path, exc)
        return
    for line in unknown_models(endpoints, known):
        log.warning("%s", line)


def make_endpoint(
    url: str,
    secret: str,
    models: Sequence[str] = (),
    stages: Sequence[str] = (),
    events: Sequence[str] = (),
) -> Endpoint:
    """An endpoint from command-line values, checked."""
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"webhook URL {mask(url)!r} is not http:// or https://")
    unknown = sorted(set(stages) - STAGE_NAMES)
    if unknown:
        raise ConfigurationError(
            f"unknown stage(s) {', '.join(unknown)}; stages are "
            f"{', '.join(s.value for s in Stage)} (leads) and "
            f"{', '.join(s.value for s in AccountStage)} (accounts)"
        )
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ConfigurationError(
            f"unknown event type(s) {', '.join(unknown)}; event types are {', '.join(EVENT_TYPES)}"
        )
    return Endpoint(
        url, parse_secret(secret), frozenset(models), frozenset(stages), frozenset(events)
    )


def load_endpoints(path: Path, environ: dict[str, str] | None = None) -> list[Endpoint]:
    """The endpoints of a YAML file (see the README); `ConfigurationError` names the entry."""
    env = os.environ if environ is None else environ
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
    try:
        parsed = _EndpointsFile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"{path}: {problems}") from None
    endpoints = []
    for index, entry in enumerate(parsed.endpoints):
        where = f"{path}: endpoints.{index}"
        if (entry.secret is None) == (entry.secret_env is None):
            raise ConfigurationError(f"{where}: give exactly one of secret and secret_env")
        secret = entry.secret
        if entry.secret_env is not None:
            secret = env.get(entry.secret_env)
            if not secret:
                raise ConfigurationError(
                    f"{where}: environment variable {entry.secret_env} is unset"
                )
        assert secret is not None
        try:
            endpoints.append(
                make_endpoint(entry.url, secret, entry.models, entry.stages, entry.events)
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    return endpoints


def from_options(args: argparse.Namespace, settings: Settings) -> WebhookDestination:
    """The destination of `leadstream connect webhook`: ``--endpoints FILE``, or ``--url`` with
    ``--secret`` (else ``LEADSTREAM_CONNECT_WEBHOOK_SECRET``) and the filters."""
    if args.endpoints is not None:
        if args.url is not None or args.model or args.stage or args.event:
            raise ConfigurationError(
                "give either --endpoints or --url (with --model, --stage, --event)"
            )
        endpoints = load_endpoints(Path(args.endpoints))
    else:
        if args.url is None:
            raise ConfigurationError("give --url (and --secret) or --endpoints FILE")
        secret = args.secret or (
            settings.connect_webhook_secret.get_secret_value()
            if settings.connect_webhook_secret is not None
            else None
        )
        if not secret:
            raise ConfigurationError("give --secret or set LEADSTREAM_CONNECT_WEBHOOK_SECRET")
        endpoints = [make_endpoint(args.url, secret, args.model, args.stage, args.event)]
    _check_models(endpoints, settings)
    return WebhookDestination(
        endpoints,
        timeout_s=settings.connect_timeout_s,
        max_connections=DEFAULT_CONNECTIONS,
    )


def option_secrets(args: argparse.Namespace) -> list[str]:
    """The secrets given on the command line, to mask in logs."""
    return [args.secret] if args.secret else []


# ----------------------------------------------------------------------------- the destination


class WebhookDestination:
    """Standard Webhooks POSTs to `endpoints` (see the module docstring)."""

    name = "webhook"
    max_batch = MAX_BATCH
    requests_per_change = True

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        timeout_s: float = 10.0,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
        max_connections: int = DEFAULT_CONNECTIONS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigurationError("a webhook connector needs at least one endpoint")
        self.endpoints = tuple(endpoints)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._http = http.Sender(
            timeout_s=timeout_s,
            max_connections=max_connections,
            transport=transport,
            headers={"user-agent": f"leadstream/{__version__}"},
        )
        # Endpoints that took a change whose other endpoints have not: skipped on its retry.
        self._took: OrderedDict[str, set[int]] = OrderedDict()

    @property
    def accounts_only(self) -> list[Endpoint]:
        """The endpoints that take account stage changes only (nothing without accounts)."""
        return [e for e in self.endpoints if e.events and LEAD_STAGE_CHANGED not in e.events]

    async def deliver(self, changes: Sequence[Change]) -> Sequence[Outcome]:
        return await self._deliver_all(changes, LEAD_STAGE_CHANGED)

    async def deliver_accounts(self, changes: Sequence[AccountChange]) -> Sequence[Outcome]:
        return await self._deliver_all(changes, ACCOUNT_STAGE_CHANGED)

    async def _deliver_all(
        self, changes: Sequence[Change | AccountChange], kind: str
    ) -> Sequence[Outcome]:
        return await asyncio.gather(
            *(
                self._send_all(
                    change, kind, [i for i, e in enumerate(self.endpoints) if e.wants(change)]
                )
                for change in changes
            )
        )

    async def erase(self, erasures: Sequence[Erasure]) -> Sequence[Outcome]:
        return await asyncio.gather(
            *(
                self._send_all(
                    erasure,
                    LEAD_ERASED,
                    [
                        i
                        for i, e in enumerate(self.endpoints)
                        if e.wants_event(LEAD_ERASED) and e.wants_model(erasure.record.model)
                    ],
                )
                for erasure in erasures
            )
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send_all(
        self, item: Change | Erasure | AccountChange, kind: str, wanted: list[int]
    ) -> Outcome:
        if not wanted:
            return Outcome(Verdict.SKIPPED, reason="no endpoint wants it")
        msg_id = item.key
        body = payload(kind, item.record, item.raw)
        took = self._took.get(msg_id, set())
        todo = [i for i in wanted if i not in took]
        if len(todo) == 1:  # one endpoint: no task of its own
            outcomes = [await self._post(todo[0], msg_id, body)]
        else:
            outcomes = list(await asyncio.gather(*(self._post(i, msg_id, body) for i in todo)))
        took |= {i for i, o in zip(todo, outcomes, strict=True) if o.verdict is Verdict.DELIVERED}
        failed = [o for o in outcomes if o.verdict is not Verdict.DELIVERED]
        if not failed:
            self._took.pop(msg_id, None)
            return outcomes[-1] if outcomes else Outcome.delivered()
        transient = [o for o in failed if o.verdict is Verdict.TRANSIENT]
        if transient:
            self._remember(msg_id, took)
            waits = [o.retry_after for o in transient if o.retry_after is not None]
            first = transient[0]
            return Outcome(
                Verdict.TRANSIENT,
                reason=first.reason,
                retry_after=max(waits) if waits else None,
                exchange=first.exchange,
            )
        self._took.pop(msg_id, None)
        return failed[0]

    def _remember(self, msg_id: str, took: set[int]) -> None:
        if took:
            self._took[msg_id] = took
            self._took.move_to_end(msg_id)
            while len(self._took) > _PARTIAL_MEMORY:
                self._took.popitem(last=False)

    async def _post(self, index: int, msg_id: str, body: bytes) -> Outcome:
        endpoint = self.endpoints[index]
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.key, msg_id, timestamp, body),
        }
        try:
            response = await self._http.send("POST", endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return self._no_answer(endpoint, headers, body, f"timed out ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return self._no_answer(endpoint, headers, body, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return _DELIVERED
        exchange = _exchange(endpoint, headers, body, response)
        where = mask(endpoint.url)
        if transient_status(status):
            return Outcome(
                Verdict.TRANSIENT,
                reason=f"{where} answered {status}",
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
                exchange=exchange,
            )
        if 300 <= status < 400:
            target = mask(response.headers.get("location", "?"))
            return Outcome(
                Verdict.PERMANENT,
                reason=f"{where} answered {status} (redirect to {target} not followed: "
                "configure the final URL)",
                exchange=exchange,
            )
        return Outcome(Verdict.PERMANENT, reason=f"{where} answered {status}", exchange=exchange)

    def _no_answer(
        self, endpoint: Endpoint, headers: dict[str, str], body: bytes, why: str
    ) -> Outcome:
        exchange = Exchange(
            method="POST",
            url=mask(endpoint.url),
            request_headers=_masked(headers),
            request_body=mask(body[:_BODY_CHARS].decode(errors="replace")),
        )
        return Outcome(
            Verdict.TRANSIENT, reason=f"{mask(endpoint.url)}: no answer, {why}", exchange=exchange
        )


def payload(
    kind: str,
    record: StageChanged | LeadErasedRecord | AccountStageChanged,
    raw: bytes | None = None,
) -> bytes:
    """The request body: ``{"type", "timestamp", "data"}`` as Standard Webhooks recommends, the
    timestamp being when the change occurred (the same body on every retry) and the data the
    record as on the topic (`raw`, its bytes there, when given)."""
    return b"".join(
        (
            b'{"type":',
            codec.dumps(kind),
            b',"timestamp":',
            codec.dumps(record.occurred_at),
            b',"data":',
            raw if raw is not None else codec.encode(record),
            b"}",
        )
    )


def _masked(headers: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if k == "webhook-signature" else v) for k, v in headers.items()}


def _exchange(
    endpoint: Endpoint, headers: dict[str, str], body: bytes, response: httpx.Response
) -> Exchange:
    return Exchange(
        method="POST",
        url=mask(endpoint.url),
        request_headers=_masked(headers),
        request_body=mask(body[:_BODY_CHARS].decode(errors="replace")),
        status=response.status_code,
        response_headers={k: mask(v) for k, v in response.headers.items()},
        response_body=mask(response.content[:_BODY_CHARS].decode(errors="replace")),
    )
