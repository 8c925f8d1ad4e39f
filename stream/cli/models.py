"""`leadstream models evaluate`: every model's live evaluation on CRM outcomes, from Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_OK,
    Subparsers,
    examples,
    fail,
)

__all__ = ["add_parser", "run"]

_COLUMNS = (
    ("model", "model"),
    ("shadow", "shadow"),
    ("outcomes", "outcomes"),
    ("good", "positives"),
    ("bad", "negatives"),
    ("AUC", "auc"),
    ("MQL at", "mql_threshold"),
    ("at MQL", "at_mql"),
    ("precision", "precision_at_mql"),
    ("MQL leads", "mql_leads"),
    ("MQL→SQL", "mql_to_sql"),
    ("MQL→won", "mql_to_won"),
)
_SHARES = frozenset({"precision_at_mql", "mql_to_sql", "mql_to_won"})


def add_parser(sub: Subparsers) -> None:
    models = sub.add_parser(
        "models",
        **examples(
            "leadstream models evaluate --model b2b-next",
            "leadstream models promote models.yaml b2b-next --version 2026-12-07 --retire b2b",
        ),
        help="champion and challengers: evaluate every model on CRM outcomes, promote one",
        description="evaluate: every model's live evaluation on CRM outcomes. promote: make a "
        "shadow model live in a model file.",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    cmd = actions.add_parser(
        "evaluate",
        help="every model's AUC, precision at MQL and MQL conversion on CRM outcomes",
        **examples(
            "leadstream models evaluate",
            "leadstream models evaluate --model b2b-next --format json",
            "leadstream models evaluate --models challenger.yaml",
        ),
        description=(
            "Every model's live evaluation, read from Redis (what /metrics and the dashboard "
            "show). Each CRM outcome on leads.crm-feedback.v1 (sales accepted or rejected, "
            "opportunity, won, lost, disqualified) is paired with the lead's score under every "
            "model, live or shadow, at that moment: AUC of good outcomes (accepted, opportunity, "
            "won) against bad ones, precision at the model's MQL threshold, and of the leads at "
            "or above it at their first outcome, the share sales accepted (MQL->SQL) and won. "
            "Exit 3 for a model file that cannot be read, 4 when Redis is unreachable, 5 for a "
            "--model with no outcomes that the file does not name."
        ),
    )
    cmd.add_argument("--model", help="only this model id")
    cmd.add_argument(
        "--models",
        metavar="FILE",
        help="the model file the workers run, for MQL thresholds and shadow marks "
        "(default: LEADSTREAM_MODELS_PATH, else the shipped models)",
    )
    cmd.add_argument("--format", choices=["table", "json"], default="table")
    cmd.set_defaults(func=run)
    promote = actions.add_parser(
        "promote",
        help="make a shadow model live: shadow off, a new version",
        **examples(
            "leadstream models promote models.yaml b2b-next --version 2026-12-07 --retire b2b",
            "leadstream models promote models.yaml b2b-next --version 2 --out next.yaml",
        ),
        description=(
            "Rewrite a model file with MODEL live (its `shadow` flag removed) at a new version; "
            "--retire puts the model it replaces in shadow, so one model per line of business "
            "moves the stages while the old one is still scored and evaluated. The result is "
            "checked as the worker checks a model file; comments are not kept. Deploy it with "
            "LEADSTREAM_MODELS_PATH. Exit 3 for a file or model that cannot be used."
        ),
    )
    promote.add_argument("file", metavar="FILE", help="the model file")
    promote.add_argument("model", metavar="MODEL", help="the shadow model to make live")
    promote.add_argument("--version", required=True, help="its new version (published with scores)")
    promote.add_argument("--retire", metavar="ID", help="the live model it replaces: to shadow")
    promote.add_argument("--out", metavar="FILE", help="write here (default: FILE itself)")
    promote.set_defaults(func=run_promote)


def run_promote(args: argparse.Namespace) -> int:
    """Make a shadow model live in a model file."""
    from pathlib import Path  # noqa: PLC0415

    from stream.offline.challenger import promote  # noqa: PLC0415
    from stream.scoring.spec import ModelFileError  # noqa: PLC0415

    try:
        text = Path(args.file).read_text(encoding="utf-8")
        promoted = promote(text, args.model, version=args.version, retire=args.retire)
        Path(args.out or args.file).write_text(promoted, encoding="utf-8")
    except OSError as exc:
        return fail("models", f"{args.file}: {exc.strerror or exc}", EXIT_CONFIG)
    except ModelFileError as exc:
        return fail("models", f"{args.file}: {exc}", EXIT_CONFIG)
    retired = f"; {args.retire} is a shadow model now" if args.retire else ""
    print(f"{args.model} is live at version {args.version}{retired}", file=sys.stderr)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Print every model's live evaluation."""
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring.spec import ModelFileError, suggest  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    path = args.models or settings.models_path
    try:
        models = load_model_file(path) if path else load_default_models()
    except ModelFileError as exc:
        return fail("models", str(exc), EXIT_CONFIG)
    rows = [item.to_json() for item in asyncio.run(_evaluate(settings, models, args.model))]
    if args.model is not None and not rows:
        message = (
            f"no model {args.model!r}{suggest(args.model, models.ids)} in "
            f"{path or 'the shipped models'} nor outcomes for it"
        )
        return fail("models", message, EXIT_NOT_FOUND)
    if args.format == "json":
        json.dump({"models": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table(rows))
    return EXIT_OK


async def _evaluate(settings: Any, models: Any, only: str | None) -> list[Any]:
    from redis.exceptions import RedisError  # noqa: PLC0415

    from stream.errors import InfrastructureError  # noqa: PLC0415
    from stream.readmodel.model import ReadModel  # noqa: PLC0415

    read_model = ReadModel.from_settings(settings)
    try:
        return await read_model.evaluate(models, only)
    except (RedisError, OSError) as exc:
        raise InfrastructureError(f"Redis is unreachable: {exc}") from exc
    finally:
        await read_model.close()


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "shadow":
        return "yes" if value else "no"
    if key in _SHARES:
        return f"{100 * value:.1f}%"
    if key == "auc":
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    """The evaluations as an aligned text table, with the outcomes per type under it."""
    if not rows:
        return "no models\n"
    cells = [[title for title, _ in _COLUMNS]]
    cells += [[_cell(key, row[key]) for _, key in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    for row in rows:
        counts = ", ".join(f"{k} {n}" for k, n in row["by_outcome"].items()) or "none"
        lines.append(f"{row['model']}: {counts}")
    return "\n".join(lines) + "\n"
