"""`leadstream calibrate`: the command's arguments and what it does with them.

Building the parser imports nothing heavy; running the command imports pandas and scikit-learn
and prints an install hint when they are missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from html import escape
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
    progress_bar,
)

__all__ = ["add_parser", "run"]

_ROLES = ("numeric", "categorical", "count", "id", "ignore")

_HISTORY_ONLY = ("lead_column", "time_column", "base_model")
"""The options only an event log's calibration (`--events`) reads."""
_TABLE_ONLY = (
    "role", "count", "exclude", "force", "leak_auc", "binning", "bins", "interactions",
    "pair_bins", "scale", "monotone", "base_odds", "model_id", "compare", "compare_model",
    "stream_check", "stream_check_seconds",
)  # fmt: skip
"""The options only a table's calibration reads."""


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError("give a share between 0 and 1, e.g. 0.2")
    return value


def _holdout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            "give the share of leads to hold out, from 0 (fit on every row) to below 1"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("give 0 (no limit) or more seconds")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "calibrate",
        **examples(
            "leadstream calibrate leads.csv --target converted --out model.yaml",
            "leadstream calibrate leads.csv --target y --exclude duration --scale 100 "
            "--report report.md --out model.yaml",
            "leadstream calibrate sessions.csv --target Revenue --count Administrative,"
            "ProductRelated --holdout 0 --out model.yaml",
            "leadstream calibrate --events kafka --outcomes crm --target sql --base-model b2b "
            "--shadow b2b-next --out models.yaml",
        ),
        help="learn a scoring model's points from past conversions (logistic regression)",
        description=(
            "Read a table of past leads (CSV or Parquet, one row per lead) with a target column "
            "saying who converted; infer each column's role (numeric, categorical, count of an "
            "activity, id, ignore); bin the features, fit a regularised logistic regression and "
            "scale it to integer points (PDO points double the odds). Writes a Leadstream model "
            "file (attributes become fit rules on custom.<column>, counts engagement rules on "
            "clicked events) with MQL/SQL thresholds at the top shares of leads, and reports "
            "held-out AUC, KS, deciles, calibration, points and per-action close rates. The "
            "columns' roles are printed before fitting, and progress on stderr. Without --out "
            "the model file goes to stdout and the report to stderr. Exit 3 when the table "
            "cannot be used, 2 when the held-out share cannot be split from it."
        ),
    )
    parser.add_argument(
        "table", nargs="?", metavar="TABLE", help="CSV or Parquet file, one row per lead"
    )
    parser.add_argument("--target", required=True, metavar="COLUMN", help="converted or not")
    parser.add_argument(
        "--events",
        metavar="JSONL|kafka",
        help="instead of TABLE: an event log (with --outcomes); `kafka`: the source topics on "
        "the broker of the LEADSTREAM_* settings, from their start to their current end",
    )
    parser.add_argument(
        "--outcomes",
        metavar="FILE|crm",
        help="CSV/Parquet of lead id, the --target column, time; `crm`: the CRM outcomes in the "
        "events (leads.crm-feedback.v1), with --target sql (accepted, opportunity or won against "
        "rejected, lost or disqualified) or won (won against lost, rejected or disqualified)",
    )
    parser.add_argument(
        "--shadow",
        metavar="ID",
        help="write the base model file (--base) with the proposal added as shadow model ID (a "
        "challenger: scored, never moving stages; `leadstream models evaluate` follows it)",
    )
    parser.add_argument(
        "--lead-column", default="lead_id", metavar="COLUMN", help="lead ids in --outcomes"
    )
    parser.add_argument(
        "--time-column", metavar="COLUMN",
        help="outcome times in --outcomes (default: a column named time, converted_at or at; "
        "else the end of the log)",
    )  # fmt: skip
    parser.add_argument(
        "--base",
        metavar="FILE",
        help="the live model file (default: the shipped models): with --events, its model's "
        "rules get new points; with a TABLE and --shadow, the proposal joins it",
    )
    parser.add_argument("--base-model", metavar="ID", help="its model (default: the first)")
    parser.add_argument(
        "--positive", metavar="VALUE", help="the target value meaning converted (yes/true/1)"
    )
    parser.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="COLUMN=ROLE",
        help=f"set a column's role ({', '.join(_ROLES)}); repeatable",
    )
    parser.add_argument(
        "--count", type=_names, action="extend", default=[], metavar="COLUMNS",
        help="comma-separated columns that count an activity (engagement rules)",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", type=_names, action="extend", default=[], metavar="COLUMNS",
        help="comma-separated columns to leave out (e.g. filled after the outcome)",
    )  # fmt: skip
    parser.add_argument(
        "--force", type=_names, action="extend", default=[], metavar="COLUMNS",
        help="keep these columns even if the leakage guard flags them",
    )  # fmt: skip
    parser.add_argument(
        "--leak-auc", type=float, default=0.95, metavar="AUC",
        help="exclude a column whose AUC alone is at least this (0.95)",
    )  # fmt: skip
    parser.add_argument("--sep", help="CSV separator (default: sniffed from the header)")
    parser.add_argument("--binning", choices=["quantile", "supervised"], default="quantile")
    parser.add_argument("--bins", type=int, default=20, help="at most N bins per feature (20)")
    parser.add_argument(
        "--c",
        type=_positive,
        default=None,
        help="inverse regularisation strength (0.1; 0.5 for --events)",
    )
    parser.add_argument(
        "--interactions", type=int, default=None, metavar="N",
        help="cross N pairs of attributes (fit rules with `and`; default: chosen by "
        "cross-validation among 0, 1, 2, 4, 8; 0 gives a purely additive scorecard)",
    )  # fmt: skip
    parser.add_argument(
        "--pair-bins", type=int, default=5, metavar="N",
        help="at most N bins per numeric attribute of a pair (5)",
    )  # fmt: skip
    parser.add_argument("--pdo", type=_positive, default=20.0, help="points to double the odds")
    parser.add_argument(
        "--scale", type=_positive, metavar="MAX",
        help="scale the points so that the best possible lead scores MAX (e.g. 100: a 0-100 "
        "score) instead of --pdo points per doubling of the odds",
    )  # fmt: skip
    parser.add_argument(
        "--no-monotone", dest="monotone", action="store_false",
        help="let a count's points fall as the count rises (by default more of an activity "
        "never scores less)",
    )  # fmt: skip
    parser.add_argument(
        "--base-odds", type=_positive, default=1.0, help="odds the base score is reported at (1)"
    )
    parser.add_argument(
        "--holdout", type=_holdout, default=0.25,
        help="held-out share (0.25); 0 fits on every row (no held-out figures)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (42)")
    parser.add_argument("--mql-top", type=_fraction, default=0.2, help="top share → MQL (0.2)")
    parser.add_argument("--sql-top", type=_fraction, default=0.05, help="top share → SQL (0.05)")
    parser.add_argument("--model-id", default="calibrated", help="the model's id (calibrated)")
    parser.add_argument("--version", default="1", help="the model's version (1)")
    parser.add_argument("--out", metavar="FILE", help="write the model file here")
    parser.add_argument(
        "--report", metavar="FILE", help="also write the report: .md Markdown, .html HTML"
    )
    parser.add_argument("--compare", metavar="FILE", help="a current model file to rank against")
    parser.add_argument("--compare-model", metavar="ID", help="its model (default: the first)")
    parser.add_argument(
        "--stream-check", type=int, default=None, metavar="N",
        help="score N held-out leads through the scoring core, as `leadstream score` does "
        "(default all; 0 skips)",
    )  # fmt: skip
    parser.add_argument(
        "--stream-check-seconds", type=_seconds, default=60.0, metavar="S",
        help="stop the stream check after S seconds, keeping the leads it scored (60; 0: no "
        "limit)",
    )  # fmt: skip
    parser.set_defaults(
        func=run,
        option_defaults={name: parser.get_default(name) for name in _HISTORY_ONLY + _TABLE_ONLY},
    )


def _unused(args: argparse.Namespace) -> str | None:
    """Why options of the other kind of calibration were given, if they were: they would do
    nothing (`--shadow` with a table, `--scale` with an event log)."""
    history = args.events is not None
    given = [
        "--no-monotone" if name == "monotone" else f"--{name.replace('_', '-')}"
        for name in (_TABLE_ONLY if history else _HISTORY_ONLY)
        if getattr(args, name) != args.option_defaults[name]
    ]
    if not given:
        return None
    if history:
        return (
            f"{', '.join(given)}: for a TABLE; an event log's calibration (--events) learns "
            "new points for the base model's rules and does not use them"
        )
    return (
        f"{', '.join(given)}: for an event log (--events with --outcomes); a table's "
        "calibration does not use them"
    )


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911, PLR0912, PLR0915 - one exit per failure
    try:
        from stream.calibrate.metrics import text_sections  # noqa: PLC0415
        from stream.calibrate.report import charts, columns_section, render  # noqa: PLC0415
        from stream.calibrate.run import calibrate, check_holdout  # noqa: PLC0415
        from stream.calibrate.score import score_table  # noqa: PLC0415
        from stream.calibrate.scorecard import Options  # noqa: PLC0415
        from stream.calibrate.table import CalibrationError, Role, prepare, read_table  # noqa: PLC0415
    except ImportError as exc:
        print(
            f"leadstream calibrate needs scikit-learn and pandas ({exc.name} is missing): "
            f"{INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415

    if (args.table is None) == (args.events is None) or (args.events is None) != (
        args.outcomes is None
    ):
        return fail("calibrate", "give a TABLE, or --events JSONL with --outcomes FILE", EXIT_USAGE)
    unused = _unused(args)
    if unused:
        return fail("calibrate", unused, EXIT_USAGE)
    if args.events is None and args.base and not args.shadow:
        return fail("calibrate", "--base: with a TABLE, the file --shadow ID joins", EXIT_USAGE)
    if args.shadow:  # before the fit: a challenger cannot take a live model's id
        try:
            live = load_model_file(args.base) if args.base else load_default_models()
        except ModelFileError as exc:
            return fail("calibrate", str(exc), EXIT_CONFIG)
        if args.shadow in live.ids and not live.get(args.shadow).shadow:
            message = (
                f"--shadow {args.shadow!r}: a live model has this id; give the challenger an id "
                "of its own"
            )
            return fail("calibrate", message, EXIT_USAGE)
    if args.events is not None:
        return _run_history(args)

    roles: dict[str, Role] = {}
    for item in args.role:
        name, _, role = item.rpartition("=")
        if not name or role not in _ROLES:
            return fail(
                "calibrate",
                f"--role {item!r}: give COLUMN=ROLE with ROLE one of {', '.join(_ROLES)}",
                EXIT_USAGE,
            )
        roles[name] = Role(role)
    roles |= {name: Role.COUNT for name in args.count}
    roles |= {name: Role.IGNORE for name in args.exclude}
    if args.bins < 2 or args.pair_bins < 2:
        return fail("calibrate", "--bins and --pair-bins must be at least 2", EXIT_USAGE)
    if args.interactions is not None and args.interactions < 0:
        return fail("calibrate", "--interactions must be 0 or more", EXIT_USAGE)
    options = Options(
        binning=args.binning,
        max_bins=args.bins,
        c=0.1 if args.c is None else args.c,
        pdo=args.pdo,
        base_odds=args.base_odds,
        seed=args.seed,
        interactions=args.interactions,
        pair_bins=args.pair_bins,
        monotone_counts=args.monotone,
        scale=args.scale,
    )
    try:
        current = load_model_file(args.compare) if args.compare else None
        frame = read_table(args.table, sep=args.sep)
        table = prepare(
            frame,
            target=args.target,
            positive=args.positive,
            roles=roles,
            leak_auc=args.leak_auc,
            force=frozenset(args.force),
        )
    except (CalibrationError, ModelFileError) as exc:
        return fail("calibrate", str(exc), EXIT_CONFIG)
    print(text_sections([columns_section(table)]).rstrip("\n"), file=sys.stderr)
    for note in table.notes:
        print(note, file=sys.stderr)
    print(file=sys.stderr)
    try:
        check_holdout(table.target, args.holdout)
    except CalibrationError as exc:
        return fail("calibrate", str(exc), EXIT_USAGE)
    try:
        result = calibrate(
            table,
            options=options,
            model_id=args.model_id,
            version=args.version,
            holdout=args.holdout,
            mql_top=args.mql_top,
            sql_top=args.sql_top,
            stream_check=args.stream_check,
            stream_seconds=args.stream_check_seconds or None,
            progress=_progress(),
        )
    except (CalibrationError, ModelFileError) as exc:
        return fail("calibrate", str(exc), EXIT_CONFIG)
    for warning in result.card.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if current is not None:
        from sklearn.metrics import roc_auc_score  # noqa: PLC0415

        model_id = args.compare_model or current.ids[0]
        if model_id not in current.ids:
            return fail("calibrate", f"{args.compare} {current.no_model(model_id)}", EXIT_USAGE)
        rows = table.raw.iloc[result.evaluated].reset_index(drop=True)
        try:
            compared = score_table(
                rows, current, model_id, target=table.target_name, positive=table.positive
            )
        except CalibrationError as exc:
            return fail("calibrate", f"--compare {args.compare}: {exc}", EXIT_CONFIG)
        result.current_auc = float(roc_auc_score(table.target[result.evaluated], compared.totals))
    model_text = result.yaml_text
    if args.shadow:
        from stream.offline.challenger import add_shadow  # noqa: PLC0415

        try:
            model_text = add_shadow(_base_text(args.base), model_text, model_id=args.shadow)
        except (OSError, ModelFileError) as exc:
            return fail("calibrate", str(exc), EXIT_CONFIG)
    try:
        if args.out:
            Path(args.out).write_text(model_text, encoding="utf-8")
        if args.report:
            report = Path(args.report)
            if report.suffix.lower() in (".html", ".htm"):
                report.write_text(render(result, "html"), encoding="utf-8")
            else:
                images = {}
                for name, svg in charts(result).items():
                    image = report.with_name(f"{report.stem}.{name}.svg")
                    image.write_text(svg, encoding="utf-8")
                    images[name] = image.name
                report.write_text(render(result, "markdown", images=images), encoding="utf-8")
    except OSError as exc:
        return fail("calibrate", f"cannot write: {exc}", EXIT_CONFIG)
    text = render(result)
    if args.shadow:
        text += f"\nthe proposal is shadow model {args.shadow!r} beside the base file's models\n"
    if args.out:
        print(text)
        print(f"wrote the model file to {args.out}", file=sys.stderr)
    else:
        print(text, file=sys.stderr)
        sys.stdout.write(model_text)
    return EXIT_OK


def _base_text(path: str | None) -> str:
    """The text of `--base`, else of the shipped models."""
    if path:
        return Path(path).read_text(encoding="utf-8")
    from importlib import resources  # noqa: PLC0415

    return resources.files("stream.scoring").joinpath("default_models.yaml").read_text("utf-8")


def _progress() -> Callable[[str, int, int], None]:
    """`progress(phase, done, total)`: a progress line per phase on stderr."""
    bars: dict[str, Callable[[int, int], None]] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in bars:
            bars[phase] = progress_bar(phase)
        bars[phase](done, total)

    return report


def _run_history(args: argparse.Namespace) -> int:  # noqa: PLR0912 - one exit per failure
    from stream.calibrate.history import calibrate_history  # noqa: PLC0415
    from stream.calibrate.outcomes import crm_outcomes  # noqa: PLC0415
    from stream.calibrate.table import CalibrationError, read_table  # noqa: PLC0415
    from stream.offline.challenger import add_shadow  # noqa: PLC0415
    from stream.scoring import ModelFileError, parse_models  # noqa: PLC0415

    if not args.holdout:
        return fail("calibrate", "--events needs a held-out share above 0 (--holdout)", EXIT_USAGE)
    try:
        base_text = _base_text(args.base)
        if args.base_model:  # checked before the history is read, which can take long
            source = args.base or "the shipped models"
            base = parse_models(base_text, source=source)
            if args.base_model not in base.ids:
                return fail("calibrate", f"{source} {base.no_model(args.base_model)}", EXIT_USAGE)
        events, bad = _history_events(args.events)
        if args.outcomes == "crm":
            outcomes, lead_column = crm_outcomes(events, args.target), "lead_id"
        else:
            outcomes, lead_column = read_table(args.outcomes, sep=args.sep), args.lead_column
        time_column = args.time_column or next(
            (c for c in outcomes.columns if str(c).lower() in ("time", "converted_at", "at")),
            None,
        )
        result = calibrate_history(
            events,
            outcomes,
            base_text=base_text,
            model_id=args.base_model,
            lead_column=lead_column,
            target=args.target,
            time_column=time_column,
            positive=args.positive,
            pdo=args.pdo,
            c=0.5 if args.c is None else args.c,
            holdout=args.holdout,
            seed=args.seed,
            mql_top=args.mql_top,
            sql_top=args.sql_top,
            version=args.version if args.version != "1" else None,
        )
        model_text = result.yaml_text
        if args.shadow:
            model_text = add_shadow(base_text, model_text, model_id=args.shadow)
    except (OSError, CalibrationError, ModelFileError, KeyError) as exc:
        return fail("calibrate", str(exc), EXIT_CONFIG)
    text = result.render()
    if args.shadow:
        text += f"the proposal is shadow model {args.shadow!r} beside the base file's models\n"
    if bad:
        text += f"{bad} lines of the event log did not decode and were skipped\n"
    try:
        if args.out:
            Path(args.out).write_text(model_text, encoding="utf-8")
        if args.report:
            html = Path(args.report).suffix.lower() in (".html", ".htm")
            body = (
                f"<pre>{escape(text)}</pre>\n"
                if html
                else f"# Calibration report\n\n```\n{text}```\n"
            )
            Path(args.report).write_text(body, encoding="utf-8")
    except OSError as exc:
        return fail("calibrate", f"cannot write: {exc}", EXIT_CONFIG)
    if args.out:
        print(text, end="")
    else:
        print(text, end="", file=sys.stderr)
        sys.stdout.write(model_text)
    return EXIT_OK


def _history_events(source: str) -> tuple[list[Any], int]:
    """The events of `--events`: a JSONL file, or `kafka` (the source topics); and how many
    records did not decode."""
    if source != "kafka":
        from stream.offline.diff import read_events  # noqa: PLC0415

        return read_events(source)
    import asyncio  # noqa: PLC0415

    from stream.offline.replay import ReplayStats, read_history  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    stats = ReplayStats()
    report = progress_bar("reading the source topics")
    events = asyncio.run(read_history(Settings(), since=None, stats=stats, progress=report))
    return events, stats.undecodable
