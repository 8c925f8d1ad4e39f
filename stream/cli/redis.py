"""`leadstream redis rebuild`: rebuild the Redis read model from the topics."""

from __future__ import annotations

import argparse
import asyncio
import sys

from stream.cli.common import EXIT_OK, Subparsers, examples

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    redis_cmd = sub.add_parser(
        "redis",
        **examples(
            "leadstream redis rebuild",
        ),
        help="maintain the Redis read model",
        description=(
            "rebuild: delete the read model and replay it from the compacted scores topic and "
            "the stage-changes topic, from their first offsets to the end offsets taken at the "
            "start, with a progress bar. Exit 4 when Kafka or Redis is unreachable."
        ),
    )
    redis_cmd.add_argument("action", choices=["rebuild"])
    redis_cmd.add_argument(
        "--keep", action="store_true", help="apply over the current read model without deleting it"
    )
    redis_cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rebuild the Redis read model from the topics."""
    from stream.readmodel.projector import rebuild  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    stats = asyncio.run(rebuild(settings, clear=not args.keep))
    print(
        f"rebuilt the read model from {stats.records} record(s)"
        + (f" after deleting {stats.deleted} key(s)" if stats.deleted else ""),
        file=sys.stderr,
    )
    return EXIT_OK
