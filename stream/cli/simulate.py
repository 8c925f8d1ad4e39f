"""`leadstream simulate`: generate persona traffic; write JSONL, send it to Kafka, or report how
the models rank it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stream.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_USAGE,
    Subparsers,
    examples,
    fail,
    parse_speed,
    parse_start,
)

if TYPE_CHECKING:
    from stream.simulate.traffic import Simulation

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    simulate = sub.add_parser(
        "simulate",
        **examples(
            "leadstream simulate --leads 200 --days 30 --out traffic.jsonl",
            "leadstream simulate --leads 500 --report   # scored offline: an AUC report",
        ),
        help="generate realistic lead traffic: to Kafka, to JSONL, or scored in a report",
        description=(
            "Generate traffic from personas (ideal buyer, researcher, student, competitor, "
            "churned customer, email-scanner and web-scraper bots, anonymous visitor who later "
            "fills a form) with a ground-truth label per lead, late, duplicate and malformed "
            "deliveries, and machines in front of people's mail (privacy-proxy opens, link "
            "scanners) with a ground truth per event. Deterministic for a seed. --out writes "
            "JSONL (and the truth CSVs next to it), --kafka sends to the source topics "
            "(LEADSTREAM_* settings), --report scores the traffic with the models and prints "
            "the AUC per model: on the same seed without machines, with them, and with them "
            "scored as people."
        ),
    )
    simulate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    simulate.add_argument("--leads", type=int, default=500, help="people to simulate (500)")
    simulate.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    simulate.add_argument(
        "--start", type=parse_start, help="start of simulated time, ISO 8601 (2025-06-02)"
    )
    simulate.add_argument(
        "--ends-now",
        action="store_true",
        help="end simulated time at the current time instead (the only use of the clock)",
    )
    simulate.add_argument("--duplicate-rate", type=float, default=0.02, metavar="SHARE")
    simulate.add_argument("--out-of-order-rate", type=float, default=0.05, metavar="SHARE")
    simulate.add_argument("--malformed-rate", type=float, default=0.01, metavar="SHARE")
    simulate.add_argument(
        "--machine-open-rate",
        type=float,
        default=0.43,
        metavar="SHARE",
        help="share of the opens of people's mail that a privacy proxy (Apple Mail Privacy "
        "Protection) makes shortly after delivery (0.43)",
    )
    simulate.add_argument(
        "--scanner-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of recipients behind a link-scanning mail gateway: every message opened "
        "and every link clicked within seconds of delivery (0)",
    )
    simulate.add_argument(
        "--proxy-flag-rate",
        type=float,
        default=0.6,
        metavar="SHARE",
        help="share of privacy-proxy opens the sending platform flags as a machine's (0.6)",
    )
    simulate.add_argument(
        "--scanner-flag-rate",
        type=float,
        default=0.4,
        metavar="SHARE",
        help="share of scanned messages the sending platform flags as a machine's (0.4)",
    )
    simulate.add_argument("--out", metavar="FILE", help="write JSONL here (- for stdout)")
    simulate.add_argument(
        "--truth",
        metavar="FILE",
        help="write the ground truth per lead here (and per event next to it, *.events.csv)",
    )
    simulate.add_argument("--kafka", action="store_true", help="send to the Kafka topics")
    simulate.add_argument(
        "--rate", type=float, metavar="N", help="with --kafka: at most N records per second"
    )
    simulate.add_argument(
        "--speed",
        type=parse_speed,
        metavar="X",
        help="with --kafka: pace by simulated time, X simulated seconds per second "
        "(86400 or 1d: a simulated day per second)",
    )
    simulate.add_argument("--report", action="store_true", help="print AUC and persona table")
    simulate.add_argument("--models", metavar="FILE", help="model file for --report")
    simulate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate persona traffic; write JSONL, send it to Kafka, report how models rank it."""
    import time  # noqa: PLC0415

    from stream.simulate import sinks as simulate_sinks  # noqa: PLC0415
    from stream.simulate import traffic as simulate  # noqa: PLC0415
    from stream.simulate.report import machine_counts  # noqa: PLC0415

    if not (args.out or args.kafka or args.report):
        return fail("simulate", "give --out FILE, --kafka and/or --report", EXIT_USAGE)
    start = args.start or simulate.DEFAULT_START
    if args.ends_now:
        start = datetime.now(UTC) - timedelta(days=args.days)
    try:
        config = simulate.SimConfig(
            seed=args.seed,
            leads=args.leads,
            days=args.days,
            duplicate_rate=args.duplicate_rate,
            out_of_order_rate=args.out_of_order_rate,
            malformed_rate=args.malformed_rate,
            start=start,
            machine_open_rate=args.machine_open_rate,
            scanner_rate=args.scanner_rate,
            proxy_flag_rate=args.proxy_flag_rate,
            scanner_flag_rate=args.scanner_flag_rate,
        )
    except ValueError as exc:
        return fail("simulate", str(exc), EXIT_USAGE)
    began = time.perf_counter()
    sim = simulate.generate(config)
    counts = sim.counts()
    print(
        f"simulated {len(sim.truth)} leads over {config.days:g} days from "
        f"{config.start.isoformat()}: {counts['events']} events, {counts['deliveries']} "
        f"deliveries ({counts.get('late', 0)} late, {counts.get('duplicate', 0)} duplicate, "
        f"{counts.get('malformed', 0)} malformed) in {time.perf_counter() - began:.1f}s",
        file=sys.stderr,
    )
    machines = machine_counts(sim)
    print(
        f"machine-made email opens and clicks: {machines.proxy_opens} by privacy proxies, "
        f"{machines.scanner_opens + machines.scanner_clicks} by link scanners; "
        f"{machines.marked} marked at ingest",
        file=sys.stderr,
    )
    truth = args.truth or (
        simulate_sinks.truth_path_for(args.out) if args.out and args.out != "-" else None
    )
    try:
        if args.out:
            simulate_sinks.write_jsonl(sim.deliveries, args.out)
            print(f"wrote {len(sim.deliveries)} records to {args.out}", file=sys.stderr)
        if truth is not None:
            simulate_sinks.write_truth(sim.truth, truth)
            per_event = simulate_sinks.event_truth_path_for(truth)
            simulate_sinks.write_event_truth(sim, per_event)
            per_account = simulate_sinks.account_truth_path_for(truth)
            simulate_sinks.write_account_truth(sim, per_account)
            print(
                f"wrote the ground truth to {truth}, {per_event} and {per_account}",
                file=sys.stderr,
            )
    except OSError as exc:
        return fail("simulate", f"cannot write: {exc}", EXIT_CONFIG)
    if args.report:
        code = _report(sim, args.models, to_stderr=args.out == "-")
        if code != EXIT_OK:
            return code
    if args.kafka:
        from stream.settings import Settings  # noqa: PLC0415

        settings = Settings()
        due = simulate_sinks.wall_offsets(
            [note.at for note in sim.notes], rate=args.rate, speed=args.speed
        )

        def progress(sent: int) -> None:
            print(f"sent {sent}/{len(sim.deliveries)}", file=sys.stderr)

        began = time.perf_counter()
        sent = asyncio.run(
            simulate_sinks.send_to_kafka(sim.deliveries, settings, due=due, progress=progress)
        )
        elapsed = time.perf_counter() - began
        print(
            f"sent {sent} records to {settings.kafka_bootstrap} in {elapsed:.1f}s "
            f"({sent / max(elapsed, 1e-9):.0f}/s)",
            file=sys.stderr,
        )
    return EXIT_OK


def _report(sim: Simulation, models_path: str | None, *, to_stderr: bool) -> int:
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415
    from stream.simulate.report import build_report  # noqa: PLC0415

    try:
        models = load_model_file(models_path) if models_path else load_default_models()
    except ModelFileError as exc:
        return fail("simulate", str(exc), EXIT_CONFIG)
    print(build_report(sim, models).render(), file=sys.stderr if to_stderr else sys.stdout)
    return EXIT_OK
