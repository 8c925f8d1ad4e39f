"""Outbound records: what Leadstream writes for CRM connectors, nurture tools and read models."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from schemas.common import (
    ContractModel,
    EventId,
    Identifier,
    Points,
    ShortText,
    Text,
    Url,
    UtcDatetime,
)
from schemas.errors import ErrorKind
from schemas.stages import (
    HUBSPOT_LIFECYCLESTAGE,
    SALESFORCE_LEAD_STATUS,
    AccountStage,
    HubspotLifecycleStage,
    SalesforceLeadStatus,
    Stage,
)

__all__ = [
    "CONNECTOR_EXCHANGE_MAX_CHARS",
    "DEAD_LETTER_MAX_ORIGINAL_BYTES",
    "EVENT_ID_NAMESPACE",
    "AccountScoreUpdated",
    "AccountStageChanged",
    "ConnectorDeadLetter",
    "ConnectorExchange",
    "ConnectorFailure",
    "CrmOutcome",
    "DeadLetter",
    "Grade",
    "LeadErasedRecord",
    "RuleContribution",
    "ScoreKey",
    "ScoreRecord",
    "ScoreSnapshot",
    "ScoreUpdated",
    "StageChangeRecord",
    "StageChanged",
    "TopicName",
    "account_stage_change_event_id",
    "lead_erased_event_id",
    "stage_change_event_id",
]

Grade = Annotated[str, StringConstraints(pattern=r"^[A-D][1-4]$")]
"""Fit letter and engagement digit: `A1` is an ideal fit and very engaged, `D4` neither."""

CrmOutcome = Literal[
    "sales_accepted",
    "sales_rejected",
    "opportunity_created",
    "closed_won",
    "closed_lost",
    "disqualified",
]
"""The CRM feedback types that say how a lead turned out (`stage_set` is not an outcome)."""

ModelVersion = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]

Base64Bytes = Annotated[
    bytes,
    Field(
        json_schema_extra={
            "pattern": "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?$",
            "contentEncoding": "base64url",
        }
    ),
]
"""Bytes; in JSON a URL-safe base64 string (RFC 4648 section 5, padded)."""

TopicName = Annotated[
    str, StringConstraints(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
]

EVENT_ID_NAMESPACE = uuid.UUID("6f1c7a52-3f43-5b8e-9a51-7d0e1c2b9a40")
"""The uuid5 namespace of deterministic outbound event ids. Never change it."""

DEAD_LETTER_MAX_ORIGINAL_BYTES = 256 * 1024
"""Dead letters keep at most this many bytes of the original message, so they fit in a record."""


def _uuid5(*parts: str) -> uuid.UUID:
    # The unit separator cannot occur in ids (they hold no whitespace or control characters).
    return uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts))


def stage_change_event_id(
    *,
    lead_id: str,
    model: str,
    model_version: str,
    triggering_event_id: str | None,
    from_stage: Stage | None,
    to_stage: Stage,
    occurred_at: datetime,
) -> uuid.UUID:
    """The `event_id` of a stage change: the same inputs give the same id, so replays dedupe."""
    return _uuid5(
        "stage_changed",
        lead_id,
        model,
        model_version,
        triggering_event_id or "",
        from_stage.value if from_stage is not None else "",
        to_stage.value,
        occurred_at.isoformat(),
    )


def lead_erased_event_id(*, lead_id: str, model: str, triggering_event_id: str) -> uuid.UUID:
    """The `event_id` of a lead-erased record (deterministic, like stage changes)."""
    return _uuid5("lead_erased", lead_id, model, triggering_event_id)


def account_stage_change_event_id(
    *,
    account_id: str,
    model: str,
    from_stage: AccountStage | None,
    to_stage: AccountStage,
    occurred_at: datetime,
) -> uuid.UUID:
    """The `event_id` of an account stage change (deterministic, like stage changes)."""
    return _uuid5(
        "account_stage_changed",
        account_id,
        model,
        from_stage.value if from_stage is not None else "",
        to_stage.value,
        occurred_at.isoformat(),
    )


class RuleContribution(ContractModel):
    """How many points one scoring rule contributes to the score right now."""

    rule_id: Identifier
    points: Points


class ScoreKey(ContractModel):
    """The key of `leads.scores.v1`: compaction keeps the latest record per lead and model."""

    lead_id: Identifier
    model: Identifier


class ScoreUpdated(ContractModel):
    """A lead's current score under one scoring model (value of `leads.scores.v1`)."""

    type: Literal["score_updated"] = "score_updated"
    lead_id: Identifier
    model: Identifier
    """The scoring model's id (several models may score the same lead)."""
    model_version: ModelVersion
    fit: Points
    """Points for who the lead is (profile attributes); does not decay."""
    engagement: Points
    """Points for what the lead did, decayed to `as_of`."""
    total: Points
    grade: Grade
    stage: Stage
    as_of: UtcDatetime
    """The event time the score is computed for."""
    revision: Annotated[int, Field(ge=0, le=2**63 - 1)]
    """Grows with every change of this lead's score under this model: keep the highest."""
    last_event_id: EventId | None = None
    """The event that produced this score; `None` when a timer recomputed it."""
    top_rules: Annotated[tuple[RuleContribution, ...], Field(max_length=20)] = ()
    """The rules contributing most to the total, largest absolute contribution first."""
    shadow: Literal[True] | None = None
    """`true` for a shadow (challenger) model: scored like the others, it never moves a lead's
    stage, its `stage` is the one it would have given, and no stage change is published for it.
    Absent for a live model."""
    outcome: CrmOutcome | None = None
    """Set when the score was taken at a CRM outcome (the event in `last_event_id`): the score
    every model gave the lead at that moment, which the live evaluation pairs with the outcome."""


class ScoreSnapshot(ContractModel):
    """A lead's score at the moment of a stage change."""

    fit: Points
    engagement: Points
    total: Points
    grade: Grade


def _crm_values(to_stage: Stage) -> tuple[HubspotLifecycleStage, SalesforceLeadStatus]:
    return HUBSPOT_LIFECYCLESTAGE[to_stage], SALESFORCE_LEAD_STATUS[to_stage]


class StageChanged(ContractModel):
    """A lead moved from one lifecycle stage to another (value of `leads.stage-changes.v1`)."""

    type: Literal["stage_changed"] = "stage_changed"
    event_id: uuid.UUID
    """Deterministic (see `stage_change_event_id`): consumers drop duplicates by it."""
    lead_id: Identifier
    model: Identifier
    model_version: ModelVersion
    from_stage: Stage | None = None
    """`None` when the lead enters its first stage."""
    to_stage: Stage
    reason: ShortText
    """Why, for people: e.g. `engagement 52.0 >= mql threshold 50` or `demo_requested`."""
    triggering_event_id: EventId | None = None
    """The inbound event that caused the change; `None` when decay caused it (a timer)."""
    score: ScoreSnapshot
    occurred_at: UtcDatetime
    hubspot_lifecyclestage: HubspotLifecycleStage
    """HubSpot's `lifecyclestage` value for `to_stage`."""
    salesforce_lead_status: SalesforceLeadStatus
    """Salesforce's `Lead.Status` value for `to_stage`."""

    @model_validator(mode="after")
    def _crm_values_match_stage(self) -> Self:
        if (self.hubspot_lifecyclestage, self.salesforce_lead_status) != _crm_values(self.to_stage):
            raise ValueError(
                "hubspot_lifecyclestage and salesforce_lead_status must be the values mapped "
                f"from to_stage {self.to_stage.value!r}"
            )
        return self

    @classmethod
    def build(
        cls,
        *,
        lead_id: str,
        model: str,
        model_version: str,
        from_stage: Stage | None,
        to_stage: Stage,
        reason: str,
        triggering_event_id: str | None,
        score: ScoreSnapshot,
        occurred_at: datetime,
    ) -> StageChanged:
        """A stage change with its deterministic `event_id` and CRM values filled in."""
        hubspot, salesforce = _crm_values(to_stage)
        return cls(
            event_id=stage_change_event_id(
                lead_id=lead_id,
                model=model,
                model_version=model_version,
                triggering_event_id=triggering_event_id,
                from_stage=from_stage,
                to_stage=to_stage,
                occurred_at=occurred_at,
            ),
            lead_id=lead_id,
            model=model,
            model_version=model_version,
            from_stage=from_stage,
            to_stage=to_stage,
            reason=reason,
            triggering_event_id=triggering_event_id,
            score=score,
            occurred_at=occurred_at,
            hubspot_lifecyclestage=hubspot,
            salesforce_lead_status=salesforce,
        )


class LeadErasedRecord(ContractModel):
    """A lead was erased: delete everything kept about it under this model.

    Written to `leads.scores.v1` (followed by a tombstone for the same key) and to
    `leads.stage-changes.v1`, so read models and CRM connectors can follow.
    """

    type: Literal["lead_erased"] = "lead_erased"
    event_id: uuid.UUID
    """Deterministic (see `lead_erased_event_id`)."""
    lead_id: Identifier
    model: Identifier
    triggering_event_id: EventId
    """The `lead_erased` inbound event."""
    occurred_at: UtcDatetime

    @classmethod
    def build(
        cls, *, lead_id: str, model: str, triggering_event_id: str, occurred_at: datetime
    ) -> LeadErasedRecord:
        return cls(
            event_id=lead_erased_event_id(
                lead_id=lead_id, model=model, triggering_event_id=triggering_event_id
            ),
            lead_id=lead_id,
            model=model,
            triggering_event_id=triggering_event_id,
            occurred_at=occurred_at,
        )


class DeadLetter(ContractModel):
    """A message that could not be processed, with the reason and its original bytes."""

    type: Literal["dead_letter"] = "dead_letter"
    source_topic: TopicName
    partition: Annotated[int, Field(ge=0, le=2**31 - 1)]
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)]
    error_kind: ErrorKind
    message: Text
    """What was wrong, for people."""
    field: Text | None = None
    """Where it was wrong (a dotted field path such as `utm.source`), when known."""
    original_key: Base64Bytes | None = None
    """The original record key (base64 in JSON)."""
    original: Base64Bytes
    """The original record value (base64 in JSON), cut to `DEAD_LETTER_MAX_ORIGINAL_BYTES`."""
    original_size: Annotated[int, Field(ge=0, le=2**63 - 1)]
    """The size of the original value in bytes; larger than `len(original)` if it was cut."""
    received_at: UtcDatetime

    @model_validator(mode="after")
    def _sizes_agree(self) -> Self:
        if len(self.original) > DEAD_LETTER_MAX_ORIGINAL_BYTES:
            raise ValueError(f"original is longer than {DEAD_LETTER_MAX_ORIGINAL_BYTES} bytes")
        if self.original_size < len(self.original):
            raise ValueError("original_size is smaller than original")
        return self

    @classmethod
    def build(
        cls,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        error_kind: ErrorKind,
        message: str,
        original: bytes | None,
        received_at: datetime,
        field: str | None = None,
        original_key: Base64Bytes | None = None,
    ) -> DeadLetter:
        """A dead letter; an over-long original is cut and `message` is shortened to fit.

        `original` is `None` for a tombstone (a record without a value): kept as empty bytes.
        """
        original = original or b""
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            error_kind=error_kind,
            message=message[:4096],
            field=field[:4096] if field is not None else None,
            original_key=original_key[:DEAD_LETTER_MAX_ORIGINAL_BYTES]
            if original_key is not None
            else None,
            original=original[:DEAD_LETTER_MAX_ORIGINAL_BYTES],
            original_size=len(original),
            received_at=received_at,
        )


CONNECTOR_EXCHANGE_MAX_CHARS = 4096
"""A connector dead letter keeps at most this many characters of a request or response body."""


class ConnectorFailure(StrEnum):
    """Why a connector gave up on a record; the `failure` of a connector dead letter."""

    PERMANENT = "permanent"
    """The destination refused it for good (a 4xx other than 408, 409 and 429, a vendor error)."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """Transient failures went on for more attempts, or longer, than the connector allows."""
    UNDECODABLE = "undecodable"
    """The record on a stage-changes topic is not a valid stage change."""


class ConnectorExchange(ContractModel):
    """The last HTTP request a connector made for a record, and its answer (secrets masked)."""

    method: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    url: Url
    request_headers: dict[ShortText, Text] = Field(default_factory=dict)
    request_body: Text = ""
    """Cut to `CONNECTOR_EXCHANGE_MAX_CHARS`."""
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    """`None` when no answer came (a timeout, a refused connection)."""
    response_headers: dict[ShortText, Text] = Field(default_factory=dict)
    response_body: Text = ""
    """Cut to `CONNECTOR_EXCHANGE_MAX_CHARS`."""


class ConnectorDeadLetter(ContractModel):
    """A stage change (or account stage change) a connector could not deliver: why, what it
    sent, what came back, and the original record (`leadstream connect redrive` sends it
    again)."""

    type: Literal["connector_dead_letter"] = "connector_dead_letter"
    destination: Identifier
    """The connector kind that gave up: `webhook`, `hubspot`, `salesforce`, `mautic`."""
    failure: ConnectorFailure
    reason: Text
    """What went wrong, for people (secrets masked)."""
    record_event_id: EventId | None = None
    """The `event_id` of the undelivered record (its idempotency key); `None` if undecodable."""
    lead_id: Identifier | None = None
    """The lead of a stage change; `None` for an account stage change or an undecodable record."""
    account_id: Identifier | None = None
    """The account of an account stage change; `None` otherwise."""
    attempts: Annotated[int, Field(ge=0, le=2**31 - 1)]
    """Calls made for the record before giving up."""
    exchange: ConnectorExchange | None = None
    """The last request and response, when there was one."""
    source_topic: TopicName
    partition: Annotated[int, Field(ge=0, le=2**31 - 1)]
    offset: Annotated[int, Field(ge=0, le=2**63 - 1)]
    original_key: Base64Bytes | None = None
    original: Base64Bytes
    """The original record value (base64 in JSON), cut to `DEAD_LETTER_MAX_ORIGINAL_BYTES`."""
    first_attempt_at: UtcDatetime | None = None
    occurred_at: UtcDatetime
    """When the connector gave up."""

    @model_validator(mode="after")
    def _original_fits(self) -> Self:
        if len(self.original) > DEAD_LETTER_MAX_ORIGINAL_BYTES:
            raise ValueError(f"original is longer than {DEAD_LETTER_MAX_ORIGINAL_BYTES} bytes")
        return self


ScoreRecord = Annotated[ScoreUpdated | LeadErasedRecord, Field(discriminator="type")]
"""A value of `leads.scores.v1`."""

StageChangeRecord = Annotated[StageChanged | LeadErasedRecord, Field(discriminator="type")]
"""A value of `leads.stage-changes.v1`."""


# ------------------------------------------------------------------------------ accounts


class AccountScoreUpdated(ContractModel):
    """An account's current score (value of `leads.account-scores.v1`, keyed by account id)."""

    type: Literal["account_score_updated"] = "account_score_updated"
    account_id: Identifier
    model: Identifier
    """The lead scoring model whose engagement rolls up to the account."""
    score: Points
    """`fit + engagement + role_points + contact_points`."""
    fit: Points
    """Points for the company (firmographics); does not decay."""
    engagement: Points
    """The members' engagement under `model`, decayed to `as_of`."""
    role_points: Points
    """Points of the buying-group roles the members cover."""
    contact_points: Points
    """Points for the engaged contacts."""
    stage: AccountStage
    members: Annotated[int, Field(ge=0)]
    engaged_contacts: Annotated[int, Field(ge=0)]
    """Members whose latest engagement is within the model's `engaged_within`."""
    roles: Annotated[tuple[Identifier, ...], Field(max_length=64)] = ()
    """Buying-group roles at least one member holds."""
    missing_roles: Annotated[tuple[Identifier, ...], Field(max_length=64)] = ()
    strongest_member: Identifier | None = None
    """The member lead with the highest score under `model`."""
    strongest_member_score: Points | None = None
    as_of: UtcDatetime
    revision: Annotated[int, Field(ge=0, le=2**63 - 1)]
    """Grows with every change of this account's score: keep the highest."""


class AccountStageChanged(ContractModel):
    """An account moved from one stage to another (value of `leads.account-stage-changes.v1`,
    keyed by account id)."""

    type: Literal["account_stage_changed"] = "account_stage_changed"
    event_id: uuid.UUID
    """Deterministic (see `account_stage_change_event_id`): consumers drop duplicates by it."""
    account_id: Identifier
    model: Identifier
    from_stage: AccountStage | None = None
    """`None` when the account enters its first stage."""
    to_stage: AccountStage
    reason: ShortText
    """Why, for people: e.g. `score 104.0 >= mqa threshold 100` or `a member is a customer`."""
    triggering_lead_id: Identifier | None = None
    """The member whose change caused it; `None` when decay caused it (a timer)."""
    score: Points
    occurred_at: UtcDatetime

    @classmethod
    def build(
        cls,
        *,
        account_id: str,
        model: str,
        from_stage: AccountStage | None,
        to_stage: AccountStage,
        reason: str,
        triggering_lead_id: str | None,
        score: float,
        occurred_at: datetime,
    ) -> AccountStageChanged:
        """An account stage change with its deterministic `event_id`."""
        return cls(
            event_id=account_stage_change_event_id(
                account_id=account_id,
                model=model,
                from_stage=from_stage,
                to_stage=to_stage,
                occurred_at=occurred_at,
            ),
            account_id=account_id,
            model=model,
            from_stage=from_stage,
            to_stage=to_stage,
            reason=reason,
            triggering_lead_id=triggering_lead_id,
            score=score,
            occurred_at=occurred_at,
        )
