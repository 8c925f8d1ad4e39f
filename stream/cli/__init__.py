"""The ``leadstream`` command line: one module per command, each with ``add_parser`` and ``run``.

Building the parser imports only the standard library and the command modules; a command's
dependencies (Faust, Kafka clients, pandas) are imported when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from stream import __version__, native
from stream.cli import (
    bench,
    calibrate,
    connect,
    demo,
    explain,
    forget,
    infra,
    links,
    models,
    redis,
    replay,
    rules,
    score,
    simulate,
    topics,
    worker,
)
from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INFRA,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    examples,
)
from stream.errors import ConfigurationError, LeadstreamError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INFRA",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

COMMANDS = (
    worker,
    infra,
    topics,
    demo,
    simulate,
    redis,
    rules,
    explain,
    forget,
    replay,
    calibrate,
    links,
    score,
    models,
    connect,
    bench,
)
"""Every command, in the order ``leadstream --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadstream",
        description="Real-time lead scoring on Kafka. Settings come from LEADSTREAM_* env vars.",
        **examples(
            "leadstream demo                 # Kafka, Redis, a worker and traffic, in one command",
            "leadstream calibrate leads.csv --target converted --out model.yaml",
            "leadstream score new-leads.csv --models model.yaml --out scores.csv",
            "leadstream COMMAND --help       # what a command does, and examples",
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"leadstream {__version__}: {native.BUILD.describe()}",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of ``parser`` by name (empty when it has none)."""
    # argparse has no public way to list a parser's sub-commands: its actions are the only record
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`leadstream rules explain | head`): stop quietly, as shell tools
        # do, with stdout pointed at /dev/null so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except ValidationError as exc:
        print(f"leadstream: invalid settings:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LeadstreamError as exc:
        print(f"leadstream: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ConfigurationError) else EXIT_INFRA
    except KeyboardInterrupt:
        return 130
    return code
