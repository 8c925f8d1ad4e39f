"""`leadstream topics`: create or describe Leadstream's topics on the broker."""

from __future__ import annotations

import argparse
import asyncio

from stream.cli.common import EXIT_ERROR, EXIT_OK, Subparsers, examples

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    topics_cmd = sub.add_parser(
        "topics",
        **examples(
            "leadstream topics create",
            "leadstream topics describe",
        ),
        help="create or describe Leadstream's topics on the broker",
        description="create: make the missing topics; describe: list them and their state.",
    )
    topics_cmd.add_argument("action", choices=["create", "describe"])
    topics_cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Create or describe Leadstream's topics."""
    from stream.kafka.admin import ALL_TOPICS, describe_topics, ensure_topics  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    if args.action == "create":
        created = asyncio.run(ensure_topics(settings))
        print(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))
        return EXIT_OK
    states = asyncio.run(describe_topics(settings))
    specs = {settings.topic(spec.name): spec for spec in ALL_TOPICS}
    ok = True
    for state in states:
        spec = specs[state.name]
        if state.partitions is None:
            status = "MISSING"
            ok = False
        elif state.partitions != settings.topic_partitions:
            status = f"{state.partitions} partitions (expected {settings.topic_partitions})"
            ok = False
        else:
            status = f"{state.partitions} partitions"
        print(f"{state.name:40s} {spec.cleanup_policy:8s} {status}")
    return EXIT_OK if ok else EXIT_ERROR
