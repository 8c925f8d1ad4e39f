"""``GET /leads/{lead_id}``: a lead's live score, explanation and stage history.

Served from the lead table by the worker that owns the lead's partition: a request that
reaches another worker is forwarded to the owner (Faust's table routing), so the answer is
always the processor's own state, decayed to the moment of the request, never a copy that
may lag behind. Requires the read API's bearer token (``LEADSTREAM_AUTH_TOKENS``) unless
``LEADSTREAM_AUTH_DISABLED=true``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

import faust

from stream.scoring import Explanation, LeadState, ModelSet, explain
from stream.settings import Settings
from stream.web.auth import BearerAuth, Refusal
from stream.web.http import HttpError, json_response, refusal_error

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 256


class StoredLead(Protocol):
    """A lead as the worker stores it: its state document, or the lead it was merged into."""

    @property
    def state(self) -> dict[str, Any] | None: ...

    @property
    def merged_into(self) -> str | None: ...


class LeadSource(Protocol):
    """What the lead API reads from the worker: the lead table (for routing a request to the
    worker that owns the lead) and a lead's stored record."""

    @property
    def leads(self) -> Any: ...

    def load_lead(self, lead_id: str) -> StoredLead | None: ...


def explanation_json(item: Explanation) -> dict[str, Any]:
    """One model's explanation as JSON."""
    return {
        "model": item.model,
        "model_version": item.model_version,
        "as_of": item.as_of.isoformat(),
        "fit": round(item.fit, 4),
        "engagement": round(item.engagement, 4),
        "total": round(item.total, 4),
        "grade": item.grade,
        "stage": item.stage.value,
        "rules": [
            {
                "rule_id": rule.rule_id,
                "kind": rule.kind,
                "group": rule.group,
                "points": round(rule.points, 4),
            }
            for rule in item.rules
        ],
        "groups": {group: round(points, 4) for group, points in item.groups},
        "machine_events": {"count": item.machine_events, "latest_reason": item.machine_reason},
        "recent": [
            {"rule_id": rule_id, "points": points, "at": at.isoformat()}
            for rule_id, points, at in item.recent
        ],
        "history": [
            {
                "from_stage": line.from_stage.value if line.from_stage is not None else None,
                "to_stage": line.to_stage.value,
                "at": line.at.isoformat(),
                "reason": line.reason,
            }
            for line in item.history
        ],
        "flags": list(item.flags),
    }


def lead_json(lead_id: str, state: LeadState, models: ModelSet, now: datetime) -> dict[str, Any]:
    """A lead's explanation under every model it has a state for, decayed to ``now``, and the
    account it rolls up to (``null``: none)."""
    return {
        "lead_id": lead_id,
        "as_of": now.isoformat(),
        "account_id": state.account.key if state.account is not None else None,
        "models": [
            explanation_json(explain(state.models[model.id], now))
            for model in models.models
            if model.id in state.models
        ],
    }


def register(app: faust.App, settings: Settings, processor: LeadSource, models: ModelSet) -> None:
    """Route ``GET /leads/{lead_id}`` on ``app``'s web server."""
    auth = BearerAuth(
        [t.get_secret_value() for t in settings.auth_tokens], disabled=settings.auth_disabled
    )

    async def answer(request: Any, lead_id: str) -> Any:
        try:
            auth.check(request.headers.get("Authorization"))
        except Refusal as refusal:
            return refusal_error(refusal, invalid_token_status=403).response()
        if not lead_id or len(lead_id) > MAX_ID_LENGTH or any(c.isspace() for c in lead_id):
            return HttpError(400, "bad_lead_id", "not a lead id").response()
        record = processor.load_lead(lead_id)
        if record is None or (record.state is None and record.merged_into is None):
            return HttpError(404, "unknown_lead", f"no lead {lead_id!r}").response()
        if record.merged_into is not None:
            return json_response(
                {
                    "lead_id": lead_id,
                    "merged_into": record.merged_into,
                    "detail": f"merged into {record.merged_into}: see /leads/{record.merged_into}",
                }
            )
        assert record.state is not None
        state = LeadState.from_dict(record.state, models)
        return json_response(lead_json(lead_id, state, models, datetime.now(UTC)))

    class LeadView(faust.web.View):  # type: ignore[misc]
        @app.table_route(table=processor.leads, match_info="lead_id")
        async def get(self, request: Any, lead_id: str) -> Any:
            return await answer(request, lead_id)

    app.page("/leads/{lead_id}")(LeadView)
