"""`leadstream replay`: rescore the source topics' history under a new model version."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    Subparsers,
    examples,
    fail,
    parse_start,
    progress_bar,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    replay = sub.add_parser(
        "replay",
        **examples(
            "leadstream replay --model my-models.yaml",
            "leadstream replay --model my-models.yaml --from 2026-11-01T00:00:00Z --publish",
        ),
        help="rescore the history under a new model version into replay topics",
        description=(
            "Read the source topics from the beginning (or --from a time) with a plain consumer, "
            "score each lead offline under the models of --model (anonymous events resolved "
            "through identify events, like the processor), decayed to now, and publish every "
            "stage change and each lead's latest score per model with the new model's version "
            "to leads.scores-replay.v1 and leads.stage-changes-replay.v1. The live scores topic "
            "is compacted by {lead_id, model} with no version, so replayed scores written there "
            "would replace the live version's: --publish does that, for the switch-over. Exit 3 "
            "when the file is invalid or repeats a live model's version, 4 when Kafka cannot be "
            "reached."
        ),
    )
    replay.add_argument("--model", required=True, metavar="FILE", help="the new model file")
    replay.add_argument(
        "--from",
        dest="since",
        default="earliest",
        metavar="WHEN",
        help="earliest (default) or an ISO 8601 time: only records written since then",
    )
    replay.add_argument(
        "--live",
        metavar="FILE",
        help="the live model file (default: LEADSTREAM_MODELS_PATH, else the default models)",
    )
    replay.add_argument(
        "--publish",
        action="store_true",
        help="write to the live scores and stage-changes topics instead of the replay topics",
    )
    replay.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rescore the source topics' history under a new model version."""
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.offline import replay  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    live_path = args.live or settings.models_path
    try:
        new = load_model_file(args.model)
        live = load_model_file(live_path) if live_path else load_default_models()
    except ModelFileError as exc:
        return fail("replay", str(exc), EXIT_CONFIG)
    same = replay.same_versions(new, live)
    if same:
        return fail(
            "replay",
            f"{args.model} has the live version of {', '.join(same)} "
            f"({live_path or 'the default models'}); a replay must carry a new version",
            EXIT_CONFIG,
        )
    since = None if args.since == "earliest" else parse_start(args.since)
    stats = replay.ReplayStats()

    events = asyncio.run(
        replay.read_history(settings, since=since, stats=stats, progress=progress_bar("read"))
    )
    records = replay.rescore(events, new, now=datetime.now(UTC), stats=stats)
    scores_topic, changes_topic = asyncio.run(
        replay.publish(settings, records, live=args.publish, progress=progress_bar("published"))
    )
    versions = ", ".join(f"{m.id} {m.version}" for m in new.models)
    print(
        f"replayed {stats.events} events ({stats.undecodable} undecodable records skipped) of "
        f"{stats.leads} leads under {versions}: {stats.scores} scores to {scores_topic}, "
        f"{stats.stage_changes} stage changes to {changes_topic}"
        + (
            f"; {stats.accounts} accounts ({stats.account_stage_changes} account stage changes)"
            if stats.accounts
            else ""
        )
    )
    return EXIT_OK
