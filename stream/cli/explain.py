"""`leadstream explain LEAD_ID`: a lead's score, rule by rule, and its stage history.

Asks a running worker (`GET /leads/{lead_id}`, answered by the worker owning the lead with the
live decayed score) and prints the answer as plain text tables. `leadstream explain --account
ACCOUNT_ID` does the same for an account (`GET /accounts/{account_id}`, from the read model):
what its score is made of, its buying group, its strongest member and its stage changes.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from stream.cli.common import EXIT_NOT_FOUND, EXIT_OK, Subparsers, examples, fail
from stream.errors import ConfigurationError, InfrastructureError, LeadstreamError

if TYPE_CHECKING:
    import urllib.error

__all__ = [
    "LeadNotFoundError",
    "add_parser",
    "fetch_account",
    "fetch_lead",
    "render",
    "render_account",
    "run",
]


class LeadNotFoundError(LeadstreamError):
    """The worker knows no lead by that id."""


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "explain",
        **examples(
            "leadstream explain lead-42",
            'leadstream explain lead-42 --url http://127.0.0.1:6066 --token "$TOKEN"',
        ),
        help="a lead's score rule by rule and its stage history, from a running worker",
        description=(
            "Ask a running worker (GET /leads/LEAD_ID) for a lead's live score under each model "
            "and print its rules' points and stage history as tables. The token is --token, "
            "else the first of LEADSTREAM_AUTH_TOKENS. Exit 5 when the worker knows no such "
            "lead, 4 when it cannot be reached, 3 when it refuses the token. With --account, "
            "ID is an account (GET /accounts/ID): its score's parts, buying group and stage "
            "changes."
        ),
    )
    parser.add_argument("lead_id", metavar="ID", help="a lead id (an account id with --account)")
    parser.add_argument(
        "--account", action="store_true", help="explain the account ID rather than a lead"
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:6066", help="the worker (http://127.0.0.1:6066)"
    )
    parser.add_argument("--token", help="bearer token (default: LEADSTREAM_AUTH_TOKENS' first)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print a lead's score rule by rule and its stage history, from a running worker."""
    from stream.settings import Settings  # noqa: PLC0415

    token = args.token
    if token is None:
        tokens = Settings().auth_tokens
        token = tokens[0].get_secret_value() if tokens else None
    try:
        if args.account:
            print(render_account(fetch_account(args.url, args.lead_id, token)))
            return EXIT_OK
        document = fetch_lead(args.url, args.lead_id, token)
    except LeadNotFoundError as exc:
        return fail("explain", str(exc), EXIT_NOT_FOUND)
    print(render(document))
    return EXIT_OK


def fetch_lead(base_url: str, lead_id: str, token: str | None, timeout: float = 10.0) -> Any:
    """The worker's JSON answer for a lead.

    Raises `LeadNotFoundError` (404), `ConfigurationError` (token refused, bad id) or
    `InfrastructureError` (the worker cannot be reached or fails).
    """
    return _fetch(base_url, "leads", lead_id, token, timeout)


def fetch_account(base_url: str, account_id: str, token: str | None, timeout: float = 10.0) -> Any:
    """The worker's JSON answer for an account (errors as for `fetch_lead`)."""
    return _fetch(base_url, "accounts", account_id, token, timeout)


def _fetch(base_url: str, kind: str, ident: str, token: str | None, timeout: float) -> Any:
    import urllib.error  # noqa: PLC0415
    import urllib.parse  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    url = f"{base_url.rstrip('/')}/{kind}/{urllib.parse.quote(ident, safe='')}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = _detail(exc)
        if exc.code == 404:
            what = "lead" if kind == "leads" else "account"
            raise LeadNotFoundError(f"no {what} {ident!r} at {base_url}") from exc
        if exc.code in (400, 401, 403):
            raise ConfigurationError(f"{url} answered {exc.code}: {detail}") from exc
        raise InfrastructureError(f"{url} answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InfrastructureError(f"cannot reach the worker at {base_url}: {reason}") from exc


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return str(exc.reason)
    return str(body.get("detail") or body.get("error") or exc.reason)


def _table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    right = right or set()
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render(document: dict[str, Any]) -> str:
    """The worker's answer as text: per model a summary, the rules and the stage history."""
    lead_id = document.get("lead_id", "?")
    if "merged_into" in document:
        return f"lead {lead_id} was merged into {document['merged_into']}"
    lines = [f"lead {lead_id}, scores as of {document.get('as_of', '?')}"]
    if document.get("account_id"):
        lines.append(f"account {document['account_id']}")
    for model in document.get("models", []):
        lines += [
            "",
            f"model {model['model']} {model['model_version']}: total {model['total']:.2f} "
            f"(fit {model['fit']:.2f}, engagement {model['engagement']:.2f}), grade "
            f"{model['grade']}, stage {model['stage']}"
            + (f", flags: {', '.join(model['flags'])}" if model.get("flags") else ""),
            "",
        ]
        machine = model.get("machine_events") or {}
        if machine.get("count"):
            lines += [
                f"machine-made events not scored: {machine['count']} "
                f"(latest: {machine.get('latest_reason')})",
                "",
            ]
        rules = [
            [r["rule_id"], r["kind"], r.get("group") or "", f"{r['points']:+.2f}"]
            for r in model.get("rules", [])
        ]
        lines += (
            _table(["rule", "kind", "group", "points"], rules, right={3})
            if rules
            else ["(no rule contributes)"]
        )
        history = [
            [h["at"], h.get("from_stage") or "-", h["to_stage"], h.get("reason") or ""]
            for h in model.get("history", [])
        ]
        lines += ["", "stage history:"]
        lines += (
            _table(["at", "from", "to", "reason"], history) if history else ["(no stage changes)"]
        )
    return "\n".join(lines)


def render_account(document: dict[str, Any]) -> str:
    """An account as text: its score's parts, buying group, strongest member, stage changes."""
    roles = document.get("roles") or []
    missing = document.get("missing_roles") or []
    lines = [
        f"account {document.get('account_id', '?')} ({document.get('model')}), as of "
        f"{document.get('as_of', '?')}: score {document['score']:.2f}, stage {document['stage']}",
        "",
    ]
    parts = [
        ["fit (firmographics)", f"{document['fit']:+.2f}"],
        ["members' engagement", f"{document['engagement']:+.2f}"],
        [
            f"buying-group roles ({len(roles)} of {len(roles) + len(missing)})",
            f"{document['role_points']:+.2f}",
        ],
        [
            f"engaged contacts ({document['engaged_contacts']})",
            f"{document['contact_points']:+.2f}",
        ],
    ]
    lines += _table(["part", "points"], parts, right={1})
    lines += [
        "",
        f"members: {document['members']}; roles covered: {', '.join(roles) or 'none'}; "
        f"missing: {', '.join(missing) or 'none'}",
    ]
    if document.get("strongest_member"):
        lines.append(
            f"strongest member: {document['strongest_member']} "
            f"({document.get('strongest_member_score') or 0:.2f})"
        )
    changes = [
        [c["occurred_at"], c.get("from_stage") or "-", c["to_stage"], c.get("reason") or ""]
        for c in document.get("stage_changes", [])
    ]
    lines += ["", "stage changes:"]
    lines += _table(["at", "from", "to", "reason"], changes) if changes else ["(none)"]
    return "\n".join(lines)
