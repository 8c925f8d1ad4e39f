"""The read API on the worker's web server: leaderboard, readiness, metrics, OpenAPI, dashboard.

| endpoint | auth | source |
| --- | --- | --- |
| ``GET /leaderboard?model=&stage=&limit=`` | bearer token | Redis read model |
| ``GET /accounts?limit=`` | bearer token | Redis read model: the top accounts by score |
| ``GET /accounts/{account_id}`` | bearer token | Redis read model: an account, its stage changes |
| ``GET /readyz`` | none | 200 once table recovery completed, else 503 |
| ``GET /metrics`` | none | Prometheus text format (`stream.metrics`) |
| ``GET /openapi.yaml`` | none | the committed OpenAPI document of every endpoint |
| ``GET /dashboard`` | none | the live dashboard page (static; it holds no data) |
| ``GET /dashboard/data`` | bearer token | what the dashboard shows, as JSON |

Tokens are the collector's (``LEADSTREAM_AUTH_TOKENS``, checked by
`stream.web.auth.BearerAuth`); ``LEADSTREAM_AUTH_DISABLED=true`` turns the check off. A
request without a token is answered **401**, one with a token that is not accepted **403**.
The dashboard page reads its token from the URL fragment (``/dashboard#token=...``), which
browsers never send to the server, and sends it as a bearer token with each poll.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from importlib import resources
from typing import Any, Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from schemas.stages import Stage
from stream import metrics
from stream.kafka import topics
from stream.readmodel.model import ReadModel
from stream.settings import Settings
from stream.web.auth import BearerAuth, Refusal
from stream.web.http import (
    NO_STORE,
    Handler,
    HttpError,
    Unavailable,
    guarded,
    json_response,
    refusal_error,
)

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ReadApi", "register"]

log = logging.getLogger(__name__)

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 1000
DASHBOARD_TOP: Final = 15
DASHBOARD_MINUTES: Final = 30
HISTOGRAM_BUCKETS: Final = 10
_MODEL = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_LIMIT = re.compile(r"^[0-9]{1,18}$")
_ACCOUNT = re.compile(r"^\S{1,256}$")
_STAGES: Final = [stage.value for stage in Stage]
READ_MODEL_DOWN: Final = Unavailable(
    (RedisError, OSError), "Redis", "the read model is unavailable"
)


def _static(name: str) -> bytes:
    return resources.files("stream.web.static").joinpath(name).read_bytes()


class ReadApi:
    """The handlers, on aiohttp requests."""

    def __init__(
        self,
        app: Any,
        settings: Settings,
        read_model: ReadModel,
        per_app_metrics: CollectorRegistry | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.read_model = read_model
        self.per_app_metrics = per_app_metrics
        self.auth = BearerAuth(
            [t.get_secret_value() for t in settings.auth_tokens], disabled=settings.auth_disabled
        )
        self._sources = {settings.topic(spec.name): spec.name for spec in topics.SOURCES}

    def check_token(self, request: web.Request) -> None:
        try:
            self.auth.check(request.headers.get("Authorization"))
        except Refusal as refusal:
            raise refusal_error(refusal, invalid_token_status=403) from None

    # ------------------------------------------------------------------ endpoints

    async def leaderboard(self, request: web.Request) -> web.Response:
        self.check_token(request)
        query = request.query
        model = query.get("model", "")
        if not _MODEL.match(model):
            raise HttpError(400, "bad_model", "model is required: a scoring model id")
        stage = query.get("stage") or None
        if stage is not None and stage not in _STAGES:
            raise HttpError(400, "bad_stage", f"stage must be one of {', '.join(_STAGES)}")
        limit = self._limit(request)
        models = await self.read_model.models()
        if model not in models:
            raise HttpError(404, "unknown_model", f"no scores for model {model!r}")
        rows = await self.read_model.leaderboard(model, stage=stage, limit=limit)
        leads = [{"rank": n, **row} for n, row in enumerate(rows, start=1)]
        return json_response({"model": model, "stage": stage, "limit": limit, "leads": leads})

    def _limit(self, request: web.Request) -> int:
        limit_text = request.query.get("limit", str(DEFAULT_LIMIT))
        # ASCII digits only: str.isdigit() accepts "²" and other digits int() refuses
        if not _LIMIT.match(limit_text) or int(limit_text) < 1:
            raise HttpError(400, "bad_limit", "limit must be a positive integer")
        return min(int(limit_text), MAX_LIMIT)

    async def accounts(self, request: web.Request) -> web.Response:
        self.check_token(request)
        limit = self._limit(request)
        rows = await self.read_model.top_accounts(limit)
        ranked = [{"rank": n, **row} for n, row in enumerate(rows, start=1)]
        return json_response({"limit": limit, "accounts": ranked})

    async def account(self, request: web.Request) -> web.Response:
        self.check_token(request)
        account_id = request.match_info.get("account_id", "")
        if not _ACCOUNT.match(account_id):
            raise HttpError(400, "bad_account", "account_id must be an id without whitespace")
        found = await self.read_model.account(account_id)
        if found is None:
            raise HttpError(404, "unknown_account", f"no score for account {account_id!r}")
        return json_response(found)

    async def readyz(self, request: web.Request) -> web.Response:
        ready = metrics.is_ready(self.app)
        body = {"status": "ready" if ready else "recovering", "app": self.settings.app_id}
        return json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        body = metrics.exposition(self.per_app_metrics)
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=_static("openapi.yaml"), content_type="application/yaml")

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(
            body=_static("dashboard.html"),
            content_type="text/html",
            charset="utf-8",
            headers={**NO_STORE, "Content-Security-Policy": "default-src 'self' 'unsafe-inline'"},
        )

    async def dashboard_data(self, request: web.Request) -> web.Response:
        self.check_token(request)
        models = await self.read_model.models()
        model = request.query.get("model") or (models[0] if models else None)
        if model is not None and model not in models and models:
            raise HttpError(404, "unknown_model", f"no scores for model {model!r}")
        funnel = {m: await self.read_model.stage_counts(m) for m in models}
        top: list[dict[str, Any]] = []
        distribution: list[dict[str, float]] = []
        transitions: dict[str, int] = {}
        if model is not None and models:
            top = await self.read_model.leaderboard(model, limit=DASHBOARD_TOP)
            distribution = histogram(await self.read_model.totals(model))
            transitions = await self.read_model.transitions(model)
        now_minute = int(time.time() // 60)
        per_minute = await self.read_model.changes_per_minute(now_minute, DASHBOARD_MINUTES)
        body = {
            "generated_at": time.time(),
            "models": models,
            "model": model,
            "stages": _STAGES,
            "funnel": funnel,
            "distribution": distribution,
            "transitions": transitions,
            "changes_per_minute": [{"minute": m * 60, "count": n} for m, n in per_minute],
            "messages_in": self._messages_in(),
            "dead_letters": await self.read_model.dead_letters(),
            "machine_events": {
                "marked": _counter_values(metrics.MACHINE_MARKED, "reason"),
                "skipped": _counter_values(metrics.MACHINE_SKIPPED, "model"),
            },
            "lag": {
                "consumer": metrics.consumer_lag(self.app),
                "projector": _gauge_values(metrics.PROJECTOR_LAG, "topic"),
            },
            "top": top,
            "top_accounts": await self.read_model.top_accounts(DASHBOARD_TOP),
        }
        return json_response(body)

    def _messages_in(self) -> dict[str, float]:
        """Messages received so far per source topic (the page turns them into rates)."""
        by_topic = _counter_values(metrics.MESSAGES_IN, "topic")
        return {name: by_topic.get(full, 0.0) for full, name in self._sources.items()}


def histogram(totals: list[float], buckets: int = HISTOGRAM_BUCKETS) -> list[dict[str, float]]:
    """Equal-width buckets over [min(0, lowest), highest] of the totals."""
    if not totals:
        return []
    low = min(0.0, *totals)
    high = max(totals)
    width = (high - low) / buckets if high > low else 1.0
    counts = [0] * buckets
    for total in totals:
        counts[min(int((total - low) / width), buckets - 1)] += 1
    return [
        {"from": round(low + n * width, 2), "to": round(low + (n + 1) * width, 2), "count": c}
        for n, c in enumerate(counts)
    ]


def _counter_values(counter: Any, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels[label]
                values[key] = values.get(key, 0.0) + sample.value
    return values


def _gauge_values(gauge: Any, label: str) -> dict[str, float]:
    return {
        sample.labels[label]: sample.value
        for family in gauge.collect()
        for sample in family.samples
    }


def routes(api: ReadApi) -> dict[str, Handler]:
    """Path → handler of GET."""
    g = functools.partial(guarded, log=log, prefix="api", unavailable=READ_MODEL_DOWN)
    return {
        "/leaderboard": g(api.leaderboard),
        "/accounts": g(api.accounts),
        "/accounts/{account_id}": g(api.account),
        "/readyz": g(api.readyz),
        "/metrics": g(api.metrics),
        "/openapi.yaml": g(api.openapi),
        "/dashboard": g(api.dashboard),
        "/dashboard/data": g(api.dashboard_data),
    }


def _view(path: str, handler: Handler) -> Any:
    import faust  # noqa: PLC0415

    async def get(self: Any, request: web.Request, **path: str) -> web.StreamResponse:
        # Faust passes the path's parameters as keywords; the handler reads them from the
        # request's match_info
        return await handler(request)

    name = "api_" + re.sub(r"\W+", "_", path).strip("_")
    return type(name, (faust.web.View,), {"get": get})


def register(app: Any, settings: Settings, *, read_model: ReadModel | None = None) -> ReadApi:
    """Install the metrics sensor and route the read API on `app`'s web server."""
    per_app = metrics.register(app)
    api = ReadApi(app, settings, read_model or ReadModel.from_settings(settings), per_app)
    for path, handler in routes(api).items():
        app.page(path)(_view(path, handler))
    return api
