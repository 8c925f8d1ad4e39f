"""What the ``leadstream`` commands share: exit codes, argument types, messages, progress lines.

Importing it costs nothing beyond the standard library, so every command's parser can use it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

__all__ = [
    "EXIT_CONFIG",
    "EXIT_ERROR",
    "EXIT_INFRA",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "Subparsers",
    "fail",
    "parse_speed",
    "parse_start",
    "progress",
    "progress_bar",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INFRA = 4
EXIT_NOT_FOUND = 5

# argparse exports no public name for the type of add_subparsers()' result
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001
"""What ``build_parser`` passes to each command's ``add_parser``."""


EXAMPLES = "examples:"
"""The first line of every command's epilog (`leadstream COMMAND --help` ends with examples)."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps the description as usual, and prints the examples as they are written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*commands: str) -> dict[str, Any]:
    """The `add_parser` keywords that end a command's `--help` with these example commands
    (a `#` starts a comment printed after the command)."""
    return {
        "epilog": "\n".join([EXAMPLES, *(f"  {command}" for command in commands)]),
        "formatter_class": HelpFormatter,
    }


def fail(command: str, message: str, code: int) -> int:
    """Print ``leadstream COMMAND: MESSAGE`` on stderr and return the exit code `code`."""
    print(f"leadstream {command}: {message}", file=sys.stderr)
    return code


def parse_speed(text: str) -> float:
    """``86400`` (simulated seconds per wall second) or a duration per second: ``1d``, ``6h``."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a duration") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the speed must be positive")
    return value


def parse_start(text: str) -> datetime:
    """An ISO 8601 date or time; UTC when it names no time zone."""
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def progress_bar(what: str) -> Callable[[int, int], None]:
    """``report(done, total)``: a plain progress line on stderr, at most one a second, and one
    at the end."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= 1.0:
            last[0] = now
            print(f"{what} {done}/{total} ({100 * done / max(total, 1):.0f}%)", file=sys.stderr)

    return report


def progress(what: str, total: int) -> Callable[[int], None]:
    """``report(done)``: `progress_bar` for a known total."""
    bar = progress_bar(what)
    return lambda done: bar(done, total)
