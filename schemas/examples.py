"""One realistic example of every message, and factories built on them.

The examples feed the generated documents (AsyncAPI message examples, the README), and the
factories (`make_event`, `make_output`) give tests a valid message with only the fields they care
about overridden: `make_event("email_opened", machine_open=True)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from schemas.common import ContractModel
from schemas.errors import ErrorKind
from schemas.events import (
    EVENT_TYPES,
    AdClicked,
    AssetKind,
    Clicked,
    ClosedLost,
    ClosedWon,
    Consent,
    CtaClicked,
    DemoRequested,
    Disqualified,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSent,
    EmailSpamReported,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
    FileDownloaded,
    FormSubmitted,
    Identify,
    LeadErased,
    LeadsMerged,
    OpportunityCreated,
    PageViewed,
    ProfileUpdated,
    SalesAccepted,
    SalesRejected,
    Searched,
    Seniority,
    SocialCommented,
    SocialFollowed,
    SocialFormSubmitted,
    SocialLiked,
    SocialMentioned,
    SocialMessaged,
    SocialShared,
    StageSet,
    Traits,
    TrialRequested,
    Utm,
    VideoViewed,
    WebinarAttended,
)
from schemas.outputs import (
    AccountScoreUpdated,
    AccountStageChanged,
    DeadLetter,
    LeadErasedRecord,
    RuleContribution,
    ScoreSnapshot,
    ScoreUpdated,
    StageChanged,
)
from schemas.stages import AccountStage, Stage

__all__ = ["EVENT_EXAMPLES", "OUTPUT_EXAMPLES", "make_event", "make_output"]

_T0 = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
_LEAD = "lead-7f3a9c"
_ANON = "anon-2b81e0d4"
_WEB: dict[str, Any] = {"anonymous_id": _ANON, "source": "web", "session_id": "sess-51c2"}
_MAIL: dict[str, Any] = {
    "lead_id": _LEAD,
    "source": "sendgrid",
    "message_id": "msg-0c1d",
    "campaign_id": "spring-25",
}
_SOCIAL: dict[str, Any] = {
    "lead_id": _LEAD,
    "source": "linkedin",
    "network": "linkedin",
    "post_id": "urn-li-7042",
}
_CRM: dict[str, Any] = {"lead_id": _LEAD, "source": "crm:salesforce", "owner_id": "rep-ada"}


def _eid(n: int) -> str:
    return f"evt-{n:04d}"


_EVENTS: list[EventBase] = [
    PageViewed(
        event_id=_eid(1),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/pricing?utm_source=google&utm_medium=cpc",
        path="/pricing",
        referrer="https://www.google.com/",
        title="Pricing | Acme",
        utm=Utm(source="google", medium="cpc", campaign="brand"),
        duration_seconds=42.5,
    ),
    Clicked(
        event_id=_eid(2),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/features",
        target="nav-integrations",
        href="https://acme.example/integrations",
    ),
    CtaClicked(
        event_id=_eid(3),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/",
        cta_id="hero-start-trial",
        label="Start free trial",
        href="https://acme.example/signup",
    ),
    AdClicked(
        event_id=_eid(4),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/lp/scoring",
        network="google_ads",
        campaign_id="cmp-881",
        ad_id="ad-23",
        click_id="EAIaIQobChMI",
        utm=Utm(source="google", medium="cpc", campaign="scoring-lp"),
    ),
    FileDownloaded(
        event_id=_eid(5),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/resources",
        file_url="https://acme.example/files/lead-scoring-guide.pdf",
        file_name="lead-scoring-guide.pdf",
        asset_id="guide-12",
        asset_kind=AssetKind.GUIDE,
    ),
    VideoViewed(
        event_id=_eid(6),
        occurred_at=_T0,
        **_WEB,
        video_id="vid-product-tour",
        title="Product tour",
        watched_seconds=95.0,
        percent_watched=80.0,
    ),
    WebinarAttended(
        event_id=_eid(7),
        occurred_at=_T0,
        lead_id=_LEAD,
        source="zoom",
        webinar_id="web-2025-03",
        title="Scoring in real time",
        live=True,
        minutes_attended=48.0,
    ),
    FormSubmitted(
        event_id=_eid(8),
        occurred_at=_T0,
        **_WEB,
        url="https://acme.example/contact",
        form_id="contact-us",
        form_name="Contact us",
        fields={"email": "ada@example.com", "company": "Analytical Engines Ltd"},
    ),
    Searched(event_id=_eid(9), occurred_at=_T0, **_WEB, query="salesforce integration"),
    TrialRequested(
        event_id=_eid(10), occurred_at=_T0, lead_id=_LEAD, source="web", product="acme", plan="pro"
    ),
    DemoRequested(event_id=_eid(11), occurred_at=_T0, lead_id=_LEAD, source="web", product="acme"),
    EmailSent(event_id=_eid(20), occurred_at=_T0, **_MAIL),
    EmailDelivered(event_id=_eid(21), occurred_at=_T0, **_MAIL),
    EmailOpened(event_id=_eid(22), occurred_at=_T0, **_MAIL, machine_open=False),
    EmailClicked(
        event_id=_eid(23), occurred_at=_T0, **_MAIL, url="https://acme.example/webinar?ref=mail"
    ),
    EmailBounced(
        event_id=_eid(24), occurred_at=_T0, **_MAIL, bounce="hard", reason="550 unknown recipient"
    ),
    EmailUnsubscribed(event_id=_eid(25), occurred_at=_T0, **_MAIL, list_id="newsletter"),
    EmailSpamReported(event_id=_eid(26), occurred_at=_T0, **_MAIL),
    EmailSubscribed(
        event_id=_eid(27),
        occurred_at=_T0,
        anonymous_id="email:ada@example.com",
        source="mailchimp",
        list_id="newsletter",
    ),
    SocialLiked(event_id=_eid(30), occurred_at=_T0, **_SOCIAL),
    SocialShared(event_id=_eid(31), occurred_at=_T0, **_SOCIAL),
    SocialCommented(event_id=_eid(32), occurred_at=_T0, **_SOCIAL, comment_id="c-991"),
    SocialFollowed(
        event_id=_eid(33),
        occurred_at=_T0,
        lead_id=_LEAD,
        source="x",
        network="x",
        account_id="acme",
    ),
    SocialMentioned(event_id=_eid(34), occurred_at=_T0, **_SOCIAL),
    SocialMessaged(
        event_id=_eid(35),
        occurred_at=_T0,
        lead_id=_LEAD,
        source="linkedin",
        network="linkedin",
        thread_id="t-77",
    ),
    SocialFormSubmitted(
        event_id=_eid(36),
        occurred_at=_T0,
        anonymous_id="email:ada@example.com",
        source="linkedin",
        network="linkedin",
        account_id="urn:li:sponsoredAccount:507404993",
        form_id="urn:li:leadGenForm:7234246",
        form_name="Request a demo",
        ad_id="urn:li:sponsoredCreative:241257736",
        campaign_id="urn:li:sponsoredCampaign:198356826",
        fields={"email": "ada@example.com", "company_name": "Analytical Engines Ltd"},
    ),
    Identify(
        event_id=_eid(40),
        occurred_at=_T0,
        lead_id=_LEAD,
        anonymous_id=_ANON,
        source="web",
        traits=Traits(email="ada@example.com", first_name="Ada", last_name="Lovelace"),
    ),
    ProfileUpdated(
        event_id=_eid(41),
        occurred_at=_T0,
        lead_id=_LEAD,
        source="clearbit",
        traits=Traits(
            country="GB",
            region="London",
            industry="software",
            company="Analytical Engines Ltd",
            company_size=120,
            annual_revenue=12_000_000.0,
            job_title="Head of Marketing",
            seniority=Seniority.DIRECTOR,
            birth_year=1985,
            consent=Consent(email_marketing=True, tracking=True),
            custom={"plan": "premium", "logins": 5},
        ),
    ),
    LeadsMerged(
        event_id=_eid(42),
        occurred_at=_T0,
        lead_id=_LEAD,
        merged_lead_id="lead-0d44e1",
        source="crm:hubspot",
    ),
    LeadErased(
        event_id=_eid(43), occurred_at=_T0, lead_id=_LEAD, source="privacy-portal", reason="gdpr"
    ),
    SalesAccepted(event_id=_eid(50), occurred_at=_T0, **_CRM),
    SalesRejected(event_id=_eid(51), occurred_at=_T0, **_CRM, reason="no budget this year"),
    OpportunityCreated(
        event_id=_eid(52),
        occurred_at=_T0,
        **_CRM,
        opportunity_id="opp-301",
        amount=24_000.0,
        currency="EUR",
    ),
    ClosedWon(
        event_id=_eid(53),
        occurred_at=_T0,
        **_CRM,
        opportunity_id="opp-301",
        amount=24_000.0,
        currency="EUR",
    ),
    ClosedLost(
        event_id=_eid(54),
        occurred_at=_T0,
        **_CRM,
        opportunity_id="opp-301",
        reason="chose a competitor",
    ),
    Disqualified(event_id=_eid(55), occurred_at=_T0, **_CRM, reason="student"),
    StageSet(
        event_id=_eid(56),
        occurred_at=_T0,
        **_CRM,
        stage=Stage.SQL,
        model="default",
        reason="met at trade fair",
    ),
]

EVENT_EXAMPLES: dict[str, EventBase] = {event.type: event for event in _EVENTS}
"""One example of every inbound event, by `type`."""

_SCORE = ScoreSnapshot(fit=10.0, engagement=52.25, total=62.25, grade="B1")

OUTPUT_EXAMPLES: dict[str, ContractModel] = {
    "score_updated": ScoreUpdated(
        lead_id=_LEAD,
        model="default",
        model_version="2025-03-01",
        fit=10.0,
        engagement=52.25,
        total=62.25,
        grade="B1",
        stage=Stage.MQL,
        as_of=_T0,
        revision=17,
        last_event_id=_eid(1),
        top_rules=(
            RuleContribution(rule_id="pricing_page_view", points=20.0),
            RuleContribution(rule_id="webinar_attended", points=9.75),
            RuleContribution(rule_id="company_size_over_50", points=3.0),
        ),
    ),
    "stage_changed": StageChanged.build(
        lead_id=_LEAD,
        model="default",
        model_version="2025-03-01",
        from_stage=Stage.LEAD,
        to_stage=Stage.MQL,
        reason="total 62.25 >= mql threshold 50",
        triggering_event_id=_eid(1),
        score=_SCORE,
        occurred_at=_T0,
    ),
    "lead_erased": LeadErasedRecord.build(
        lead_id=_LEAD, model="default", triggering_event_id=_eid(43), occurred_at=_T0
    ),
    "dead_letter": DeadLetter.build(
        source_topic="leads.clickstream.v1",
        partition=3,
        offset=1_204_877,
        error_kind=ErrorKind.SCHEMA_VIOLATION,
        message="Input should have timezone info",
        field="occurred_at",
        original_key=_ANON.encode(),
        original=b'{"type":"page_viewed","occurred_at":"2025-03-14T09:26:53"}',
        received_at=_T0,
    ),
    "account_score_updated": AccountScoreUpdated(
        account_id="acme.example",
        model="default",
        score=154.5,
        fit=20.0,
        engagement=89.5,
        role_points=25.0,
        contact_points=20.0,
        stage=AccountStage.MQA,
        members=3,
        engaged_contacts=2,
        roles=("decision_maker", "technical_evaluator"),
        missing_roles=("champion", "user"),
        strongest_member=_LEAD,
        strongest_member_score=71.25,
        as_of=_T0,
        revision=9,
    ),
    "account_stage_changed": AccountStageChanged.build(
        account_id="acme.example",
        model="default",
        from_stage=AccountStage.ENGAGED,
        to_stage=AccountStage.MQA,
        reason="score 154.50 >= mqa threshold 150 with 2 roles and 2 engaged contacts",
        triggering_lead_id=_LEAD,
        score=154.5,
        occurred_at=_T0,
    ),
}
"""One example of every outbound record, by `type`."""

M = TypeVar("M", bound=ContractModel)


def _override(example: M, overrides: dict[str, Any]) -> M:
    data = example.model_dump(exclude_none=True)
    data.update(overrides)
    for key in [k for k, v in data.items() if v is None]:
        del data[key]
    return type(example).model_validate(data)


def make_event(event_type: str = "page_viewed", /, **overrides: Any) -> EventBase:
    """A valid inbound event of `event_type` with `overrides` applied (validated).

    Override a field with `None` to leave it out. A fresh `event_id` is not generated: pass one.
    """
    if event_type not in EVENT_TYPES:
        raise KeyError(f"unknown event type {event_type!r}")
    return _override(EVENT_EXAMPLES[event_type], overrides)


def make_output(record_type: str = "score_updated", /, **overrides: Any) -> ContractModel:
    """A valid outbound record of `record_type` with `overrides` applied (validated).

    For `stage_changed`, `event_id` and the CRM values are derived again unless overridden.
    """
    example = OUTPUT_EXAMPLES[record_type]
    if isinstance(example, StageChanged):
        derived = {"event_id", "hubspot_lifecyclestage", "salesforce_lead_status"}
        if not derived & overrides.keys():
            data = example.model_dump(exclude={*derived, "type"})
            data.update(overrides)
            return StageChanged.build(**data)
    return _override(example, overrides)
