"""Stage changes and account stage changes as the delivery core hands them to a destination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from schemas.outputs import AccountStageChanged, ScoreSnapshot, StageChanged
from schemas.stages import AccountStage, Stage
from stream.connect.destination import AccountChange, Change

_offsets = count()
_START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def make_change(
    lead_id: str = "ada@example.com",
    to_stage: Stage = Stage.MQL,
    from_stage: Stage | None = Stage.LEAD,
    *,
    model: str = "b2b",
    total: float = 55.0,
    grade: str = "B2",
) -> Change:
    offset = next(_offsets)
    record = StageChanged.build(
        lead_id=lead_id,
        model=model,
        model_version="1",
        from_stage=from_stage,
        to_stage=to_stage,
        reason="engagement 55.0 >= mql threshold 50",
        triggering_event_id=f"evt-{offset}",
        score=ScoreSnapshot(fit=20.0, engagement=total - 20.0, total=total, grade=grade),
        occurred_at=_START + timedelta(minutes=offset),
    )
    return Change(record=record, topic="leads.stage-changes.v1", partition=0, offset=offset)


def make_account_change(
    account_id: str = "acme.example",
    to_stage: AccountStage = AccountStage.MQA,
    from_stage: AccountStage | None = AccountStage.ENGAGED,
    *,
    model: str = "b2b",
    score: float = 104.0,
    partition: int = 0,
) -> AccountChange:
    offset = next(_offsets)
    record = AccountStageChanged.build(
        account_id=account_id,
        model=model,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=f"score {score} >= mqa threshold 100",
        triggering_lead_id=f"ada@{account_id}",
        score=score,
        occurred_at=_START + timedelta(minutes=offset),
    )
    return AccountChange(
        record=record, topic="leads.account-stage-changes.v1", partition=partition, offset=offset
    )
