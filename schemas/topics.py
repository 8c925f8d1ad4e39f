"""The topic catalogue of the contract: every topic, its key, its value types and how it is created.

This is the single source of truth for topic names, keys and value schemas; the stream processor's
topic declarations and the generated AsyncAPI document both derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from schemas.common import ContractModel
from schemas.events import (
    CLICKSTREAM_TYPES,
    CRM_FEEDBACK_TYPES,
    EMAIL_TYPES,
    PROFILE_TYPES,
    SOCIAL_TYPES,
    ClickstreamEvent,
    CrmFeedbackEvent,
    EmailEvent,
    EventBase,
    ProfileEvent,
    SocialEvent,
)
from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    ConnectorDeadLetter,
    DeadLetter,
    LeadErasedRecord,
    ScoreKey,
    ScoreRecord,
    ScoreUpdated,
    StageChanged,
    StageChangeRecord,
)

__all__ = [
    "ACCOUNT_SCORES",
    "ACCOUNT_STAGE_CHANGES",
    "CLICKSTREAM",
    "CONNECTOR_DEAD_LETTERS",
    "CRM_FEEDBACK",
    "DEAD_LETTERS",
    "DEFAULT_PARTITIONS",
    "EMAIL",
    "EVENT_TOPIC",
    "INBOUND_TOPICS",
    "OUTBOUND_TOPICS",
    "PROFILES",
    "SCORES",
    "SOCIAL",
    "STAGE_CHANGES",
    "TOPICS",
    "TOPIC_BY_NAME",
    "CleanupPolicy",
    "TopicContract",
    "topic_for",
]

CleanupPolicy = Literal["delete", "compact"]
Direction = Literal["inbound", "outbound"]

DEFAULT_PARTITIONS = 8
"""Partitions per topic unless a deployment says otherwise (the unit of parallelism)."""


@dataclass(frozen=True)
class TopicContract:
    """What a topic carries and how it is created."""

    name: str
    """Without any environment prefix."""
    description: str
    direction: Direction
    """`inbound`: producers write it, Leadstream reads it; `outbound`: the other way round."""
    key: str
    """How records are keyed (and so partitioned), for people."""
    value: Any
    """The value type: a discriminated union of models (or one model)."""
    value_types: tuple[type[ContractModel], ...]
    cleanup_policy: CleanupPolicy = "delete"
    partitions: int = DEFAULT_PARTITIONS
    key_model: type[ContractModel] | None = None
    """The key's model when the key is JSON; `None` when it is a UTF-8 string."""

    @property
    def type_names(self) -> tuple[str, ...]:
        """The `type` values this topic carries."""
        return tuple(cls.model_fields["type"].default for cls in self.value_types)


_INBOUND_KEY = "`lead_id` when known, else `anonymous_id` (UTF-8)."

CLICKSTREAM = TopicContract(
    name="leads.clickstream.v1",
    description="Website and product activity: page views, clicks, downloads, forms, requests.",
    direction="inbound",
    key=_INBOUND_KEY,
    value=ClickstreamEvent,
    value_types=tuple(CLICKSTREAM_TYPES.values()),
)
EMAIL = TopicContract(
    name="leads.email.v1",
    description="Email delivery and engagement, as reported by the sending platform.",
    direction="inbound",
    key=_INBOUND_KEY,
    value=EmailEvent,
    value_types=tuple(EMAIL_TYPES.values()),
)
SOCIAL = TopicContract(
    name="leads.social.v1",
    description="Interactions with the brand on social networks.",
    direction="inbound",
    key=_INBOUND_KEY,
    value=SocialEvent,
    value_types=tuple(SOCIAL_TYPES.values()),
)
PROFILES = TopicContract(
    name="leads.profiles.v1",
    description="Identify, profile updates (fit attributes), merges and erasures.",
    direction="inbound",
    key=_INBOUND_KEY,
    value=ProfileEvent,
    value_types=tuple(PROFILE_TYPES.values()),
)
CRM_FEEDBACK = TopicContract(
    name="leads.crm-feedback.v1",
    description="What sales did with a lead, reported by the CRM.",
    direction="inbound",
    key="`lead_id` (UTF-8).",
    value=CrmFeedbackEvent,
    value_types=tuple(CRM_FEEDBACK_TYPES.values()),
)
SCORES = TopicContract(
    name="leads.scores.v1",
    description=(
        "The latest score of every lead under every scoring model. Compacted: read it from the "
        "start to get every current score. An erased lead gets a `lead_erased` record and then "
        "a tombstone (null value) for each of its keys."
    ),
    direction="outbound",
    key="JSON object `{lead_id, model}`: one record per lead and model survives compaction.",
    value=ScoreRecord,
    value_types=(ScoreUpdated, LeadErasedRecord),
    cleanup_policy="compact",
    key_model=ScoreKey,
)
STAGE_CHANGES = TopicContract(
    name="leads.stage-changes.v1",
    description=(
        "Every lifecycle stage change, with HubSpot and Salesforce values, for CRM connectors "
        "and nurture automation. Deduplicate by `event_id`."
    ),
    direction="outbound",
    key="`lead_id` (UTF-8): a lead's changes stay in order.",
    value=StageChangeRecord,
    value_types=(StageChanged, LeadErasedRecord),
)
DEAD_LETTERS = TopicContract(
    name="leads.dead-letters.v1",
    description="Messages that could not be processed, with the reason and the original bytes.",
    direction="outbound",
    key="The original record's key, unchanged (may be null).",
    value=DeadLetter,
    value_types=(DeadLetter,),
)

ACCOUNT_SCORES = TopicContract(
    name="leads.account-scores.v1",
    description=(
        "The latest score of every account (leads rolled up to their company): fit, the "
        "members' engagement, buying-group coverage, engaged contacts, the strongest member and "
        "the account stage. Compacted: read it from the start to get every current score."
    ),
    direction="outbound",
    key="`account_id` (UTF-8): one record per account survives compaction.",
    value=AccountScoreUpdated,
    value_types=(AccountScoreUpdated,),
    cleanup_policy="compact",
)
ACCOUNT_STAGE_CHANGES = TopicContract(
    name="leads.account-stage-changes.v1",
    description=(
        "Every account stage change (target, engaged, mqa, opportunity, customer) for CRM "
        "connectors (`leadstream connect KIND --accounts`) and account-based "
        "marketing tools. Deduplicate by `event_id`."
    ),
    direction="outbound",
    key="`account_id` (UTF-8): an account's changes stay in order.",
    value=AccountStageChanged,
    value_types=(AccountStageChanged,),
)
CONNECTOR_DEAD_LETTERS = TopicContract(
    name="leads.connector-dead-letters.v1",
    description=(
        "Stage changes and account stage changes a CRM or webhook connector could not deliver: "
        "the destination, the reason, the last request and response (secrets masked) and the "
        "original record."
    ),
    direction="outbound",
    key="The original record's key, unchanged (the `lead_id`, or the `account_id`).",
    value=ConnectorDeadLetter,
    value_types=(ConnectorDeadLetter,),
)

INBOUND_TOPICS: tuple[TopicContract, ...] = (CLICKSTREAM, EMAIL, SOCIAL, PROFILES, CRM_FEEDBACK)
OUTBOUND_TOPICS: tuple[TopicContract, ...] = (
    SCORES,
    STAGE_CHANGES,
    DEAD_LETTERS,
    ACCOUNT_SCORES,
    ACCOUNT_STAGE_CHANGES,
    CONNECTOR_DEAD_LETTERS,
)
TOPICS: tuple[TopicContract, ...] = INBOUND_TOPICS + OUTBOUND_TOPICS
TOPIC_BY_NAME: dict[str, TopicContract] = {topic.name: topic for topic in TOPICS}

EVENT_TOPIC: dict[str, str] = {
    type_name: topic.name for topic in INBOUND_TOPICS for type_name in topic.type_names
}
"""The topic every inbound event `type` is written to."""


def topic_for(event: EventBase) -> str:
    """The topic a producer writes `event` to."""
    return EVENT_TOPIC[event.type]
