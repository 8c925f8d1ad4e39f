"""Inbound events: what producers write to the five source topics.

Every event is a frozen model with a `type` discriminator (a short, stable snake_case name), an
`event_id` chosen by the producer (used to deduplicate), the time it happened (`occurred_at`,
timezone-aware, stored in UTC), who did it (`lead_id` and/or `anonymous_id`, at least one) and the
`source` that reported it. The remaining fields are typed per event.

Identifiers: `lead_id` is the id of a known lead. `anonymous_id` is any other identifier of the same
person (a cookie id, a device id, an analytics anonymous id). An `anonymous_id` of the form
`email:<lower-cased address>` names a person by email address only; identity resolution links it to
the lead whose profile carries that address.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from schemas.common import (
    ContractModel,
    Email,
    EventId,
    Identifier,
    Money,
    ShortText,
    Text,
    Url,
    UtcDatetime,
    require_type,
)
from schemas.stages import Stage

__all__ = [
    "CLICKSTREAM_TYPES",
    "CRM_FEEDBACK_TYPES",
    "EMAIL_TYPES",
    "EVENT_TYPES",
    "PROFILE_TYPES",
    "SOCIAL_TYPES",
    "AdClicked",
    "AssetKind",
    "BounceKind",
    "Clicked",
    "ClickstreamEvent",
    "ClosedLost",
    "ClosedWon",
    "Consent",
    "CrmFeedbackEvent",
    "CtaClicked",
    "DemoRequested",
    "Disqualified",
    "EmailBounced",
    "EmailClicked",
    "EmailDelivered",
    "EmailEvent",
    "EmailOpened",
    "EmailSent",
    "EmailSpamReported",
    "EmailSubscribed",
    "EmailUnsubscribed",
    "EventBase",
    "FileDownloaded",
    "FormSubmitted",
    "Identify",
    "InboundEvent",
    "KnownLeadEvent",
    "LeadErased",
    "LeadsMerged",
    "OpportunityCreated",
    "PageViewed",
    "ProfileEvent",
    "ProfileUpdated",
    "SalesAccepted",
    "SalesRejected",
    "Searched",
    "Seniority",
    "SocialCommented",
    "SocialEvent",
    "SocialFollowed",
    "SocialFormSubmitted",
    "SocialLiked",
    "SocialMentioned",
    "SocialMessaged",
    "SocialShared",
    "StageSet",
    "Traits",
    "TrialRequested",
    "Utm",
    "VideoViewed",
    "WebinarAttended",
]

SourceName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.:/-]*$")
]
"""Who reported the event, lower case: `web`, `segment`, `sendgrid`, `hubspot`, `crm:salesforce`."""

Network = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
]
"""A social network, lower case: `linkedin`, `x`, `facebook`, `instagram`, `youtube`, ..."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 country code, upper case."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 currency code, upper case."""

FieldName = Annotated[str, StringConstraints(min_length=1, max_length=128)]

Scalar = bool | Annotated[int, Field(ge=-(2**53), le=2**53)] | float | Text
"""A JSON scalar that survives any JSON library (integers within ±2^53, finite floats)."""


def _require_identity(schema: dict[str, Any]) -> None:
    """Say in the JSON Schema what the `_identified` validator says in code."""
    require_type(schema)
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("lead_id", "anonymous_id")
    ]


class EventBase(ContractModel):
    """Fields every inbound event carries."""

    model_config = ConfigDict(json_schema_extra=_require_identity)

    type: str
    """What happened: a short snake_case name, fixed by each event class."""
    event_id: EventId
    """Unique per event and stable across retries: consumers drop duplicates by it."""
    occurred_at: UtcDatetime
    """When it happened (event time, not the time it was received)."""
    lead_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    source: SourceName
    machine: ShortText | None = None
    """Set when a machine rather than a person made the event (a mail privacy proxy's open, a
    security scanner's click, a browser's prefetch): why it was judged so, e.g.
    `vendor flag: sg_machine_open` or `user agent: Barracuda`. Such events are kept and shown;
    scoring rules skip them unless a rule says otherwise."""

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.lead_id is None and self.anonymous_id is None:
            raise ValueError("at least one of lead_id and anonymous_id is required")
        return self


class KnownLeadEvent(EventBase):
    """An event about a known lead: `lead_id` is required."""

    lead_id: Identifier


# --------------------------------------------------------------------------- clickstream


class Utm(ContractModel):
    """Campaign parameters of the landing URL (`utm_*`)."""

    source: ShortText | None = None
    medium: ShortText | None = None
    campaign: ShortText | None = None
    term: ShortText | None = None
    content: ShortText | None = None


class ClickstreamBase(EventBase):
    """Website and product activity."""

    url: Url | None = None
    """The page the visitor was on."""
    session_id: Identifier | None = None
    user_agent: Text | None = None


class PageViewed(ClickstreamBase):
    """A page was viewed."""

    type: Literal["page_viewed"] = "page_viewed"
    url: Url
    path: Text | None = None
    referrer: Url | None = None
    title: Text | None = None
    utm: Utm | None = None
    duration_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    """Time spent on the page, when the tracker reports it."""


class Clicked(ClickstreamBase):
    """Something on a page was clicked (a link, a button, a tab)."""

    type: Literal["clicked"] = "clicked"
    target: ShortText | None = None
    """The clicked element (id or text)."""
    href: Url | None = None


class CtaClicked(ClickstreamBase):
    """A call to action was clicked."""

    type: Literal["cta_clicked"] = "cta_clicked"
    cta_id: Identifier
    label: ShortText | None = None
    href: Url | None = None


class AdClicked(ClickstreamBase):
    """An ad was clicked, bringing the visitor to `url`."""

    type: Literal["ad_clicked"] = "ad_clicked"
    network: ShortText | None = None
    """The ad platform, e.g. `google_ads`, `linkedin_ads`."""
    campaign_id: Identifier | None = None
    ad_id: Identifier | None = None
    click_id: Identifier | None = None
    """The platform's click id (`gclid`, `fbclid`, `li_fat_id`)."""
    utm: Utm | None = None


class AssetKind(StrEnum):
    """What kind of content a downloaded file is."""

    GUIDE = "guide"
    WHITEPAPER = "whitepaper"
    EBOOK = "ebook"
    CASE_STUDY = "case_study"
    DATASHEET = "datasheet"
    REPORT = "report"
    TEMPLATE = "template"
    OTHER = "other"


class FileDownloaded(ClickstreamBase):
    """A file (a guide, whitepaper, ebook, ...) was downloaded."""

    type: Literal["file_downloaded"] = "file_downloaded"
    file_url: Url
    file_name: ShortText | None = None
    asset_id: Identifier | None = None
    asset_kind: AssetKind | None = None


class VideoViewed(ClickstreamBase):
    """A video was watched (for `watched_seconds` or `percent_watched` when known)."""

    type: Literal["video_viewed"] = "video_viewed"
    video_id: Identifier
    title: Text | None = None
    watched_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    percent_watched: Annotated[float, Field(ge=0, le=100)] | None = None


class WebinarAttended(ClickstreamBase):
    """A webinar or online event was attended."""

    type: Literal["webinar_attended"] = "webinar_attended"
    webinar_id: Identifier
    title: Text | None = None
    live: bool = True
    """False when the recording was watched instead."""
    minutes_attended: Annotated[float, Field(ge=0, le=1_440)] | None = None


class FormSubmitted(ClickstreamBase):
    """A form or survey was submitted."""

    type: Literal["form_submitted"] = "form_submitted"
    form_id: Identifier
    form_name: ShortText | None = None
    fields: Annotated[dict[FieldName, Text], Field(max_length=200)] = Field(default_factory=dict)
    """Submitted values by field name (multi-valued fields joined with commas)."""


class Searched(ClickstreamBase):
    """The site was searched."""

    type: Literal["searched"] = "searched"
    query: Annotated[str, StringConstraints(max_length=1024)]


class TrialRequested(ClickstreamBase):
    """A free trial was requested (a hand-raise)."""

    type: Literal["trial_requested"] = "trial_requested"
    product: ShortText | None = None
    plan: ShortText | None = None


class DemoRequested(ClickstreamBase):
    """A demo was requested (a hand-raise)."""

    type: Literal["demo_requested"] = "demo_requested"
    product: ShortText | None = None


# --------------------------------------------------------------------------------- email


class EmailBase(EventBase):
    """Email delivery and engagement, as reported by the sending platform."""

    message_id: Identifier | None = None
    """The sending platform's id of the email message."""
    campaign_id: Identifier | None = None
    list_id: Identifier | None = None
    """The mailing list, audience or subscription group."""


class EmailSent(EmailBase):
    """The sending platform accepted an email for delivery."""

    type: Literal["email_sent"] = "email_sent"


class EmailDelivered(EmailBase):
    """The receiving server accepted the email."""

    type: Literal["email_delivered"] = "email_delivered"


class EmailOpened(EmailBase):
    """An email was opened."""

    type: Literal["email_opened"] = "email_opened"
    machine_open: bool = False
    """True when the source says a machine opened it (Apple Mail Privacy Protection, a proxy)."""
    user_agent: Text | None = None


class EmailClicked(EmailBase):
    """A link in an email was clicked."""

    type: Literal["email_clicked"] = "email_clicked"
    url: Url
    machine_click: bool = False
    """True when the source says a link scanner or bot followed the link."""
    user_agent: Text | None = None


BounceKind = Literal["soft", "hard"]
"""`hard`: the address does not accept mail (permanent); `soft`: a temporary or policy failure."""


class EmailBounced(EmailBase):
    """An email bounced."""

    type: Literal["email_bounced"] = "email_bounced"
    bounce: BounceKind
    reason: Text | None = None


class EmailUnsubscribed(EmailBase):
    """The person unsubscribed (from `list_id` when given, else from everything)."""

    type: Literal["email_unsubscribed"] = "email_unsubscribed"
    reason: Text | None = None


class EmailSpamReported(EmailBase):
    """The person reported an email as spam."""

    type: Literal["email_spam_reported"] = "email_spam_reported"


class EmailSubscribed(EmailBase):
    """A newsletter or list subscription."""

    type: Literal["email_subscribed"] = "email_subscribed"


# -------------------------------------------------------------------------------- social


class SocialBase(EventBase):
    """An interaction with the brand on a social network."""

    network: Network
    post_id: Identifier | None = None
    """The post interacted with (when there is one)."""
    account_id: Identifier | None = None
    """The brand's account or page on that network."""
    url: Url | None = None


class SocialLiked(SocialBase):
    """The person liked a post."""

    type: Literal["social_liked"] = "social_liked"


class SocialShared(SocialBase):
    """The person shared or reposted a post."""

    type: Literal["social_shared"] = "social_shared"


class SocialCommented(SocialBase):
    """The person commented on a post."""

    type: Literal["social_commented"] = "social_commented"
    comment_id: Identifier | None = None


class SocialFollowed(SocialBase):
    """The person followed the brand's account."""

    type: Literal["social_followed"] = "social_followed"


class SocialMentioned(SocialBase):
    """The person mentioned the brand."""

    type: Literal["social_mentioned"] = "social_mentioned"


class SocialMessaged(SocialBase):
    """A direct message to the brand's account."""

    type: Literal["social_messaged"] = "social_messaged"
    thread_id: Identifier | None = None


class SocialFormSubmitted(SocialBase):
    """A lead form on a social network was submitted: in an ad (LinkedIn Lead Gen Forms, Meta
    Lead Ads) or on a page or event. A hand-raise; the answers that say who the person is come
    as a `profile_updated` event of the same person."""

    type: Literal["social_form_submitted"] = "social_form_submitted"
    form_id: Identifier
    form_name: ShortText | None = None
    ad_id: Identifier | None = None
    """The ad (or creative) the form was opened from; none for organic forms."""
    campaign_id: Identifier | None = None
    fields: Annotated[dict[FieldName, Text], Field(max_length=200)] = Field(default_factory=dict)
    """The answers by field name (multi-valued answers joined with commas)."""


# ------------------------------------------------------------------------------- profile


class Seniority(StrEnum):
    """How senior a job title is."""

    ENTRY = "entry"
    MID = "mid"
    SENIOR = "senior"
    MANAGER = "manager"
    DIRECTOR = "director"
    VP = "vp"
    EXECUTIVE = "executive"
    OWNER = "owner"


class Consent(ContractModel):
    """What the person agreed to; `None` means not asked or unknown."""

    email_marketing: bool | None = None
    tracking: bool | None = None
    profiling: bool | None = None


class Traits(ContractModel):
    """Who the person is: the fit attributes. Absent fields are unchanged, not cleared."""

    email: Email | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    phone: ShortText | None = None
    country: CountryCode | None = None
    region: ShortText | None = None
    industry: ShortText | None = None
    company: ShortText | None = None
    account_id: Identifier | None = None
    """The account (company) the person belongs to, such as the CRM's account id; names the
    lead's account ahead of its email domain."""
    company_size: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    """Number of employees."""
    annual_revenue: Money | None = None
    """In US dollars."""
    job_title: ShortText | None = None
    seniority: Seniority | None = None
    age: Annotated[int, Field(ge=0, le=150)] | None = None
    birth_year: Annotated[int, Field(ge=1900, le=2100)] | None = None
    consent: Consent | None = None
    custom: Annotated[dict[FieldName, Scalar], Field(max_length=100)] = Field(default_factory=dict)
    """Other attributes the source sent, by name."""


class Identify(EventBase):
    """The person behind `anonymous_id` (if given) is the lead `lead_id`; sets traits."""

    type: Literal["identify"] = "identify"
    lead_id: Identifier
    traits: Traits = Field(default_factory=Traits)


class ProfileUpdated(EventBase):
    """Profile attributes changed (from a form, an enrichment service or the CRM)."""

    type: Literal["profile_updated"] = "profile_updated"
    traits: Traits


class LeadsMerged(KnownLeadEvent):
    """`merged_lead_id` is the same person as `lead_id`; `lead_id` survives."""

    type: Literal["leads_merged"] = "leads_merged"
    merged_lead_id: Identifier

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.merged_lead_id == self.lead_id:
            raise ValueError("merged_lead_id must differ from lead_id")
        return self


class LeadErased(KnownLeadEvent):
    """Forget the lead (right to be forgotten): delete its state, history and scores."""

    type: Literal["lead_erased"] = "lead_erased"
    reason: ShortText | None = None


# -------------------------------------------------------------------------- CRM feedback


class CrmBase(KnownLeadEvent):
    """What sales did with a lead, reported by the CRM."""

    owner_id: Identifier | None = None
    """The sales rep who owns the lead in the CRM."""
    account_id: Identifier | None = None
    """The CRM account the lead belongs to; names the lead's account ahead of its email
    domain."""


class SalesAccepted(CrmBase):
    """Sales accepted the lead."""

    type: Literal["sales_accepted"] = "sales_accepted"


class SalesRejected(CrmBase):
    """Sales rejected the lead, and why."""

    type: Literal["sales_rejected"] = "sales_rejected"
    reason: ShortText


class OpportunityCreated(CrmBase):
    """An opportunity (a deal) was opened for the lead."""

    type: Literal["opportunity_created"] = "opportunity_created"
    opportunity_id: Identifier
    amount: Money | None = None
    currency: CurrencyCode | None = None


class ClosedWon(CrmBase):
    """The lead's deal was won: the lead is a customer."""

    type: Literal["closed_won"] = "closed_won"
    opportunity_id: Identifier | None = None
    amount: Money | None = None
    currency: CurrencyCode | None = None


class ClosedLost(CrmBase):
    """The lead's deal was lost."""

    type: Literal["closed_lost"] = "closed_lost"
    opportunity_id: Identifier | None = None
    reason: ShortText | None = None


class Disqualified(CrmBase):
    """The lead was disqualified (not a buyer: student, competitor, spam, ...)."""

    type: Literal["disqualified"] = "disqualified"
    reason: ShortText | None = None


class StageSet(CrmBase):
    """A person set the stage by hand; it wins over the computed stage."""

    type: Literal["stage_set"] = "stage_set"
    stage: Stage
    model: Identifier | None = None
    """The scoring model it applies to; `None` for every model."""
    reason: ShortText | None = None


# -------------------------------------------------------------------------------- unions

ClickstreamEvent = Annotated[
    PageViewed
    | Clicked
    | CtaClicked
    | AdClicked
    | FileDownloaded
    | VideoViewed
    | WebinarAttended
    | FormSubmitted
    | Searched
    | TrialRequested
    | DemoRequested,
    Field(discriminator="type"),
]
EmailEvent = Annotated[
    EmailSent
    | EmailDelivered
    | EmailOpened
    | EmailClicked
    | EmailBounced
    | EmailUnsubscribed
    | EmailSpamReported
    | EmailSubscribed,
    Field(discriminator="type"),
]
SocialEvent = Annotated[
    SocialLiked
    | SocialShared
    | SocialCommented
    | SocialFollowed
    | SocialMentioned
    | SocialMessaged
    | SocialFormSubmitted,
    Field(discriminator="type"),
]
ProfileEvent = Annotated[
    Identify | ProfileUpdated | LeadsMerged | LeadErased,
    Field(discriminator="type"),
]
CrmFeedbackEvent = Annotated[
    SalesAccepted
    | SalesRejected
    | OpportunityCreated
    | ClosedWon
    | ClosedLost
    | Disqualified
    | StageSet,
    Field(discriminator="type"),
]
InboundEvent = Annotated[
    PageViewed
    | Clicked
    | CtaClicked
    | AdClicked
    | FileDownloaded
    | VideoViewed
    | WebinarAttended
    | FormSubmitted
    | Searched
    | TrialRequested
    | DemoRequested
    | EmailSent
    | EmailDelivered
    | EmailOpened
    | EmailClicked
    | EmailBounced
    | EmailUnsubscribed
    | EmailSpamReported
    | EmailSubscribed
    | SocialLiked
    | SocialShared
    | SocialCommented
    | SocialFollowed
    | SocialMentioned
    | SocialMessaged
    | SocialFormSubmitted
    | Identify
    | ProfileUpdated
    | LeadsMerged
    | LeadErased
    | SalesAccepted
    | SalesRejected
    | OpportunityCreated
    | ClosedWon
    | ClosedLost
    | Disqualified
    | StageSet,
    Field(discriminator="type"),
]
"""Any inbound event, whatever its topic."""


def _by_type(*classes: type[EventBase]) -> dict[str, type[EventBase]]:
    return {cls.model_fields["type"].default: cls for cls in classes}


CLICKSTREAM_TYPES = _by_type(
    PageViewed,
    Clicked,
    CtaClicked,
    AdClicked,
    FileDownloaded,
    VideoViewed,
    WebinarAttended,
    FormSubmitted,
    Searched,
    TrialRequested,
    DemoRequested,
)
EMAIL_TYPES = _by_type(
    EmailSent,
    EmailDelivered,
    EmailOpened,
    EmailClicked,
    EmailBounced,
    EmailUnsubscribed,
    EmailSpamReported,
    EmailSubscribed,
)
SOCIAL_TYPES = _by_type(
    SocialLiked,
    SocialShared,
    SocialCommented,
    SocialFollowed,
    SocialMentioned,
    SocialMessaged,
    SocialFormSubmitted,
)
PROFILE_TYPES = _by_type(Identify, ProfileUpdated, LeadsMerged, LeadErased)
CRM_FEEDBACK_TYPES = _by_type(
    SalesAccepted, SalesRejected, OpportunityCreated, ClosedWon, ClosedLost, Disqualified, StageSet
)
EVENT_TYPES: dict[str, type[EventBase]] = {
    **CLICKSTREAM_TYPES,
    **EMAIL_TYPES,
    **SOCIAL_TYPES,
    **PROFILE_TYPES,
    **CRM_FEEDBACK_TYPES,
}
"""Every inbound event class by its `type` value."""
