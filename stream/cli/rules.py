"""`leadstream rules`: check a scoring-model file, print it as tables, or compare two files
on a sample of leads."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from stream.cli.common import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, Subparsers, examples, fail, progress

if TYPE_CHECKING:
    from stream.scoring import ModelSet, ScoringModel

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    rules = sub.add_parser(
        "rules",
        **examples(
            "leadstream rules validate my-models.yaml",
            "leadstream rules explain my-models.yaml --model b2b --full --format md > b2b.md",
            "leadstream rules explain my-models.yaml --format csv > rules.csv",
            "leadstream rules diff stream/scoring/default_models.yaml my-models.yaml --model b2b",
            "leadstream rules diff old.yaml new.yaml --events traffic.jsonl",
        ),
        help="check a scoring-model file or print it as tables",
        description=(
            "validate: check a scoring-model file (exit 3 naming the file, model, rule and field "
            "of each problem); explain: print its models as tables (rules, points, caps, decay "
            "groups, thresholds, stages, grade matrix). Without FILE: the default models. "
            "diff OLD NEW: score a sample of leads (a seeded simulation, or --events JSONL) "
            "offline under both files and print, per model, the stage distributions, the leads "
            "whose stage changes (from -> to), the mean score shift and the rules that move "
            "most; exit 3 when a file is invalid."
        ),
    )
    rules.add_argument("action", choices=["validate", "explain", "diff"])
    rules.add_argument("file", nargs="?", metavar="FILE", help="a model file (YAML); diff: OLD")
    rules.add_argument("new_file", nargs="?", metavar="NEW", help="diff: the new model file")
    rules.add_argument("--model", metavar="ID", help="only this model of the file(s)")
    rules.add_argument(
        "--full", action="store_true",
        help="explain: every test in full (no shortened lists or patterns) and each rule's "
        "description",
    )  # fmt: skip
    rules.add_argument(
        "--format", choices=["text", "md", "csv"], default="text",
        help="explain: aligned text (default), Markdown tables, or CSV (one row per rule, "
        "every model of the file)",
    )  # fmt: skip
    rules.add_argument(
        "--events", metavar="JSONL", help="diff: score these events instead of a simulation"
    )
    rules.add_argument("--seed", type=int, default=42, help="diff: simulation seed (42)")
    rules.add_argument("--leads", type=int, default=300, help="diff: simulated leads (300)")
    rules.add_argument("--days", type=float, default=30.0, help="diff: simulated days (30)")
    rules.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:  # noqa: PLR0911 - one exit per failure
    """Check a scoring-model file, or print its models as tables."""
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import ModelFileError, describe_model  # noqa: PLC0415
    from stream.scoring.explain import describe_accounts  # noqa: PLC0415

    if args.action == "diff":
        return _diff(args)
    if args.new_file:
        return fail(f"rules {args.action}", "give one FILE", EXIT_USAGE)
    try:
        models = load_model_file(args.file) if args.file else load_default_models()
    except ModelFileError as exc:
        return fail("rules", str(exc), EXIT_CONFIG)
    source = args.file or "the default models"
    chosen = list(models.models)
    if args.model:
        chosen = [m for m in chosen if m.id == args.model]
        if not chosen:
            return fail(
                "rules",
                f"{source} {models.no_model(args.model)}",
                EXIT_USAGE,
            )
    if args.action == "validate":
        print(f"{source}: valid, {len(models)} model{'s' if len(models) > 1 else ''}")
        for model in chosen:
            print(
                f"  {model.id} {model.version}: {len(model.fit)} fit rules, "
                f"{len(model.engagement)} engagement rules, "
                f"decay groups {', '.join(model.decay)}"
            )
        return EXIT_OK
    if args.format == "csv":
        sys.stdout.write(_rules_csv(chosen, full=args.full))
        return EXIT_OK
    described = [describe_model(m, full=args.full, fmt=args.format) for m in chosen]
    if models.accounts is not None and not args.model:
        described.append(describe_accounts(models.accounts, fmt=args.format))
    separator = "\n\n" if args.format == "text" else "\n\n\n"
    print(separator.join(described))
    return EXIT_OK


def _rules_csv(models: Sequence[ScoringModel], *, full: bool) -> str:
    """One CSV row per rule: the model, its version and the columns of the rule tables."""
    from stream.scoring.explain import rule_rows  # noqa: PLC0415

    out = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for model in models:
        for row in rule_rows(model, full=full):
            if writer is None:
                fields = ["model", "version", *row]
                writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
                writer.writeheader()
            writer.writerow({"model": model.id, "version": model.version, **row})
    return out.getvalue()


def _only(models: ModelSet, model_id: str) -> ModelSet:
    """The file's models reduced to one."""
    return models.model_copy(update={"models": (models.get(model_id),)})


def _diff(args: argparse.Namespace) -> int:
    from stream.model_files import load_model_file  # noqa: PLC0415
    from stream.offline import diff as rules_diff  # noqa: PLC0415
    from stream.offline.history import group_by_lead  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415
    from stream.simulate.traffic import SimConfig, generate  # noqa: PLC0415

    if not (args.file and args.new_file):
        return fail("rules diff", "give OLD and NEW model files", EXIT_USAGE)
    try:
        old, new = load_model_file(args.file), load_model_file(args.new_file)
    except ModelFileError as exc:
        return fail("rules", str(exc), EXIT_CONFIG)
    if args.model:
        missing = [
            f"{path} {models.no_model(args.model)}"
            for path, models in ((args.file, old), (args.new_file, new))
            if args.model not in models.ids
        ]
        if missing:
            return fail("rules diff", "; ".join(missing), EXIT_USAGE)
        old, new = _only(old, args.model), _only(new, args.model)
    if args.events:
        try:
            events, bad = rules_diff.read_events(args.events)
        except OSError as exc:
            return fail("rules diff", f"cannot read {args.events}: {exc}", EXIT_CONFIG)
        if not events:
            return fail("rules diff", f"no events in {args.events}", EXIT_CONFIG)
        at = max(event.occurred_at for event in events)
        source = f"{len(events)} events from {args.events}" + (
            f" ({bad} lines skipped)" if bad else ""
        )
    else:
        config = SimConfig(seed=args.seed, leads=args.leads, days=args.days)
        events, at = generate(config).events, config.end
        source = (
            f"simulation of {args.leads} leads over {args.days:g} days (seed {args.seed}), "
            f"{len(events)} events"
        )
    by_lead = group_by_lead(events)
    bars = {name: progress(f"scoring with {name}", len(by_lead)) for name in ("old", "new")}
    diffs = rules_diff.diff_models(by_lead, old, new, at=at, progress=lambda name, n: bars[name](n))
    print(rules_diff.render(diffs, old, new, source=f"{source}, read at {at.isoformat()}"))
    return EXIT_OK
