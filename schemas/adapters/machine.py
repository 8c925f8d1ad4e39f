"""Machine opens and scanner clicks, judged from what one request or vendor event shows.

Most email "engagement" is not a person: Apple Mail Privacy Protection loads every image of every
delivered message, and corporate mail security (Microsoft Defender for Office 365 Safe Links,
Proofpoint, Mimecast, Barracuda) follows every link seconds after delivery. `classify` looks at
what a single event carries (a vendor's own flag, the user agent, the client address, the HTTP
method and prefetch headers) and returns the reason it was made by a machine, or None. The
reason goes into the event's `machine` field; scoring skips such events by default.

What a single event cannot show (a click seconds after delivery, every link of a message clicked
at once, an open within a second of delivery) is judged where the lead's recent messages are
known: the scoring core (`stream.scoring.mail`).

Sources of the lists below:

- Security gateways' published sending/scanning ranges:
  Microsoft 365 Exchange Online Protection, "Microsoft 365 URLs and IP address ranges"
  (https://learn.microsoft.com/en-us/microsoft-365/enterprise/urls-and-ip-address-ranges,
  Exchange Online, IDs 1/2/9): 40.92.0.0/15, 40.107.0.0/16, 52.100.0.0/14, 104.47.0.0/17;
  Barracuda Email Security Service, "Barracuda Email Security Service IP Ranges"
  (https://campus.barracuda.com/product/emailsecurityservice/doc/38699969/): 64.235.144.0/20,
  209.222.80.0/21 (United States).
- User agents: tokens that security scanners, HTTP libraries and headless browsers put in the
  `User-Agent` header of the requests they make; a person's mail client or browser never sends
  them. A missing user agent is a machine too: every mail client and browser sends one.
- Prefetch: browsers mark speculative loads with `Sec-Purpose: prefetch` (Fetch standard,
  https://fetch.spec.whatwg.org/#sec-purpose-header), older ones with `Purpose: prefetch` or
  `X-Moz: prefetch`; a `HEAD` request never comes from a person opening a page or an image.

More ranges can be added with `extra_ranges` (the `LEADSTREAM_MACHINE_IP_RANGES` setting).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Final

__all__ = [
    "SCANNER_RANGES",
    "classify",
    "from_request",
    "is_prefetch",
    "range_owner",
    "user_agent_reason",
]

SCANNER_RANGES: Final[dict[str, tuple[str, ...]]] = {
    "Microsoft Exchange Online Protection": (
        "40.92.0.0/15",
        "40.107.0.0/16",
        "52.100.0.0/14",
        "104.47.0.0/17",
    ),
    "Barracuda Email Security Service": ("64.235.144.0/20", "209.222.80.0/21"),
}
"""Security gateways' published ranges: owner → CIDR blocks (sources in the module docstring)."""

_AGENT_TOKENS: Final = (
    # security scanners and URL rewriters
    ("barracuda", "Barracuda"),
    ("mimecast", "Mimecast"),
    ("proofpoint", "Proofpoint"),
    ("urldefense", "Proofpoint URL Defense"),
    ("safelinks", "Microsoft Safe Links"),
    ("forcepoint", "Forcepoint"),
    ("trendmicro", "Trend Micro"),
    ("symantec", "Symantec"),
    ("ironport", "Cisco IronPort"),
    ("fireeye", "FireEye"),
    ("sophos", "Sophos"),
    ("cloudmark", "Cloudmark"),
    # programs, not people
    ("headlesschrome", "headless Chrome"),
    ("phantomjs", "PhantomJS"),
    ("python-requests", "python-requests"),
    ("python-urllib", "python-urllib"),
    ("aiohttp", "aiohttp"),
    ("go-http-client", "Go http client"),
    ("java/", "Java http client"),
    ("okhttp", "okhttp"),
    ("curl/", "curl"),
    ("wget/", "wget"),
    ("libwww-perl", "libwww-perl"),
    ("apache-httpclient", "Apache HttpClient"),
    ("bot", "a bot"),
    ("crawler", "a crawler"),
    ("spider", "a spider"),
    ("scanner", "a scanner"),
    ("preview", "a link preview"),
)
_AGENT_RE: Final = re.compile("|".join(re.escape(token) for token, _ in _AGENT_TOKENS))
_AGENT_NAMES: Final = dict(_AGENT_TOKENS)
_PREFETCH_HEADERS: Final = ("sec-purpose", "purpose", "x-moz", "x-purpose")


def user_agent_reason(user_agent: str | None) -> str | None:
    """The reason a user agent is a machine's (`user agent: Barracuda`), or None."""
    if user_agent is None or not user_agent.strip():
        return "no user agent"
    found = _AGENT_RE.search(user_agent.lower())
    return None if found is None else f"user agent: {_AGENT_NAMES[found.group(0)]}"


@lru_cache(maxsize=16)
def _networks(
    extra: tuple[tuple[str, str], ...],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    pairs = [(cidr, owner) for owner, cidrs in SCANNER_RANGES.items() for cidr in cidrs]
    pairs.extend((cidr, owner) for owner, cidr in extra)
    return tuple((ipaddress.ip_network(cidr, strict=False), owner) for cidr, owner in pairs)


def range_owner(ip: str | None, extra_ranges: Iterable[str] = ()) -> str | None:
    """Whose published scanning range `ip` is in, or None (also for a value that is no address).

    `extra_ranges` are CIDR blocks, optionally `owner=CIDR`.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    extra = tuple(
        (owner.strip() or "a configured scanner range", cidr.strip())
        for owner, _, cidr in (
            item.rpartition("=") if "=" in item else ("", "", item) for item in extra_ranges
        )
    )
    for network, owner in _networks(extra):
        if address.version == network.version and address in network:
            return owner
    return None


def classify(
    *,
    vendor_flag: str | None = None,
    user_agent: str | None = None,
    ip: str | None = None,
    user_agent_known: bool = True,
    extra_ranges: Iterable[str] = (),
) -> str | None:
    """Why the event is a machine's, or None for what looks like a person.

    `vendor_flag` names a vendor's own machine flag when it is set (`sg_machine_open`).
    `user_agent_known=False` when the source does not report user agents at all, so that a
    missing one says nothing.
    """
    if vendor_flag:
        return f"vendor flag: {vendor_flag}"
    owner = range_owner(ip, extra_ranges)
    if owner is not None:
        return f"address of {owner}"
    if user_agent is None and not user_agent_known:
        return None
    return user_agent_reason(user_agent)


def is_prefetch(headers: Mapping[str, str]) -> bool:
    """Whether a request's headers mark it as a browser's speculative load."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return any("prefetch" in lowered.get(name, "").lower() for name in _PREFETCH_HEADERS)


def from_request(
    method: str,
    headers: Mapping[str, str],
    *,
    ip: str | None = None,
    extra_ranges: Iterable[str] = (),
) -> str | None:
    """Why an HTTP request to the collector's pixel or redirect is a machine's, or None."""
    if method.upper() == "HEAD":
        return "HEAD request"
    if is_prefetch(headers):
        return "prefetch request"
    user_agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), None)
    return classify(user_agent=user_agent, ip=ip, extra_ranges=extra_ranges)
