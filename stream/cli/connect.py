"""`leadstream connect KIND ...`: run a connector; `leadstream connect redrive KIND ...`: re-send
its dead letters.

A connector reads ``leads.stage-changes.v1`` (and, with ``--accounts``,
``leads.account-stage-changes.v1``) in its own consumer group and delivers every stage change to
one external system through the delivery core (`stream.connect.core`), serving its metrics on
``LEADSTREAM_CONNECT_METRICS_PORT``. Each kind adds its own options (`KINDS`); the
destination is built only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream.cli.common import EXIT_ERROR, EXIT_OK, Subparsers, examples, parse_start
from stream.connect.crm import CRM_KINDS

if TYPE_CHECKING:
    from stream.connect.destination import Destination
    from stream.settings import Settings

__all__ = ["KINDS", "Kind", "add_parser", "run", "run_redrive"]


@dataclass(frozen=True)
class Kind:
    """A connector kind: its options and how its destination is built."""

    help: str
    example: str
    """Shown at the end of ``--help`` (the arguments after ``leadstream connect KIND``)."""
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: str
    """``module:function`` taking ``(args, settings)`` and returning the `Destination`."""
    secrets: str | None = None
    """``module:function`` taking ``args`` and returning the secret values to mask in logs."""


def _webhook_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the endpoint's URL (http or https)")
    parser.add_argument(
        "--secret",
        help="its signing secret, whsec_<base64 of 24-64 bytes> "
        "(default LEADSTREAM_CONNECT_WEBHOOK_SECRET; an argument shows in `ps`)",
    )
    parser.add_argument(
        "--model", action="append", default=[], help="only changes of this model (repeatable)"
    )
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        help="only changes into this stage, e.g. mql, or an account stage such as mqa (repeatable)",
    )
    parser.add_argument(
        "--event",
        action="append",
        default=[],
        choices=("lead.stage_changed", "account.stage_changed"),
        help="only this event type (repeatable; lead.erased goes with lead.stage_changed)",
    )
    parser.add_argument(
        "--endpoints",
        metavar="FILE",
        help="a YAML file of several endpoints, each with url, secret or secret_env, and "
        "optional models, stages and events (instead of --url)",
    )


KINDS: dict[str, Kind] = {
    "webhook": Kind(
        help="POST each stage change, signed per Standard Webhooks, to one or more endpoints",
        example="--url https://hooks.example.com/leads --secret whsec_... --stage mql --stage sql",
        add_arguments=_webhook_arguments,
        build="stream.connect.webhook:from_options",
        secrets="stream.connect.webhook:option_secrets",
    ),
    **{
        name: Kind(
            help=crm.help, example=crm.example, add_arguments=crm.add_arguments, build=crm.build
        )
        for name, crm in CRM_KINDS.items()
    },
}
"""Every connector kind, in the order ``leadstream connect --help`` lists them."""


def _function(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def add_parser(sub: Subparsers) -> None:
    connect = sub.add_parser(
        "connect",
        **examples(
            "leadstream connect webhook --url https://hooks.example.com/leads --stage mql",
            "leadstream connect webhook --endpoints endpoints.yaml",
            "leadstream connect webhook --url https://abm.example.com/in --accounts "
            "--event account.stage_changed",
            "leadstream connect hubspot --mapping crm-mapping.yaml --accounts",
            "leadstream connect redrive webhook --all --url https://hooks.example.com/leads",
        ),
        help="deliver stage changes to a CRM, a nurture tool or signed webhooks",
        description=(
            "Run a connector: it reads leads.stage-changes.v1 in its own consumer group "
            "({app_id}-connect-KIND) and delivers every stage change to one system, at least "
            "once and in order per lead, with retries, a rate limit and dead letters "
            "(leads.connector-dead-letters.v1). With --accounts (not mautic) it delivers "
            "leads.account-stage-changes.v1 too, in order per account. `connect redrive KIND` "
            "re-sends the dead letters. Tuning: LEADSTREAM_CONNECT_* settings; metrics on "
            "LEADSTREAM_CONNECT_METRICS_PORT (9466)."
        ),
    )
    kinds = connect.add_subparsers(dest="kind", metavar="KIND", required=True)
    for name, kind in KINDS.items():
        parser = kinds.add_parser(
            name,
            **examples(f"leadstream connect {name} {kind.example}"),
            help=kind.help,
            description=f"{kind.help[0].upper()}{kind.help[1:]}.",
        )
        kind.add_arguments(parser)
        parser.add_argument(
            "--accounts",
            action="store_true",
            help="deliver account stage changes too (leads.account-stage-changes.v1; "
            "default: LEADSTREAM_CONNECT_ACCOUNTS); not for mautic",
        )
        parser.set_defaults(func=run)
    redrive = kinds.add_parser(
        "redrive",
        help="re-send the dead letters of a connector kind, then stop",
        description=(
            "Read leads.connector-dead-letters.v1 up to its current end and deliver again the "
            "stage changes a connector of KIND gave up on (with the same retries; what fails "
            "again is dead-lettered again), then commit in the group {app_id}-connect-redrive-KIND "
            "so a later redrive starts after them. By default: the dead letters no redrive has "
            "read yet; --since TIME: those written since TIME; --all: every one on the topic."
        ),
        **examples(
            "leadstream connect redrive webhook --since 2025-03-14T09:00 "
            "--url https://hooks.example.com/leads",
            "leadstream connect redrive webhook --all --endpoints endpoints.yaml",
        ),
    )
    redrive_kinds = redrive.add_subparsers(dest="redrive_kind", metavar="KIND", required=True)
    for name, kind in KINDS.items():
        parser = redrive_kinds.add_parser(
            name,
            **examples(f"leadstream connect redrive {name} --all {kind.example}"),
            help=f"re-send the dead letters of `connect {name}`",
            description=f"Re-send the dead letters of `leadstream connect {name}`, then stop.",
        )
        when = parser.add_mutually_exclusive_group()
        when.add_argument(
            "--since",
            type=parse_start,
            metavar="TIME",
            help="only dead letters written at or after TIME (ISO 8601, UTC by default)",
        )
        when.add_argument("--all", action="store_true", help="every dead letter on the topic")
        kind.add_arguments(parser)
        parser.set_defaults(func=run_redrive)


def _prepare(args: argparse.Namespace, kind_name: str) -> tuple[Settings, Destination]:
    from stream import logmask  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    kind = KINDS[kind_name]
    destination = _function(kind.build)(args, settings)
    secrets = logmask.settings_secrets(settings)
    if kind.secrets is not None:
        secrets += _function(kind.secrets)(args)
    logmask.install(secrets)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return settings, destination


def _ensure_topics(settings: Settings, *, accounts: bool = False) -> None:
    """Create the stage-changes (and account stage-changes) and connector dead-letter topics when
    missing (a connector does not care how many partitions existing ones have)."""
    from stream.kafka import topics  # noqa: PLC0415
    from stream.kafka.admin import describe_topics, ensure_topics  # noqa: PLC0415

    async def create() -> list[str]:
        specs = [topics.STAGE_CHANGES, topics.CONNECTOR_DEAD_LETTERS]
        if accounts:
            specs.append(topics.ACCOUNT_STAGE_CHANGES)
        states = await describe_topics(settings, specs)
        missing = [spec for spec, state in zip(specs, states, strict=True) if not state.exists]
        return await ensure_topics(settings, missing) if missing else []

    created = asyncio.run(create())
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)


async def _run_connector(connector: Any) -> Any:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, connector.stop)
    try:
        return await connector.run()
    finally:
        await connector.destination.aclose()


def run(args: argparse.Namespace) -> int:
    """Run the connector of ``args.kind`` until SIGTERM or SIGINT."""
    from stream.connect import telemetry  # noqa: PLC0415
    from stream.connect.core import Connector, DeliveryPolicy, StageChangeSource  # noqa: PLC0415
    from stream.connect.destination import takes_accounts  # noqa: PLC0415
    from stream.errors import ConfigurationError  # noqa: PLC0415

    settings, destination = _prepare(args, args.kind)
    accounts = bool(args.accounts or settings.connect_accounts)
    if accounts and not takes_accounts(destination):
        raise ConfigurationError(
            f"connect {args.kind} delivers lead stage changes only; account stage changes go "
            "to the webhook, hubspot and salesforce kinds (drop --accounts, or unset "
            "LEADSTREAM_CONNECT_ACCOUNTS for this connector)"
        )
    idle = getattr(destination, "accounts_only", [])
    if idle and not accounts:
        raise ConfigurationError(
            f"{idle[0]!r} takes account.stage_changed only, which this connector does not read: "
            "add --accounts (or set LEADSTREAM_CONNECT_ACCOUNTS=true)"
        )
    if settings.connect_metrics_port:
        telemetry.serve(settings.connect_metrics_port, settings.connect_metrics_host)
    _ensure_topics(settings, accounts=accounts)
    connector = Connector(
        settings,
        destination,
        DeliveryPolicy.from_settings(settings),
        source=StageChangeSource(settings, accounts=accounts),
    )
    print(
        f"leadstream connect {args.kind}: group {connector.group_id}, metrics on "
        f"{settings.connect_metrics_host}:{settings.connect_metrics_port}",
        file=sys.stderr,
        flush=True,
    )
    report = asyncio.run(_run_connector(connector))
    print(f"leadstream connect {args.kind}: stopped; {_summary(report)}", file=sys.stderr)
    return EXIT_OK


def run_redrive(args: argparse.Namespace) -> int:
    """Re-send the dead letters of ``args.redrive_kind``; exit 1 if some failed again."""
    from stream.connect.core import Connector, DeadLetterSource, DeliveryPolicy  # noqa: PLC0415

    settings, destination = _prepare(args, args.redrive_kind)
    _ensure_topics(settings)
    source = DeadLetterSource(settings, destination.name, since=args.since, from_start=args.all)
    connector = Connector(
        settings,
        destination,
        DeliveryPolicy.from_settings(settings),
        source=source,
        group_id=f"{settings.app_id}-connect-redrive-{destination.name}",
    )
    report = asyncio.run(_run_connector(connector))
    print(f"leadstream connect redrive {args.redrive_kind}: {_summary(report)}")
    return EXIT_ERROR if report.dead_lettered else EXIT_OK


def _summary(report: Any) -> str:
    return (
        f"{report.delivered} delivered, {report.skipped} skipped, {report.retried} retries, "
        f"{report.dead_lettered} dead-lettered"
    )
