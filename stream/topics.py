"""Every Kafka topic Leadstream reads or writes, declared in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name (without the environment prefix) and how it is created."""

    name: str
    cleanup_policy: CleanupPolicy = "delete"
    description: str = ""


CLICKSTREAM = TopicSpec("leads.clickstream.v1", description="Website and product activity.")
EMAIL = TopicSpec("leads.email.v1", description="Email delivery and engagement events.")
SOCIAL = TopicSpec("leads.social.v1", description="Social network interactions.")
PROFILES = TopicSpec("leads.profiles.v1", description="Identify, profile, merge and erase events.")
CRM_FEEDBACK = TopicSpec("leads.crm-feedback.v1", description="Sales outcomes from the CRM.")

SOURCES: tuple[TopicSpec, ...] = (CLICKSTREAM, EMAIL, SOCIAL, PROFILES, CRM_FEEDBACK)

ACTIVITY_COUNTS = TopicSpec(
    "leads.activity-counts.v1",
    cleanup_policy="compact",
    description="Events seen per lead (latest count per lead).",
)
DEAD_LETTERS = TopicSpec(
    "leads.dead-letters.v1", description="Messages that could not be processed, with the reason."
)
