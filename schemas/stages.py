"""Lifecycle stages, and what each one is called in HubSpot and Salesforce."""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ACCOUNT_STAGE_RANK",
    "HUBSPOT_LIFECYCLESTAGE",
    "SALESFORCE_LEAD_STATUS",
    "AccountStage",
    "HubspotLifecycleStage",
    "SalesforceLeadStatus",
    "Stage",
]


class Stage(StrEnum):
    """Where a lead is in the funnel (HubSpot's stages plus Marketo's detours)."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    """Marketing qualified: engaged enough that marketing judges the lead likely to buy."""
    SQL = "sql"
    """Sales qualified: a hand raised (demo or price request) or sales accepted the MQL."""
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    EVANGELIST = "evangelist"
    RECYCLED = "recycled"
    """Handed back to marketing for nurturing (engagement faded, or sales was not ready)."""
    DISQUALIFIED = "disqualified"
    OTHER = "other"


HubspotLifecycleStage = Literal[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]
"""HubSpot's internal values of the contact property `lifecyclestage`."""

SalesforceLeadStatus = Literal[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
]
"""The values of Salesforce's default `Lead.Status` picklist."""

HUBSPOT_LIFECYCLESTAGE: MappingProxyType[Stage, HubspotLifecycleStage] = MappingProxyType(
    {
        Stage.SUBSCRIBER: "subscriber",
        Stage.LEAD: "lead",
        Stage.MQL: "marketingqualifiedlead",
        Stage.SQL: "salesqualifiedlead",
        Stage.OPPORTUNITY: "opportunity",
        Stage.CUSTOMER: "customer",
        Stage.EVANGELIST: "evangelist",
        # HubSpot has no recycling stage: a recycled lead is a lead again.
        Stage.RECYCLED: "lead",
        Stage.DISQUALIFIED: "other",
        Stage.OTHER: "other",
    }
)
"""Stage → HubSpot `lifecyclestage` internal value."""

SALESFORCE_LEAD_STATUS: MappingProxyType[Stage, SalesforceLeadStatus] = MappingProxyType(
    {
        Stage.SUBSCRIBER: "Open - Not Contacted",
        Stage.LEAD: "Open - Not Contacted",
        Stage.MQL: "Open - Not Contacted",
        Stage.SQL: "Working - Contacted",
        Stage.OPPORTUNITY: "Closed - Converted",
        Stage.CUSTOMER: "Closed - Converted",
        Stage.EVANGELIST: "Closed - Converted",
        Stage.RECYCLED: "Open - Not Contacted",
        Stage.DISQUALIFIED: "Closed - Not Converted",
        Stage.OTHER: "Open - Not Contacted",
    }
)
"""Stage → Salesforce `Lead.Status` (default picklist)."""


class AccountStage(StrEnum):
    """Where an account (a company buying as a group) is in the funnel."""

    TARGET = "target"
    """Known to the funnel, not yet engaged enough."""
    ENGAGED = "engaged"
    MQA = "mqa"
    """Marketing qualified account: engaged enough, across enough of the buying group."""
    OPPORTUNITY = "opportunity"
    """A member of the account has an open opportunity in the CRM."""
    CUSTOMER = "customer"
    """A member of the account is a customer."""


ACCOUNT_STAGE_RANK: MappingProxyType[AccountStage, int] = MappingProxyType(
    {stage: rank for rank, stage in enumerate(AccountStage)}
)
"""How far along the funnel an account stage is."""
