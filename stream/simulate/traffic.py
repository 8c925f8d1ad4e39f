"""Realistic lead traffic from personas, with ground truth (what `leadstream simulate` sends).

`generate(SimConfig(...))` is a pure function of its configuration: it reads no clock, no
environment and imports no Kafka client (the sinks in `stream.simulate.sinks` do the I/O). The
same configuration gives byte-identical output; every id, time and choice comes from one
`random.Random(seed)`.

What it makes, for `leads` people over `days` of simulated time from `start`:

- Personas (`PERSONAS`): an ideal-fit buyer, a researcher who never buys, a student, a
  competitor, a churned customer, an email-scanner bot (a mailbox nobody reads behind a link
  scanner: machine opens and link clicks in bursts of seconds), a web-scraper bot (page-view
  bursts) and an anonymous visitor who later fills a
  form (web events with only `anonymous_id`, then an `identify` linking it to a `lead_id`, which
  is the last delivery of that person's events).
- Fit: known leads start with an `identify` and a `profile_updated` (industry, company size, job
  title, seniority, email domain, country, age); the anonymous visitor's `identify` carries them.
- Behaviour over time: web sessions (pages, pricing, downloads, videos, searches, ad clicks,
  CTAs, forms), webinars, a weekly email campaign (sent, delivered or bounced, opens, clicks on
  the campaign's links, unsubscribes), social actions, hand-raises (demo, trial, contact-sales)
  and CRM feedback (sales accepted, opportunity created, closed won or lost).
- Machines in front of people's mail, chosen by the recipient's mail setup and never by intent
  (converters and the rest alike), after every person's behaviour is drawn and from a random
  stream of their own, so the same seed gives the same people doing the same things whatever the
  machine rates:
  - mail privacy proxies (Apple Mail Privacy Protection): every message delivered to a proxied
    recipient is opened by the proxy shortly after delivery, whatever the person does. Enough
    recipients are proxied for `machine_open_rate` of the opens of people's mail to be the
    proxy's (`_proxy_delay_ms` says when);
  - link-scanning mail gateways in front of `scanner_rate` of the recipients: every delivered
    message gets an open and a click on every link of the campaign within seconds, from a
    scanner's user agent or a browser-like one, from a published gateway range or not
    (`GATEWAYS`).
  The sending platform flags only some of it (`proxy_flag_rate`, `scanner_flag_rate`). An
  event's `machine` field is set only where ingest would set it: `schemas.adapters.machine
  .classify` on its vendor flag, user agent and client address; the rest is for scoring to
  judge from timing.
- Buying groups: people at companies (ideal buyers, churned customers, researchers, visitors
  who identify) are grouped into accounts of one to five, drawn from a random stream of their
  own after everyone's behaviour (so the same seed gives the same people doing the same things),
  and share the account's email domain; their titles make the buying group (a VP decides, an
  engineer evaluates). An account bought when one of its members converted
  (`Simulation.accounts`).
- Ground truth per lead: converted or not, drawn with a persona's probability; converters ramp up
  towards a decision (pricing pages, a hand-raise, sales follow-up), so a good model can rank
  them above the rest; whether its mail goes through a privacy proxy and which gateway, if any,
  scans it. Per event (`Simulation.made_by`): a person, a privacy proxy, a link scanner or the
  web scraper.
- Delivery imperfections: late (out-of-order) deliveries, duplicate deliveries (same bytes) and
  malformed messages (truncated JSON, wrong types, unknown types, not an object, random bytes),
  each at a configurable share.
"""

from __future__ import annotations

import gc
import ipaddress
import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, NamedTuple

from schemas.adapters import machine
from schemas.codec import decode, dumps, encode, event_key, loads
from schemas.errors import DecodeError
from schemas.events import (
    AdClicked,
    AssetKind,
    Clicked,
    ClosedLost,
    ClosedWon,
    DemoRequested,
    EmailBounced,
    EmailClicked,
    EmailDelivered,
    EmailOpened,
    EmailSent,
    EmailSubscribed,
    EmailUnsubscribed,
    EventBase,
    FileDownloaded,
    FormSubmitted,
    Identify,
    OpportunityCreated,
    PageViewed,
    ProfileUpdated,
    SalesAccepted,
    SalesRejected,
    Searched,
    Seniority,
    SocialCommented,
    SocialFollowed,
    SocialLiked,
    SocialShared,
    Traits,
    TrialRequested,
    VideoViewed,
    WebinarAttended,
)
from schemas.topics import topic_for

__all__ = [
    "DEFAULT_START",
    "GATEWAYS",
    "LINK_SCANNER",
    "MALFORMED_KINDS",
    "PERSONAS",
    "PRIVACY_PROXY",
    "WEB_SCRAPER",
    "AccountTruth",
    "Delivery",
    "DeliveryNote",
    "Gateway",
    "LeadTruth",
    "Persona",
    "SimConfig",
    "Simulation",
    "generate",
    "marked_at_ingest",
]

DEFAULT_START: Final = datetime(2025, 6, 2, tzinfo=UTC)
"""Where simulated time starts unless a start is given (a fixed moment: output is reproducible)."""

DAY_MS: Final = 86_400_000
MALFORMED_KINDS: Final = ("truncated", "wrong_type", "unknown_type", "not_object", "random_bytes")
SITE: Final = "https://acme.example"

PRIVACY_PROXY: Final = "privacy proxy"
"""`Simulation.made_by` of an open a mail privacy proxy made (Apple Mail Privacy Protection)."""
LINK_SCANNER: Final = "link scanner"
"""`Simulation.made_by` of an open or click a mail gateway's link scanner made."""
WEB_SCRAPER: Final = "web scraper"
"""`Simulation.made_by` of the web-scraper bot's page views."""


# ------------------------------------------------------------------------------ public types


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Rates are shares in [0, 1)."""

    seed: int = 42
    leads: int = 500
    days: float = 30.0
    duplicate_rate: float = 0.02
    """Share of valid events delivered a second time (same bytes)."""
    out_of_order_rate: float = 0.05
    """Share of valid events delivered after later events of the same person."""
    malformed_rate: float = 0.01
    """Share of all deliveries whose bytes do not decode."""
    start: datetime = DEFAULT_START
    """Simulated time starts here (timezone-aware)."""
    machine_open_rate: float = 0.43
    """Share of the opens of people's mail that a mail privacy proxy made: proxy opens / (proxy
    opens + a person's opens), link scanners' opens aside. 0.43 is what the simulator made
    before the rate was an option (30% of recipients proxied)."""
    scanner_rate: float = 0.0
    """Share of the recipients (leads the campaign is delivered to, the email-scanner-bot persona
    aside) behind a link-scanning mail gateway."""
    proxy_flag_rate: float = 0.6
    """Share of privacy-proxy opens the sending platform flags as machine opens."""
    scanner_flag_rate: float = 0.4
    """Share of scanned messages whose open and clicks the sending platform flags."""

    def __post_init__(self) -> None:
        if self.leads < 1:
            raise ValueError("leads must be at least 1")
        if not 0 < self.days <= 3650:
            raise ValueError("days must be more than 0 and at most 3650")
        for name in ("duplicate_rate", "out_of_order_rate", "malformed_rate", "machine_open_rate"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), not {value}")
        for name in ("scanner_rate", "proxy_flag_rate", "scanner_flag_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], not {value}")
        if self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")

    @property
    def end(self) -> datetime:
        """The end of simulated time (scores are read here)."""
        return self.start + timedelta(days=self.days)

    @property
    def has_machines(self) -> bool:
        """Whether machines stand in front of people's mail (a rate above 0)."""
        return self.machine_open_rate > 0 or self.scanner_rate > 0

    def without_machines(self) -> SimConfig:
        """The same people doing the same things, with no privacy proxy or link scanner."""
        return replace(self, machine_open_rate=0.0, scanner_rate=0.0)


class Delivery(NamedTuple):
    """One Kafka record: the contract's topic name (no environment prefix), key and value."""

    topic: str
    key: bytes | None
    value: bytes


class DeliveryNote(NamedTuple):
    """How a delivery came about (parallel to `Simulation.deliveries`)."""

    at: float
    """Simulated seconds since `start` at which it is delivered (pacing uses it)."""
    kind: str
    """`event`, `late` (out of order), `duplicate`, or `malformed:<how>`."""
    event: int | None
    """Index into `Simulation.events` of the event delivered (or corrupted)."""


class LeadTruth(NamedTuple):
    """What the simulator knows about a lead and a scoring model has to guess."""

    persona: str
    converted: bool
    privacy_proxy: bool = False
    """Its mail goes through a privacy proxy, which opens every message delivered."""
    link_scanner: str | None = None
    """The gateway (`Gateway.name`) whose scanner opens every message and follows every link."""


class AccountTruth(NamedTuple):
    """What the simulator knows about an account (a company buying as a group)."""

    members: tuple[str, ...]
    """Lead ids of the people at the company."""
    bought: bool
    """One of its members converted."""


@dataclass
class Simulation:
    """The output of `generate`."""

    config: SimConfig
    events: list[EventBase]
    """The valid events, in occurrence order."""
    deliveries: list[Delivery]
    """Every record, in delivery order (late, duplicate and malformed ones included)."""
    notes: list[DeliveryNote]
    truth: dict[str, LeadTruth]
    """Ground truth by lead id."""
    aliases: dict[str, str] = field(default_factory=dict)
    """The anonymous id of each anonymous-then-identified visitor, and the lead id it becomes."""
    made_by: list[str | None] = field(default_factory=list)
    """Parallel to `events`: which machine made each (`PRIVACY_PROXY`, `LINK_SCANNER`,
    `WEB_SCRAPER`), or None for a person (an empty list: people made every event)."""
    accounts: dict[str, AccountTruth] = field(default_factory=dict)
    """Ground truth by account (its email domain)."""

    def maker(self, index: int) -> str | None:
        """Which machine made `events[index]`, or None for a person."""
        return self.made_by[index] if self.made_by else None

    def person_of(self, event: EventBase) -> str:
        """The lead an event counts toward (anonymous ids resolved through `aliases`)."""
        if event.lead_id is not None:
            return event.lead_id
        anonymous = event.anonymous_id or ""
        return self.aliases.get(anonymous, anonymous)

    def events_by_lead(self) -> dict[str, list[EventBase]]:
        """Each lead's valid events in occurrence order (anonymous ones included)."""
        out: dict[str, list[EventBase]] = {lead: [] for lead in self.truth}
        for event in self.events:
            out.setdefault(self.person_of(event), []).append(event)
        return out

    def counts(self) -> dict[str, int]:
        """Deliveries by kind (`malformed` summed over its variants) and in total."""
        counts: dict[str, int] = {"deliveries": len(self.deliveries), "events": len(self.events)}
        for note in self.notes:
            kind = note.kind.partition(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


# -------------------------------------------------------------------------------- personas


@dataclass(frozen=True)
class Persona:
    """How one kind of person looks and behaves."""

    name: str
    share: float
    """Share of the simulated leads."""
    p_convert: float
    sessions_per_week: float
    pages: Mapping[str, float]
    """Weights of the page kinds a session visits."""
    pages_per_session: tuple[int, int]
    p_download: float
    p_video: float
    p_search: float
    p_ad: float
    webinars_per_month: float
    email_open: float
    email_click: float
    p_unsubscribe: float
    p_bounce: float
    social_per_week: float
    p_newsletter: float
    description: str


_PAGES_BUYER = {"home": 2, "features": 3, "integrations": 2, "pricing": 2, "blog": 2, "case": 2}
_PAGES_RESEARCH = {"home": 1, "blog": 6, "docs": 4, "features": 1, "case": 1, "pricing": 0.2}

PERSONAS: Final[dict[str, Persona]] = {
    p.name: p
    for p in (
        Persona(
            "ideal_buyer", 0.20, 0.55, 1.6, _PAGES_BUYER, (2, 6), 0.2, 0.15, 0.1, 0.15, 0.6,
            0.45, 0.12, 0.01, 0.005, 0.8, 0.3,
            "Decision maker at a company in a target industry.",
        ),
        Persona(
            "researcher", 0.14, 0.0, 2.5, _PAGES_RESEARCH, (2, 7), 0.35, 0.25, 0.25, 0.05, 1.0,
            0.5, 0.1, 0.02, 0.005, 0.5, 0.6,
            "Analyst or consultant who reads everything and never buys.",
        ),
        Persona(
            "student", 0.12, 0.02, 1.2, {"blog": 4, "docs": 3, "careers": 2, "home": 1},
            (1, 5), 0.3, 0.3, 0.2, 0.05, 0.3, 0.3, 0.05, 0.05, 0.03, 0.3, 0.3,
            "University student writing a thesis; gmail or university address.",
        ),
        Persona(
            "competitor", 0.05, 0.0, 1.8, {"pricing": 4, "features": 3, "integrations": 2},
            (2, 6), 0.25, 0.2, 0.05, 0.0, 0.5, 0.6, 0.1, 0.0, 0.0, 0.1, 0.2,
            "Works for a competitor and watches the pricing page.",
        ),
        Persona(
            "churned_customer", 0.10, 0.15, 0.4, {"docs": 3, "home": 2, "pricing": 1, "blog": 1},
            (1, 4), 0.05, 0.05, 0.1, 0.02, 0.1, 0.15, 0.03, 0.12, 0.08, 0.1, 0.0,
            "A former customer; mostly ignores mail, some come back.",
        ),
        Persona(
            "email_scanner_bot", 0.07, 0.0, 0.0, {"home": 1}, (1, 1), 0, 0, 0, 0, 0,
            1.0, 1.0, 0.0, 0.01, 0.0, 0.0,
            "A mail security gateway that opens every email and follows every link in seconds.",
        ),
        Persona(
            "web_scraper_bot", 0.07, 0.0, 0.0, {"home": 1}, (1, 1), 0, 0, 0, 0, 0,
            0.0, 0.0, 0.0, 0.05, 0.0, 0.0,
            "A crawler behind a sign-up, fetching pages in bursts.",
        ),
        Persona(
            "anonymous_visitor", 0.25, 0.30, 1.5, _PAGES_BUYER, (1, 6), 0.15, 0.15, 0.1, 0.2,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            "Browses without an identity, then fills a form: identify is its last event.",
        ),
    )
}  # fmt: skip
"""Every persona, by name."""

# ------------------------------------------------------------------------------ vocabularies

_FIRST = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Marie",
    "Nikola",
    "Ravi",
    "Sofia",
    "Yuki",
    "Omar",
    "Ingrid",
    "Lucas",
    "Chloe",
    "Mateo",
    "Priya",
    "Hannah",
    "Jonas",
    "Aisha",
    "Kenji",
    "Elena",
    "Tomas",
    "Fatima",
    "Oliver",
    "Zara",
    "Diego",
    "Mei",
    "Noah",
    "Leila",
    "Anton",
    "Clara",
)
_LAST = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Curie",
    "Tesla",
    "Patel",
    "Rossi",
    "Tanaka",
    "Haddad",
    "Larsen",
    "Moreau",
    "Silva",
    "Nakamura",
    "Weber",
    "Novak",
    "Okafor",
    "Kowalski",
    "Fischer",
    "Lindqvist",
    "Garcia",
    "Chen",
    "Dubois",
    "Murphy",
    "Jensen",
    "Ahmed",
    "Costa",
    "Kim",
    "Schmidt",
    "Brennan",
)
_COMPANY_A = (
    "North",
    "Blue",
    "Bright",
    "Iron",
    "Clear",
    "Swift",
    "Silver",
    "Red",
    "Green",
    "Quantum",
    "Summit",
    "Harbor",
)
_COMPANY_B = (
    "wind",
    "peak",
    "stone",
    "field",
    "bridge",
    "line",
    "works",
    "labs",
    "systems",
    "data",
    "cloud",
    "metrics",
)
_TARGET_INDUSTRIES = ("software", "saas", "fintech", "financial services", "ecommerce")
_OTHER_INDUSTRIES = ("manufacturing", "healthcare", "retail", "logistics", "government")
_COUNTRIES = ("US", "US", "US", "GB", "DE", "FR", "NL", "SE", "CA", "AU", "IN", "BR", "ES", "PL")
_BUYER_TITLES = (
    ("VP Marketing", Seniority.VP),
    ("Head of Growth", Seniority.DIRECTOR),
    ("Director of Demand Generation", Seniority.DIRECTOR),
    ("CMO", Seniority.EXECUTIVE),
    ("Chief Revenue Officer", Seniority.EXECUTIVE),
    ("Head of Sales Operations", Seniority.DIRECTOR),
    ("Founder", Seniority.OWNER),
)
_STAFF_TITLES = (
    ("Marketing Analyst", Seniority.MID),
    ("Research Analyst", Seniority.MID),
    ("Consultant", Seniority.SENIOR),
    ("Data Analyst", Seniority.MID),
    ("Marketing Specialist", Seniority.ENTRY),
)
_UNIVERSITIES = ("mit.edu", "stanford.edu", "ox.ac.uk", "tum.de", "ethz.ch", "uva.nl")
_FREE_MAIL = ("gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
_DISPOSABLE = ("mailinator.com", "yopmail.com", "guerrillamail.com")
_COMPETITOR_DOMAIN = "competitor.example"
_HUMAN_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile",
)
_SCRAPER_AGENTS = (
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/125.0 Safari/537.36",
    "Scrapy/2.11 (+https://scrapy.org)",
)
_SCANNER_AGENT = "Mozilla/5.0 (compatible; MailGuard-LinkScanner/4.2)"
_PROXY_AGENT = "Mozilla/5.0"
"""A privacy proxy's image loads carry a bare `Mozilla/5.0`: nothing a user-agent list can
catch."""
_BROWSER_LIKE_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/125.0 Safari/537.36 "
    "Edg/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
)
_UNLISTED_BLOCKS = ("203.0.113.0/24", "198.51.100.0/24")
"""Documentation ranges (RFC 5737) standing for cloud addresses that no published list names."""


@dataclass(frozen=True)
class Gateway:
    """How a link-scanning mail gateway looks in the events it makes."""

    name: str
    share: float
    """Share of the scanned recipients behind this gateway."""
    agents: tuple[str, ...]
    """User agents its requests carry (one per scanned message)."""
    blocks: tuple[str, ...]
    """CIDR blocks its requests come from."""
    description: str


GATEWAYS: Final[tuple[Gateway, ...]] = (
    Gateway(
        "microsoft",
        0.35,
        _BROWSER_LIKE_AGENTS,
        machine.SCANNER_RANGES["Microsoft Exchange Online Protection"],
        "Browser-like requests from Microsoft's published Exchange Online ranges: caught by "
        "address.",
    ),
    Gateway(
        "barracuda",
        0.15,
        _BROWSER_LIKE_AGENTS,
        machine.SCANNER_RANGES["Barracuda Email Security Service"],
        "Browser-like requests from Barracuda's published ranges: caught by address.",
    ),
    Gateway(
        "self-announcing",
        0.2,
        (
            _SCANNER_AGENT,
            "python-requests/2.32.3",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/125.0 Safari/537.36",
        ),
        _UNLISTED_BLOCKS,
        "A scanner, HTTP library or headless browser user agent from unlisted addresses: caught "
        "by user agent.",
    ),
    Gateway(
        "sandbox",
        0.3,
        _BROWSER_LIKE_AGENTS,
        _UNLISTED_BLOCKS,
        "A sandbox posing as a browser from unlisted cloud addresses: only its timing (or a "
        "vendor flag) gives it away.",
    ),
)
"""The link-scanning gateways in front of scanned recipients, each recipient behind one."""

_SCANNER_BOT = Gateway(
    "mailguard", 0.0, (_SCANNER_AGENT,), _UNLISTED_BLOCKS, "The email-scanner-bot persona's."
)
_SLUGS = (
    "lead-scoring-101",
    "time-decay-explained",
    "mql-vs-sql",
    "predictive-scoring",
    "intent-signals",
    "kafka-for-marketers",
    "crm-handoff",
    "scoring-models",
    "email-engagement",
    "bot-filtering",
)
_LINK_PATHS = (
    *(f"/blog/{slug}" for slug in _SLUGS),
    "/",
    "/pricing",
    "/features",
    "/features/decay",
    "/features/stages",
    "/integrations",
    "/integrations/salesforce",
    "/integrations/hubspot",
    "/docs",
    "/docs/api",
    "/customers/north",
    "/customers/harbor",
    "/webinars/scoring-live",
    "/resources/lead-scoring-guide",
    "/events/summit",
)
"""Pages a newsletter links to (each campaign links 8 to 22 of them)."""
_PAGE_PATHS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "home": lambda r: ("/", "Acme | Real-time lead scoring"),
    "features": lambda r: (
        r.choice(("/features", "/features/decay", "/features/stages")),
        "Features",
    ),
    "integrations": lambda r: (
        r.choice(("/integrations", "/integrations/salesforce", "/integrations/hubspot")),
        "Integrations",
    ),
    "pricing": lambda r: (r.choice(("/pricing", "/pricing", "/pricing/enterprise")), "Pricing"),
    "blog": lambda r: (f"/blog/{r.choice(_SLUGS)}", "Blog"),
    "docs": lambda r: (r.choice(("/docs", "/docs/api", "/docs/models", "/docs/setup")), "Docs"),
    "case": lambda r: (f"/customers/{r.choice(_COMPANY_A).lower()}", "Customer story"),
    "careers": lambda r: (r.choice(("/careers", "/careers/engineering", "/jobs")), "Careers"),
}
_ASSETS = (
    ("lead-scoring-guide", AssetKind.GUIDE),
    ("state-of-b2b-marketing", AssetKind.REPORT),
    ("scoring-whitepaper", AssetKind.WHITEPAPER),
    ("decay-ebook", AssetKind.EBOOK),
    ("acme-datasheet", AssetKind.DATASHEET),
    ("scoring-template", AssetKind.TEMPLATE),
)
_SEARCHES = ("salesforce integration", "pricing", "api limits", "gdpr", "decay", "sso", "thesis")


# ------------------------------------------------------------------------------- generation


@dataclass
class _Lead:
    lead_id: str
    persona: Persona
    converted: bool
    anonymous_id: str | None = None
    privacy_proxy: bool = False
    gateway: str | None = None
    account: tuple[str, str] | None = None
    """The company (name, email domain) of its buying group, if it is in one."""


_GROUPED = frozenset({"ideal_buyer", "churned_customer", "researcher", "anonymous_visitor"})
"""Personas who work at a company that buys as a group."""
_GROUP_SIZES = (1, 2, 3, 4, 5)
_GROUP_WEIGHTS = (3, 3, 2, 1, 1)


class _Plan:
    """The valid events in occurrence order, and when each record is delivered."""

    def __init__(
        self, start: datetime, events: list[EventBase], owners: list[str], anonymous: set[str]
    ) -> None:
        self.events = events
        self.owners = owners
        base = start.timestamp()
        self.times = [event.occurred_at.timestamp() - base for event in events]
        self.values = [encode(event) for event in events]
        self.keys = [event_key(event) for event in events]
        self.topics = [topic_for(event) for event in events]
        self.at = list(self.times)
        self.rows: list[tuple[float, int, int, str]] = [
            (t, i, 0, "event") for i, t in enumerate(self.times)
        ]
        self.by_owner: dict[str, list[int]] = {}
        for i, owner in enumerate(owners):
            self.by_owner.setdefault(owner, []).append(i)
        self.position = {i: k for indices in self.by_owner.values() for k, i in enumerate(indices)}
        self.limit: dict[str, float] = {
            owners[i]: self.times[i]
            for i, event in enumerate(events)
            if event.type == "identify" and owners[i] in anonymous
        }
        """When each anonymous-then-identified visitor is identified: nothing of theirs after."""

        self.latest: dict[str, float] = {}
        """Each person's latest event time (before their limit)."""
        for owner, indices in self.by_owner.items():
            limit = self.limit.get(owner, math.inf)
            self.latest[owner] = max(
                (self.times[j] for j in indices if self.times[j] < limit), default=-math.inf
            )

    def later(self, i: int, most: int) -> list[int]:
        """Up to `most` of the same person's events that occurred after event `i` (and before
        their limit)."""
        owner = self.owners[i]
        limit = self.limit.get(owner, math.inf)
        t = self.times[i]
        out: list[int] = []
        for j in self.by_owner[owner][self.position[i] + 1 :]:
            if self.times[j] >= limit or len(out) == most:
                break
            if self.times[j] > t:
                out.append(j)
        return out


class _Builder:
    """Builds one simulation; one instance per `generate` call."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.mrng = random.Random(f"{config.seed}/machines")
        """Draws what machines do: the people's traffic does not depend on the machine rates."""
        self.ids = self.rng
        """Draws event ids: `rng`, then `mrng` once the machines are drawn."""
        self.start = config.start.astimezone(UTC)
        self.end_ms = int(config.days * DAY_MS)
        self.timeline: list[tuple[int, int, EventBase]] = []
        self.owner: list[str] = []  # parallel to timeline: whose event
        self.maker: list[str | None] = []  # parallel to timeline: which machine made it
        self.seq = 0
        self.inbox: dict[str, list[tuple[int, dict[str, Any], int]]] = {}
        """Each recipient's delivered messages: (delivered at, mail fields, campaign week)."""
        self.person_opens = 0
        self.campaign_links: dict[int, tuple[str, ...]] = {}
        self.members: dict[str, list[str]] = {}
        """Each buying group's email domain, and the leads with an address there."""

    # -------------------------------------------------------------------- small helpers

    def hex(self, bits: int = 48) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def add(
        self,
        lead: _Lead,
        t_ms: int,
        cls: type[EventBase],
        *,
        made_by: str | None = None,
        **fields: Any,
    ) -> bool:
        """Record an event at `t_ms` (dropped, returning False, outside simulated time).

        `made_by` names the machine that made it (None: a person).
        """
        if not 0 <= t_ms < self.end_ms:
            return False
        event = cls(
            event_id=self.event_id(),
            occurred_at=self.start + timedelta(milliseconds=t_ms),
            **fields,
        )
        self.timeline.append((t_ms, self.seq, event))
        self.owner.append(lead.lead_id)
        self.maker.append(made_by)
        self.seq += 1
        if made_by is None and cls is EmailOpened:
            self.person_opens += 1
        return True

    def links(self, week: int) -> tuple[str, ...]:
        """The tracked links of a week's campaign (the same for every recipient)."""
        links = self.campaign_links.get(week)
        if links is None:
            r = random.Random(f"{self.config.seed}/campaign/{week}")
            query = f"?utm_source=newsletter&utm_medium=email&utm_campaign=newsletter-w{week}"
            paths = r.sample(_LINK_PATHS, r.randint(8, 22))
            links = self.campaign_links[week] = tuple(SITE + path + query for path in paths)
        return links

    def who(self, lead: _Lead, anonymous: bool) -> dict[str, str]:
        if anonymous:
            assert lead.anonymous_id is not None
            return {"anonymous_id": lead.anonymous_id}
        return {"lead_id": lead.lead_id}

    def poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 50:  # normal approximation
            return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def pick(self, weights: Mapping[str, float]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    # ------------------------------------------------------------------------- leads

    def leads(self) -> list[_Lead]:
        n = self.config.leads
        personas = list(PERSONAS.values())
        counts = [int(p.share * n) for p in personas]
        # Largest remainders, and at least one of each persona when there is room.
        order = sorted(range(len(personas)), key=lambda i: -(personas[i].share * n - counts[i]))
        for i in order[: n - sum(counts)]:
            counts[i] += 1
        if n >= len(personas):
            for i, count in enumerate(counts):
                if count == 0:
                    donor = max(range(len(counts)), key=lambda j: counts[j])
                    counts[donor] -= 1
                    counts[i] = 1
        names = [p.name for p, c in zip(personas, counts, strict=True) for _ in range(c)]
        self.rng.shuffle(names)
        out = []
        for name in names:
            persona = PERSONAS[name]
            lead = _Lead(f"lead-{self.hex()}", persona, self.rng.random() < persona.p_convert)
            if name == "anonymous_visitor":
                lead.anonymous_id = f"anon-{self.hex(64)}"
            out.append(lead)
        return out

    def traits(self, lead: _Lead) -> Traits:
        r = self.rng
        name = lead.persona.name
        first, last = r.choice(_FIRST), r.choice(_LAST)
        company = f"{r.choice(_COMPANY_A)}{r.choice(_COMPANY_B)}"
        domain = f"{company.lower()}.com"
        industry: str | None = r.choice(_TARGET_INDUSTRIES + _OTHER_INDUSTRIES)
        size: int | None = int(10 ** r.uniform(1, 4))
        title, seniority = r.choice(_BUYER_TITLES + _STAFF_TITLES)
        age: int | None = r.randint(25, 60)
        if name == "ideal_buyer" or (name == "anonymous_visitor" and lead.converted):
            industry = r.choice(_TARGET_INDUSTRIES)
            size = int(10 ** r.uniform(1.8, 4))
            title, seniority = r.choice(_BUYER_TITLES)
            age = r.randint(32, 58)
        elif name == "researcher":
            title, seniority = r.choice(_STAFF_TITLES)
            industry = r.choice(("consulting", "research", "education", *_OTHER_INDUSTRIES))
            if r.random() < 0.4:
                domain = r.choice(_FREE_MAIL)
        elif name == "student":
            title, seniority = r.choice((("Student", Seniority.ENTRY), ("Intern", Seniority.ENTRY)))
            domain = r.choice(_UNIVERSITIES + _FREE_MAIL)
            company, industry, size, age = "", "education", None, r.randint(19, 26)
        elif name == "competitor":
            domain, company, industry = _COMPETITOR_DOMAIN, "Competitor Inc", "software"
        elif name == "churned_customer":
            industry = r.choice(_TARGET_INDUSTRIES + _OTHER_INDUSTRIES)
        elif name == "web_scraper_bot":
            domain = r.choice(_DISPOSABLE + _FREE_MAIL)
            company, industry, size, age = "", None, None, None
            if r.random() < 0.3:
                first, last = r.choice(("Xkcdqz", "Asdf", "Test")), r.choice(("Qwerty", "Zzzz"))
        if name == "anonymous_visitor" and not lead.converted and r.random() < 0.4:
            domain = r.choice(_FREE_MAIL)
        if lead.account is not None and domain == f"{company.lower()}.com":
            company, domain = lead.account  # a company address: the buying group's company
            self.members.setdefault(domain, []).append(lead.lead_id)
        email = f"{first}.{last}@{domain}".lower()
        return Traits(
            email=email,
            first_name=first,
            last_name=last,
            country=r.choice(_COUNTRIES),
            industry=industry,
            company=company or None,
            company_size=size,
            job_title=title,
            seniority=seniority,
            age=age,
        )

    # ---------------------------------------------------------------------- behaviour

    def session(
        self,
        lead: _Lead,
        t: int,
        *,
        anonymous: bool = False,
        pages: Mapping[str, float] | None = None,
        n_pages: int | None = None,
        agent: str = "",
    ) -> int:
        """A human visit starting at `t`: pages a few seconds to minutes apart; returns the end."""
        r, p = self.rng, lead.persona
        who = self.who(lead, anonymous)
        session_id = f"sess-{self.hex(32)}"
        web: dict[str, Any] = {**who, "source": "web", "session_id": session_id}
        if agent:
            web["user_agent"] = agent
        mix = pages or p.pages
        count = n_pages or r.randint(*p.pages_per_session)
        if r.random() < p.p_ad:
            self.add(
                lead,
                t,
                AdClicked,
                **web,
                url=f"{SITE}/lp/scoring",
                network=r.choice(("google_ads", "linkedin_ads")),
                campaign_id=f"cmp-{r.randint(100, 120)}",
            )
            t += r.randint(2_000, 8_000)
        for _ in range(count):
            path, title = _PAGE_PATHS[self.pick(mix)](r)
            self.add(
                lead,
                t,
                PageViewed,
                **web,
                url=SITE + path,
                path=path,
                title=title,
                duration_seconds=round(r.uniform(5, 240), 1),
            )
            t += r.randint(6_000, 180_000)
            if r.random() < 0.15:
                self.add(lead, t, Clicked, **web, url=SITE + path, target="nav-" + path.strip("/"))
                t += r.randint(3_000, 20_000)
        if r.random() < p.p_search:
            self.add(lead, t, Searched, **web, query=r.choice(_SEARCHES))
            t += r.randint(5_000, 30_000)
        if r.random() < p.p_download:
            asset, kind = r.choice(_ASSETS)
            self.add(
                lead,
                t,
                FileDownloaded,
                **web,
                url=f"{SITE}/resources",
                file_url=f"{SITE}/files/{asset}.pdf",
                file_name=f"{asset}.pdf",
                asset_id=asset,
                asset_kind=kind,
            )
            t += r.randint(10_000, 60_000)
        if r.random() < p.p_video:
            self.add(
                lead,
                t,
                VideoViewed,
                **web,
                video_id=r.choice(("vid-product-tour", "vid-decay", "vid-customer")),
                percent_watched=round(r.uniform(10, 100), 1),
            )
            t += r.randint(30_000, 300_000)
        return t

    def session_times(self, first: int, last: int, per_week: float) -> list[int]:
        span = max(0, last - first)
        n = self.poisson(per_week * span / (7 * DAY_MS))
        return sorted(first + int(self.rng.random() * span) for _ in range(n))

    def hand_raise(self, lead: _Lead, t: int, *, anonymous: bool = False) -> int:
        """Pricing, then a demo or trial request or a contact-sales form."""
        r = self.rng
        t = self.session(lead, t, anonymous=anonymous, pages={"pricing": 3, "features": 1})
        who = self.who(lead, anonymous)
        web = {**who, "source": "web"}
        choice = r.random()
        if choice < 0.45:
            self.add(lead, t, DemoRequested, **web, product="acme")
        elif choice < 0.75:
            self.add(lead, t, TrialRequested, **web, product="acme", plan="pro")
        else:
            self.add(
                lead,
                t,
                FormSubmitted,
                **web,
                url=f"{SITE}/contact-sales",
                form_id="contact-sales",
                form_name="Contact sales",
                fields={"message": "We would like a quote."},
            )
        return t + r.randint(30_000, 600_000)

    def crm(self, lead: _Lead, decision: int, *, won: bool) -> None:
        r = self.rng
        crm = {
            "lead_id": lead.lead_id,
            "source": "crm:salesforce",
            "owner_id": f"rep-{r.randint(1, 9)}",
        }
        t = decision + r.randint(DAY_MS // 4, 3 * DAY_MS)
        if not won and r.random() < 0.5:
            self.add(lead, t, SalesRejected, **crm, reason=r.choice(("no budget", "too early")))
            return
        self.add(lead, t, SalesAccepted, **crm)
        opportunity = f"opp-{self.hex(32)}"
        t += r.randint(DAY_MS // 2, 5 * DAY_MS)
        amount = float(r.choice((6_000, 12_000, 24_000, 48_000)))
        self.add(
            lead,
            t,
            OpportunityCreated,
            **crm,
            opportunity_id=opportunity,
            amount=amount,
            currency="USD",
        )
        t += r.randint(2 * DAY_MS, 10 * DAY_MS)
        if won:
            self.add(
                lead, t, ClosedWon, **crm, opportunity_id=opportunity, amount=amount, currency="USD"
            )
        else:
            self.add(
                lead, t, ClosedLost, **crm, opportunity_id=opportunity, reason="chose a competitor"
            )

    def known_lead(self, lead: _Lead, first: int) -> None:
        """Identify and enrich a known lead, then its behaviour until the end."""
        r, p = self.rng, lead.persona
        traits = self.traits(lead)
        self.add(
            lead,
            first,
            Identify,
            lead_id=lead.lead_id,
            source="web",
            traits=Traits(
                email=traits.email, first_name=traits.first_name, last_name=traits.last_name
            ),
        )
        enriched = traits.model_copy(update={"email": None, "first_name": None, "last_name": None})
        self.add(
            lead,
            first + r.randint(5_000, 600_000),
            ProfileUpdated,
            lead_id=lead.lead_id,
            source="clearbit",
            traits=enriched,
        )
        if p.name == "email_scanner_bot":
            self.emails(lead, first, scanner=True)
            return
        if p.name == "web_scraper_bot":
            self.scrape(lead, first)
            return
        agent = r.choice(_HUMAN_AGENTS)
        decision = None
        # Converters decide late in the period; some non-converters evaluate too, and buy
        # elsewhere (a hand-raise, then sales rejects or loses the deal).
        evaluates = lead.converted or (
            p.name in ("ideal_buyer", "churned_customer") and r.random() < 0.25
        )
        if evaluates:
            decision = first + int(r.uniform(0.5, 0.95) * (self.end_ms - first))
        for t in self.session_times(first, self.end_ms, p.sessions_per_week):
            self.session(lead, t, agent=agent)
        if decision is not None:
            # Intent ramps up over the two weeks before the decision.
            ramp_from = max(first, decision - 14 * DAY_MS)
            ramp = 2.5 if lead.converted else 1.2
            for t in self.session_times(ramp_from, decision, ramp):
                self.session(
                    lead,
                    t,
                    agent=agent,
                    pages={"pricing": 2, "features": 2, "case": 1, "integrations": 1},
                )
            if lead.converted or r.random() < 0.5:
                self.hand_raise(lead, decision)
            if not lead.converted:
                self.crm(lead, decision, won=False)
                decision = None
            elif r.random() < 0.75:
                self.crm(lead, decision, won=True)
        for _ in range(
            self.poisson(
                p.webinars_per_month
                * (self.end_ms - first)
                / (30 * DAY_MS)
                * (1.8 if lead.converted else 1.0)
            )
        ):
            t = first + int(r.random() * (self.end_ms - first))
            self.add(
                lead,
                t,
                WebinarAttended,
                lead_id=lead.lead_id,
                source="zoom",
                webinar_id=f"web-{r.randint(1, 6)}",
                minutes_attended=float(r.randint(5, 60)),
            )
        if r.random() < p.p_newsletter:
            self.add(
                lead,
                first + r.randint(60_000, 3 * DAY_MS),
                EmailSubscribed,
                lead_id=lead.lead_id,
                source="mailchimp",
                list_id="newsletter",
            )
        self.social(lead, first, decision)
        self.emails(lead, first, scanner=False, decision=decision)

    def social(self, lead: _Lead, first: int, decision: int | None) -> None:
        r, p = self.rng, lead.persona
        per_week = p.social_per_week * (1.6 if decision is not None else 1.0)
        network = r.choice(("linkedin", "linkedin", "x"))
        base = {"lead_id": lead.lead_id, "source": network, "network": network}
        followed = False
        for t in self.session_times(first, self.end_ms, per_week):
            choice = r.random()
            post = f"post-{r.randint(1, 40)}"
            if choice < 0.55:
                self.add(lead, t, SocialLiked, **base, post_id=post)
            elif choice < 0.75:
                self.add(lead, t, SocialShared, **base, post_id=post)
            elif choice < 0.9:
                self.add(
                    lead, t, SocialCommented, **base, post_id=post, comment_id=f"c-{self.hex(24)}"
                )
            elif not followed:
                self.add(lead, t, SocialFollowed, **base, account_id="acme")
                followed = True

    def emails(
        self, lead: _Lead, first: int, *, scanner: bool, decision: int | None = None
    ) -> None:
        """The weekly campaign from day 1 on: sent, delivered or bounced, opens, clicks.

        A person's messages are kept in `inbox` for the machines in front of their mail
        (`machines`); the email-scanner bot's are scanned here.
        """
        r, p = self.rng, lead.persona
        week = 0
        while True:
            send = DAY_MS + week * 7 * DAY_MS + 10 * 3_600_000 + r.randint(0, 1_800_000)
            week += 1
            if send >= self.end_ms:
                return
            if send < first:
                continue
            mail = {
                "lead_id": lead.lead_id,
                "source": "sendgrid",
                "message_id": f"msg-{self.hex(40)}",
                "campaign_id": f"newsletter-w{week}",
            }
            self.add(lead, send, EmailSent, **mail)
            t = send + r.randint(500, 30_000)
            if r.random() < p.p_bounce:
                self.add(
                    lead, t, EmailBounced, **mail, bounce="hard", reason="550 5.1.1 user unknown"
                )
                return
            delivered = self.add(lead, t, EmailDelivered, **mail)
            if scanner:
                self.scan(lead, t, mail, week, gateway=_SCANNER_BOT, r=r)
                continue
            if delivered:
                self.inbox.setdefault(lead.lead_id, []).append((t, mail, week))
            boost = 1.5 if decision is not None and abs(send - decision) < 14 * DAY_MS else 1.0
            if r.random() < min(0.95, p.email_open * boost):
                t += r.randint(60_000, 2 * DAY_MS)
                agent = r.choice(_HUMAN_AGENTS)
                opened = _ingest_reason("email_opened", flagged=False, agent=agent)
                self.add(lead, t, EmailOpened, **mail, user_agent=agent, machine=opened)
                if r.random() < min(0.9, p.email_click * boost * 2):
                    t += r.randint(5_000, 120_000)
                    self.add(
                        lead,
                        t,
                        EmailClicked,
                        **mail,
                        url=r.choice(self.links(week)),
                        user_agent=agent,
                        machine=_ingest_reason("email_clicked", flagged=False, agent=agent),
                    )
                if r.random() < p.p_unsubscribe:
                    self.add(
                        lead,
                        t + r.randint(5_000, 60_000),
                        EmailUnsubscribed,
                        **mail,
                        list_id="newsletter",
                    )
                    return

    def scan(
        self,
        lead: _Lead,
        t: int,
        mail: dict[str, Any],
        week: int,
        *,
        gateway: Gateway,
        r: random.Random,
    ) -> None:
        """A link scanner on a message delivered at `t`: an open 0.2 to 5 s later, then a
        click on every link of the campaign, 50 to 600 ms apart; one user agent and address
        for the message, flagged by the sending platform with `scanner_flag_rate`."""
        t += r.randint(200, 5_000)
        flagged = r.random() < self.config.scanner_flag_rate
        agent = r.choice(gateway.agents)
        ip = _address(r, gateway.blocks)
        opened = _ingest_reason("email_opened", flagged=flagged, agent=agent, ip=ip)
        self.add(
            lead,
            t,
            EmailOpened,
            made_by=LINK_SCANNER,
            **mail,
            user_agent=agent,
            machine_open=flagged,
            machine=opened,
        )
        clicked = _ingest_reason("email_clicked", flagged=flagged, agent=agent, ip=ip)
        for url in self.links(week):
            t += r.randint(50, 600)
            self.add(
                lead,
                t,
                EmailClicked,
                made_by=LINK_SCANNER,
                **mail,
                url=url,
                user_agent=agent,
                machine_click=flagged,
                machine=clicked,
            )

    def machines(self, leads: list[_Lead]) -> None:
        """Link scanners and privacy proxies in front of people's mail (drawn from `mrng`).

        Recipients are chosen at random, whatever their intent. Scanners: `scanner_rate` of
        the recipients, each behind one of `GATEWAYS`. Proxies: recipients in random order
        until their proxy opens (one per delivered message) are `machine_open_rate` of the
        proxy opens and the people's opens together.
        """
        r, config = self.mrng, self.config
        self.ids = r
        recipients = [lead for lead in leads if lead.lead_id in self.inbox]
        weights = [gateway.share for gateway in GATEWAYS]
        for lead in r.sample(recipients, round(config.scanner_rate * len(recipients))):
            gateway = r.choices(GATEWAYS, weights=weights)[0]
            lead.gateway = gateway.name
            for t, mail, week in self.inbox[lead.lead_id]:
                self.scan(lead, t, mail, week, gateway=gateway, r=r)
        rate = config.machine_open_rate
        want = rate / (1 - rate) * self.person_opens
        made = 0
        order = list(recipients)
        r.shuffle(order)
        for lead in order:
            messages = self.inbox[lead.lead_id]
            if made >= want or made + len(messages) - want > want - made:
                break
            lead.privacy_proxy = True
            for t, mail, _ in messages:
                made += self.proxy_open(lead, t, mail)

    def proxy_open(self, lead: _Lead, t: int, mail: dict[str, Any]) -> bool:
        """A privacy proxy's open of a message delivered at `t` (`_proxy_delay_ms` later)."""
        r = self.mrng
        flagged = r.random() < self.config.proxy_flag_rate
        return self.add(
            lead,
            t + _proxy_delay_ms(r),
            EmailOpened,
            made_by=PRIVACY_PROXY,
            **mail,
            machine_open=flagged,
            user_agent=_PROXY_AGENT,
            machine=_ingest_reason("email_opened", flagged=flagged, agent=_PROXY_AGENT),
        )

    def scrape(self, lead: _Lead, first: int) -> None:
        """Bursts of page views fractions of a second apart."""
        r = self.rng
        agent = r.choice(_SCRAPER_AGENTS)
        for start in self.session_times(first, self.end_ms, 0.7) or [first + 60_000]:
            web = {"lead_id": lead.lead_id, "source": "web", "session_id": f"sess-{self.hex(32)}"}
            t = start
            for _ in range(r.randint(15, 60)):
                path, title = _PAGE_PATHS[r.choice(list(_PAGE_PATHS))](r)
                self.add(
                    lead,
                    t,
                    PageViewed,
                    made_by=WEB_SCRAPER,
                    **web,
                    user_agent=agent,
                    url=SITE + path,
                    path=path,
                    title=title,
                )
                t += r.randint(50, 700)

    def anonymous_visitor(self, lead: _Lead, first: int) -> None:
        """Anonymous web activity, a form, then `identify` as the very last event."""
        r, p = self.rng, lead.persona
        span = min(self.end_ms - first, 25 * DAY_MS)  # within the processor's holding time
        identify_at = first + int(r.uniform(0.4, 0.97) * span)
        agent = r.choice(_HUMAN_AGENTS)
        times = self.session_times(first, identify_at - 3_600_000, p.sessions_per_week)[:12]
        t_end = first
        for t in times:
            t_end = max(t_end, self.session(lead, t, anonymous=True, agent=agent))
        t = max(t_end, identify_at - 3_600_000)
        if lead.converted:
            for _ in range(r.randint(1, 3)):
                t = self.session(
                    lead,
                    t + r.randint(60_000, 600_000),
                    anonymous=True,
                    agent=agent,
                    pages={"pricing": 2, "features": 1, "case": 1},
                )
            t = self.hand_raise(lead, t + r.randint(60_000, 600_000), anonymous=True)
            if r.random() < 0.5:
                self.add(
                    lead,
                    t,
                    WebinarAttended,
                    anonymous_id=lead.anonymous_id,
                    source="zoom",
                    webinar_id="web-1",
                    minutes_attended=45.0,
                )
                t += r.randint(60_000, 600_000)
        form = (
            ("newsletter-signup", "Newsletter")
            if not lead.converted
            else ("contact-us", "Contact us")
        )
        traits = self.traits(lead)
        self.add(
            lead,
            t,
            FormSubmitted,
            anonymous_id=lead.anonymous_id,
            source="web",
            url=f"{SITE}/{form[0]}",
            form_id=form[0],
            form_name=form[1],
            fields={"email": traits.email or ""},
        )
        t += r.randint(1_000, 30_000)
        if t >= self.end_ms:  # always identify, at the very end if need be
            t = self.end_ms - 1
        self.add(
            lead,
            t,
            Identify,
            lead_id=lead.lead_id,
            anonymous_id=lead.anonymous_id,
            source="web",
            traits=traits,
        )

    # ------------------------------------------------------------------------ delivery

    def buying_groups(self, leads: list[_Lead]) -> None:
        """Group the people at companies into accounts (from a random stream of their own)."""
        r = random.Random(f"{self.config.seed}/accounts")
        grouped = [lead for lead in leads if lead.persona.name in _GROUPED]
        r.shuffle(grouped)
        while grouped:
            size = r.choices(_GROUP_SIZES, _GROUP_WEIGHTS)[0]
            company = f"{r.choice(_COMPANY_A)}{r.choice(_COMPANY_B)}{r.getrandbits(16):04x}"
            for lead in grouped[:size]:
                lead.account = (company, f"{company.lower()}.com")
            grouped = grouped[size:]

    def build(self) -> Simulation:
        leads = self.leads()
        self.buying_groups(leads)
        for lead in leads:
            first = int(self.rng.uniform(0, 0.6) * self.end_ms)
            if lead.persona.name == "anonymous_visitor":
                self.anonymous_visitor(lead, first)
            else:
                self.known_lead(lead, first)
        self.machines(leads)
        order = sorted(range(len(self.timeline)), key=lambda i: self.timeline[i][:2])
        events = [self.timeline[i][2] for i in order]
        made_by = [self.maker[i] for i in order]
        aliases = {lead.anonymous_id: lead.lead_id for lead in leads if lead.anonymous_id}
        plan = _Plan(self.start, events, [self.owner[i] for i in order], set(aliases.values()))
        self.delay(plan)
        self.duplicate(plan)
        malformed = self.malformed(plan)
        rows = sorted(plan.rows, key=lambda row: (row[0], row[2], row[1]))
        deliveries: list[Delivery] = []
        notes: list[DeliveryNote] = []
        for when, i, extra, kind in rows:
            if extra:
                deliveries.append(malformed[extra - 1])
            else:
                deliveries.append(Delivery(plan.topics[i], plan.keys[i], plan.values[i]))
            notes.append(DeliveryNote(when, kind, i))
        truth = {
            lead.lead_id: LeadTruth(
                lead.persona.name, lead.converted, lead.privacy_proxy, lead.gateway
            )
            for lead in leads
        }
        accounts = {
            domain: AccountTruth(tuple(members), any(truth[m].converted for m in members))
            for domain, members in self.members.items()
        }
        return Simulation(self.config, events, deliveries, notes, truth, aliases, made_by, accounts)

    def delay(self, plan: _Plan) -> None:
        """Deliver a share of the events after 1-3 later events of the same person.

        An anonymous-then-identified visitor's events stay before its `identify`.
        """
        r, times = self.rng, plan.times
        want = round(self.config.out_of_order_rate * len(times))
        if not want:
            return
        eligible = [i for i, t in enumerate(times) if t < plan.latest[plan.owners[i]]]
        for i in sorted(r.sample(eligible, min(want, len(eligible)))):
            later = plan.later(i, r.randint(1, 3))
            passed = times[later[-1]]
            limit = plan.limit.get(plan.owners[i], passed + 3_600.0)
            room = min(3_600.0, limit - passed)
            plan.at[i] = passed + r.uniform(0.001, 0.999) * room
            plan.rows[i] = (plan.at[i], i, 0, "late")

    def duplicate(self, plan: _Plan) -> None:
        """Deliver a share of the events a second time, a moment to a couple of hours later."""
        r, at = self.rng, plan.at
        n = len(at)
        for i in sorted(r.sample(range(n), min(n, round(self.config.duplicate_rate * n)))):
            when = at[i] + (r.uniform(0.01, 2.0) if r.random() < 0.5 else r.uniform(60, 7_200))
            limit = plan.limit.get(plan.owners[i])
            if limit is not None and plan.events[i].type != "identify" and when >= limit:
                when = at[i] + (limit - at[i]) / 2
            plan.rows.append((when, i, 0, "duplicate"))

    def malformed(self, plan: _Plan) -> list[Delivery]:
        """Corrupted copies of random events, delivered just before them."""
        r = self.rng
        rate = self.config.malformed_rate
        want = round(rate * len(plan.rows) / (1 - rate)) if plan.events else 0
        out: list[Delivery] = []
        for n in range(want):
            i = r.randrange(len(plan.events))
            how = r.choice(MALFORMED_KINDS)
            out.append(Delivery(plan.topics[i], plan.keys[i], self.corrupt(how, plan.values[i])))
            when = max(0.0, plan.at[i] - r.uniform(0.001, 1.0))
            plan.rows.append((when, i, n + 1, f"malformed:{how}"))
        return out

    def corrupt(self, how: str, value: bytes) -> bytes:
        r = self.rng
        if how == "truncated":
            bad = value[: r.randint(1, len(value) - 1)]
        elif how == "wrong_type":
            doc = dict(_loads_object(value))
            field_name = r.choice(("occurred_at", "event_id", "source", "missing_id", "naive"))
            if field_name == "occurred_at":
                doc["occurred_at"] = r.randint(1_600_000_000, 1_800_000_000)
            elif field_name == "event_id":
                doc["event_id"] = r.randint(1, 10**9)
            elif field_name == "source":
                doc["source"] = ["web"]
            elif field_name == "missing_id":
                del doc["event_id"]
            else:
                doc["occurred_at"] = str(doc["occurred_at"]).rstrip("Z")
            bad = dumps(doc)
        elif how == "unknown_type":
            doc = dict(_loads_object(value))
            doc["type"] = r.choice(("page_vieweed", "lead_teleported", "PageViewed", ""))
            bad = dumps(doc)
        elif how == "not_object":
            bad = b"[" + value + b"]"
        else:
            bad = b"\xff" + r.randbytes(r.randint(4, 120))
        try:
            decode(bad, now=None)
        except DecodeError:
            return bad
        raise AssertionError(f"a {how} corruption decoded: {bad!r}")  # pragma: no cover


_VENDOR_FLAGS: Final = {"email_opened": "sg_machine_open", "email_clicked": "machine_click"}
"""The flag a sending platform sets on an open or click it judges a machine's."""


def _ingest_reason(
    event_type: str, *, flagged: bool, agent: str | None, ip: str | None = None
) -> str | None:
    """The `machine` field ingest gives an open or click: what its vendor flag, user agent and
    client address show (`schemas.adapters.machine.classify`)."""
    flag = _VENDOR_FLAGS[event_type] if flagged else None
    return machine.classify(vendor_flag=flag, user_agent=agent, ip=ip)


@lru_cache(maxsize=32)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr)


def _address(r: random.Random, blocks: tuple[str, ...]) -> str:
    """A random address in one of `blocks`."""
    network = _network(r.choice(blocks))
    return str(network[r.randrange(network.num_addresses)])


def _proxy_delay_ms(r: random.Random) -> int:
    """How long after delivery a privacy proxy loads a message's images.

    The proxy fetches when the recipient's device is online and syncs the mailbox: 30% within
    0.2 to 1.5 s (the device is online as the message lands), 55% log-uniform from 1.5 s to
    10 min (the next sync), 15% log-uniform from 10 min to 8 h (the device was offline or
    asleep).
    """
    u = r.random()
    if u < 0.30:
        return r.randint(200, 1_500)
    low, high = (1_500, 600_000) if u < 0.85 else (600_000, 8 * 3_600_000)
    return int(math.exp(r.uniform(math.log(low), math.log(high))))


def _loads_object(value: bytes) -> dict[str, Any]:
    doc = loads(value)
    assert isinstance(doc, dict)
    return doc


def marked_at_ingest(event: EventBase) -> bool:
    """Whether the event reaches scoring marked as a machine's: its `machine` field, or the
    source's own flag (`machine_open`, `machine_click`)."""
    if event.machine is not None:
        return True
    if isinstance(event, EmailOpened):
        return event.machine_open
    if isinstance(event, EmailClicked):
        return event.machine_click
    return False


def generate(config: SimConfig | None = None) -> Simulation:
    """Simulate traffic for `config` (defaults: `SimConfig()`); same config, same output."""
    # Hundreds of thousands of long-lived objects: cyclic GC passes would only cost time.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _Builder(config or SimConfig()).build()
    finally:
        if paused:
            gc.enable()
