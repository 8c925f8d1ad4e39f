"""Every Kafka topic Leadstream reads or writes, declared in one place.

The contract's topics (names, keys, cleanup policies) come from ``schemas.topics``; this module
adds the processor's internal topic and the one shape the admin code needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas import topics as contract

CleanupPolicy = Literal["delete", "compact"]


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name (without the environment prefix) and how it is created."""

    name: str
    cleanup_policy: CleanupPolicy = "delete"
    description: str = ""


def _from_contract(topic: contract.TopicContract) -> TopicSpec:
    return TopicSpec(topic.name, topic.cleanup_policy, topic.description)


CLICKSTREAM = _from_contract(contract.CLICKSTREAM)
EMAIL = _from_contract(contract.EMAIL)
SOCIAL = _from_contract(contract.SOCIAL)
PROFILES = _from_contract(contract.PROFILES)
CRM_FEEDBACK = _from_contract(contract.CRM_FEEDBACK)
SCORES = _from_contract(contract.SCORES)
STAGE_CHANGES = _from_contract(contract.STAGE_CHANGES)
DEAD_LETTERS = _from_contract(contract.DEAD_LETTERS)
ACCOUNT_SCORES = _from_contract(contract.ACCOUNT_SCORES)
ACCOUNT_STAGE_CHANGES = _from_contract(contract.ACCOUNT_STAGE_CHANGES)

SOURCES: tuple[TopicSpec, ...] = (CLICKSTREAM, EMAIL, SOCIAL, PROFILES, CRM_FEEDBACK)

INTERNAL = TopicSpec(
    "leads.internal.v1",
    description=(
        "Messages between Leadstream workers (every event on its way to scoring, identity, "
        "merges, ticks)."
    ),
)
