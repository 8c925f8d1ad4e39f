"""`leadstream demo`: start Kafka, Redis and a worker, stream traffic, show the results."""

from __future__ import annotations

import argparse

from stream.cli.common import Subparsers, examples, parse_speed

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        **examples(
            "leadstream demo",
            "leadstream demo --leads 50 --days 7 --speed 1d --duration 120",
        ),
        help="start Kafka, Redis and a worker, stream traffic, show the results",
        description=(
            "The one-command demo (what `make demo` runs): Kafka and Redis (local, or the "
            "configured ones), a worker with its dashboard, and the persona simulator's traffic "
            "from DAYS ago until now, paced by --speed; prints stage changes, events per second "
            "and the top leads, and the dashboard's URL with a token made for the run. Stop it "
            "with Ctrl-C."
        ),
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--leads", type=int, default=200, help="people to simulate (200)")
    demo.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    demo.add_argument(
        "--speed",
        type=parse_speed,
        metavar="X",
        help="simulated seconds per second (86400 or 1d: a day per second); "
        "default: the span in about 150 seconds",
    )
    demo.add_argument("--seed", type=int, help="simulation seed (default: a new one each run)")
    demo.add_argument("--web-port", type=int, help="the worker's web port (6066, or a free one)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start everything and show Leadstream working."""
    from stream.dev import demo  # noqa: PLC0415

    return demo.run(
        duration=args.duration,
        leads=args.leads,
        days=args.days,
        speed=args.speed,
        seed=args.seed,
        web_port=args.web_port,
    )
