"""`leadstream score`: score a file of leads with a model file, as the worker would.

Building the parser imports nothing heavy; running the command imports pandas (the `calibrate`
extra) and prints an install hint when it is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.calibrate import INSTALL_HINT
from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    examples,
    fail,
    parse_start,
    progress_bar,
)

__all__ = ["add_parser", "run"]

_EVENT_SUFFIXES = (".jsonl", ".ndjson")
_FORMATS = ("csv", "json", "jsonl")


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "score",
        **examples(
            "leadstream score leads.csv --models model.yaml --out scores.csv",
            "leadstream score leads.csv --models model.yaml --target converted --report out.md",
            "leadstream score traffic.jsonl --models model.yaml --outcomes won.csv --target won",
        ),
        help="score a table or an event log with a model file, as the worker would",
        description=(
            "Score every lead of FILE with a model file, through the same scoring core and with "
            "the same events a worker would get. A table (CSV or Parquet, one row per lead) "
            "becomes each row's events as the README documents (a profile_updated event with "
            "traits.custom.<column>, (missing) for a blank cell the model tests for; a clicked "
            "event with target <column> per counted time), read off the model's rules; an "
            "event log (JSONL: events, or records as `leadstream simulate --out` writes them) is "
            "scored lead by lead, identities and merges resolved, at its last event (--at). "
            "Writes per lead the total, fit, engagement, grade, stage and top rules, as CSV or "
            "JSON; with known outcomes (--target: a column of the table, or of --outcomes for "
            "an event log) also the AUC, KS, conversion and lift by decile and conversion by "
            "stage. Exit 3 when a file cannot be read or the model reads no column of the table."
        ),
    )
    parser.add_argument(
        "file", metavar="TABLE|JSONL", help="a CSV/Parquet table, or a JSONL event log"
    )
    parser.add_argument("--models", required=True, metavar="FILE", help="the model file")
    parser.add_argument("--model", metavar="ID", help="which of its models (default: the first)")
    parser.add_argument(
        "--target", metavar="COLUMN",
        help="converted or not: a column of the table, or of --outcomes (figures per decile "
        "and stage)",
    )  # fmt: skip
    parser.add_argument(
        "--positive", metavar="VALUE", help="the target value meaning converted (yes/true/1)"
    )
    parser.add_argument(
        "--lead-column", metavar="COLUMN",
        help="the lead ids (default: a table's id column if one is found, else row numbers; "
        "lead_id in --outcomes)",
    )  # fmt: skip
    parser.add_argument(
        "--outcomes", metavar="FILE", help="with an event log: CSV/Parquet of lead id and --target"
    )
    parser.add_argument(
        "--at", type=parse_start, metavar="TIME",
        help="with an event log: score at this ISO 8601 time (default: its last event)",
    )  # fmt: skip
    parser.add_argument("--sep", help="CSV separator (default: sniffed from the header)")
    parser.add_argument(
        "--out", metavar="FILE", help="write the leads here (.csv, .json or .jsonl)"
    )
    parser.add_argument(
        "--format", choices=_FORMATS,
        help="csv, json (an array) or jsonl (default: from --out's suffix, else csv)",
    )  # fmt: skip
    parser.add_argument(
        "--report", metavar="FILE", help="also write the figures as Markdown (.md) or text"
    )
    parser.set_defaults(func=run)


def _progress() -> Callable[[str, int, int], None]:
    bars: dict[str, Callable[[int, int], None]] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in bars:
            bars[phase] = progress_bar(phase)
        bars[phase](done, total)

    return report


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    return suffix if suffix in _FORMATS else "csv"


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per failure
    try:
        from stream.calibrate.score import Scored, score_events, score_table  # noqa: PLC0415
        from stream.calibrate.table import CalibrationError, read_table  # noqa: PLC0415
    except ImportError as exc:
        print(
            f"leadstream score needs pandas and scikit-learn ({exc.name} is missing): "
            f"{INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from stream.model_files import load_model_file  # noqa: PLC0415
    from stream.offline.diff import read_events  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415

    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    if suffix and suffix not in _FORMATS and not args.format:
        return fail(
            "score",
            f"--out {args.out}: leads are written as csv, json or jsonl; name the file "
            ".csv, .json or .jsonl, or give --format",
            EXIT_USAGE,
        )
    events = Path(args.file).suffix.lower() in _EVENT_SUFFIXES
    if events and args.target and not args.outcomes:
        return fail("score", "an event log's outcomes come from --outcomes FILE", EXIT_USAGE)
    if not events and (args.outcomes or args.at):
        return fail("score", "--outcomes and --at are for an event log (JSONL)", EXIT_USAGE)
    if args.outcomes and not args.target:
        return fail("score", "--outcomes needs --target COLUMN", EXIT_USAGE)
    try:
        models = load_model_file(args.models)
        if args.model and args.model not in models.ids:
            return fail("score", f"{args.models} {models.no_model(args.model)}", EXIT_USAGE)
        scored: Scored
        if events:
            log, bad = read_events(args.file)
            outcomes = _outcomes(args) if args.outcomes else None
            scored = score_events(
                log, models, args.model, at=args.at, outcomes=outcomes, target=args.target,
                progress=_progress(),
            )  # fmt: skip
            if bad:
                scored.notes.append(f"{bad} lines of the event log did not decode: skipped")
        else:
            frame = read_table(args.file, sep=args.sep)
            scored = score_table(
                frame, models, args.model, lead_column=args.lead_column, target=args.target,
                positive=args.positive, progress=_progress(),
            )  # fmt: skip
    except OSError as exc:
        return fail("score", f"cannot read {args.file}: {exc}", EXIT_CONFIG)
    except (CalibrationError, ModelFileError) as exc:
        return fail("score", str(exc), EXIT_CONFIG)
    return _write(args, scored)


def _outcomes(args: argparse.Namespace) -> dict[str, bool]:
    """Lead id → converted, from `--outcomes`."""
    from stream.calibrate.table import CalibrationError, parse_target, read_table  # noqa: PLC0415

    table = read_table(args.outcomes, sep=args.sep)
    lead_column = args.lead_column or "lead_id"
    for name in (lead_column, args.target):
        if name not in table.columns:
            raise CalibrationError(f"{args.outcomes} has no column {name!r}")
    labels, _ = parse_target(table[args.target], args.positive)
    return {
        str(lead): bool(label)
        for lead, label in zip(table[lead_column], labels, strict=True)
        if label is not None
    }


def _write(args: argparse.Namespace, scored: Any) -> int:
    """The leads to --out or stdout, the figures to stdout or stderr (and --report)."""
    from stream.calibrate.metrics import markdown_sections, text_sections  # noqa: PLC0415
    from stream.calibrate.score import evaluate, to_csv, to_json  # noqa: PLC0415

    fmt = _format(args)
    leads = to_csv(scored) if fmt == "csv" else to_json(scored, lines=fmt == "jsonl")
    sections = evaluate(scored)
    try:
        if args.out:
            Path(args.out).write_text(leads, encoding="utf-8")
        if args.report:
            markdown = Path(args.report).suffix.lower() in (".md", ".markdown")
            body = (
                "\n".join(["# Scores", "", *markdown_sections(sections)])
                if markdown
                else text_sections(sections)
            )
            Path(args.report).write_text(body, encoding="utf-8")
    except OSError as exc:
        return fail("score", f"cannot write: {exc}", EXIT_CONFIG)
    if args.out:
        print(text_sections(sections), end="")
        print(f"wrote {len(scored.leads)} leads to {args.out}", file=sys.stderr)
    else:
        print(text_sections(sections), end="", file=sys.stderr)
        sys.stdout.write(leads)
    return EXIT_OK
