"""`leadstream links sign URL --lead ID|--anonymous ID|--email ADDR`: print a tracked link.

The link goes through the collector's redirect (``<base>/r/<token>``), which sends the person on
to URL and writes a click; ``--open`` also prints the email open pixel (``<base>/o/<token>.gif``).
The token is signed with the first key of ``LEADSTREAM_LINK_SIGNING_KEY``. ``links check`` reads
a tracked link or token back and says whether the configured keys verify it.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    examples,
    fail,
)

if TYPE_CHECKING:
    from stream.web.links import LinkSigner

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "links",
        **examples(
            "leadstream links sign https://acme.example/pricing --email ada@example.com "
            "--message m-42 --open",
            'leadstream links check "https://collect.example.com/r/<token>"',
        ),
        help="make tracked links (redirect and email open pixel) for emails and pages",
        description=(
            "sign URL: print the tracked link of URL for one person (--lead, --anonymous or "
            "--email), through the collector's redirect GET /r/<token>: a click makes "
            "email_clicked with --message, else clicked. --open also prints the open pixel "
            "GET /o/<token>.gif (needs --message). check LINK: print what a tracked link or "
            "token says, exit 1 when the configured keys do not verify it. Keys: "
            "LEADSTREAM_LINK_SIGNING_KEY (exit 3 when unset); base URL: --base or "
            "LEADSTREAM_LINK_BASE_URL."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sign = actions.add_parser(
        "sign",
        **examples(
            "leadstream links sign https://acme.example/pricing --lead lead-42",
            "leadstream links sign https://acme.example/ --email ada@example.com --message m-42 "
            "--open",
        ),
        help="print the tracked link of URL",
        description="Print the tracked link of URL (and with --open the email open pixel).",
    )
    sign.add_argument("url", metavar="URL", help="where the link sends people (http or https)")
    who = sign.add_mutually_exclusive_group(required=True)
    who.add_argument("--lead", metavar="ID", help="the lead's id")
    who.add_argument("--anonymous", metavar="ID", help="an anonymous id of the person")
    who.add_argument("--email", metavar="ADDR", help="the person's email address")
    sign.add_argument("--message", metavar="ID", help="the email's message id: email_clicked")
    sign.add_argument("--campaign", metavar="ID", help="the email campaign's id")
    sign.add_argument("--link", metavar="ID", help="a name of this link (e.g. cta-pricing)")
    sign.add_argument(
        "--base", metavar="URL", help="where people reach the collector (LEADSTREAM_LINK_BASE_URL)"
    )
    sign.add_argument("--open", action="store_true", help="also print the open pixel's URL")
    sign.set_defaults(func=run)
    check = actions.add_parser(
        "check",
        **examples('leadstream links check "https://collect.example.com/r/<token>"'),
        help="print what a tracked link says and whether it verifies",
        description="Print the fields of a tracked link or token as JSON; exit 1 when the "
        "configured keys do not verify it.",
    )
    check.add_argument("link", metavar="LINK", help="a tracked link (/r/..., /o/....gif) or token")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Sign a tracked link, or check one."""
    from stream.settings import Settings  # noqa: PLC0415
    from stream.web.links import LinkSigner  # noqa: PLC0415

    settings = Settings()
    signer = LinkSigner.from_settings(settings)
    if not signer.configured:
        return fail("links", "LEADSTREAM_LINK_SIGNING_KEY is not set", EXIT_CONFIG)
    if args.action == "check":
        return _check(signer, args.link)
    return _sign(signer, args, settings.link_base_url)


def _sign(signer: LinkSigner, args: argparse.Namespace, base_default: str | None) -> int:
    from stream.web.links import LinkError, check_target, click_url, open_url  # noqa: PLC0415

    base = args.base or base_default
    if base is None:
        return fail("links sign", "give --base or set LEADSTREAM_LINK_BASE_URL", EXIT_USAGE)
    if args.open and not args.message:
        return fail("links sign", "--open needs --message (an open is of a message)", EXIT_USAGE)
    try:
        token = signer.token(
            check_target(args.url),
            lead_id=args.lead,
            anonymous_id=args.anonymous,
            email=args.email,
            message_id=args.message,
            campaign_id=args.campaign,
            link_id=args.link,
        )
        lines = [click_url(base, token)]
        if args.open:
            lines.append(open_url(base, token))
    except LinkError as exc:
        return fail("links sign", str(exc), EXIT_USAGE)
    print("\n".join(lines))
    return EXIT_OK


def _check(signer: LinkSigner, link: str) -> int:
    from dataclasses import asdict  # noqa: PLC0415
    from urllib.parse import urlsplit  # noqa: PLC0415

    from stream.web.links import CLICK_PATH, OPEN_PATH, LinkError  # noqa: PLC0415

    token = link.strip()
    if "/" in token:
        path = urlsplit(token).path
        for prefix, suffix in ((CLICK_PATH, ""), (OPEN_PATH, ".gif")):
            start = path.rfind(prefix)
            if start >= 0 and path.endswith(suffix):
                token = path[start + len(prefix) : len(path) - len(suffix)]
                break
    try:
        fields = asdict(signer.verify(token))
    except LinkError as exc:
        return fail("links check", f"not a valid link: {exc}", EXIT_ERROR)
    print(json.dumps({k: v for k, v in fields.items() if v is not None}, indent=2))
    return EXIT_OK
