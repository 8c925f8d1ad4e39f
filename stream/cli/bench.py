"""`leadstream bench`: measure throughput, latency, recovery and state size on the real broker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from stream.cli.common import EXIT_OK, Subparsers, examples
from stream.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        **examples(
            "leadstream bench --quick",
            "leadstream bench --events 200000 --json results.json",
            "leadstream bench connect --quick",
            "leadstream bench connect --kind hubspot",
        ),
        help="measure throughput, latency, recovery and state size on the real broker",
        description=(
            "Load N simulated records into fresh topics on LEADSTREAM_KAFKA_BOOTSTRAP and "
            "measure, in the same run on the same data: a raw aiokafka decode loop, a bare "
            "Faust agent, a naive one-table-write-per-event agent, a Quix Streams peer (with "
            "the 'bench' extra) and the full pipeline (events/s, CPU per record of the process "
            "and of a local broker, and ratios); event -> score and stage-change latency at "
            "fixed offered loads; recovery of a worker's state after a kill; bytes per lead; "
            "one vs two workers. Prints Markdown tables and writes the figures as JSON. Its "
            "topics and data are deleted at the end."
        ),
    )
    bench.add_argument(
        "what",
        nargs="?",
        choices=["pipeline", "connect"],
        default="pipeline",
        help="pipeline (the default: everything above) or connect: stage changes delivered "
        "per second by a connector (--kind) to a local receiver",
    )
    bench.add_argument(
        "--kind",
        choices=["webhook", "hubspot"],
        default="webhook",
        help="connect: webhook (a receiver answering in --delay-ms) or hubspot (HubSpot's "
        "contract server from the repository's tests/crm_fakes, with its rate limit: the "
        "share of the limit used, 429s, batch sizes, each change delivered once and in order)",
    )
    bench.add_argument(
        "--recycled",
        type=int,
        metavar="PCT",
        dest="recycled_pct",
        choices=range(101),
        help="connect --kind hubspot: percent of the leads moved back to recycled after their "
        "walk (each such batch clears the contacts' stage first: two requests) (0)",
    )
    bench.add_argument(
        "--rate-per-10s",
        type=int,
        metavar="N",
        help="connect --kind hubspot: requests the contract server accepts per 10 s (100, "
        "HubSpot's limit for private apps on Free and Starter)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="a small run (20,000 records) for CI and smoke tests"
    )
    bench.add_argument("--events", type=int, metavar="N", help="records to load (100,000)")
    bench.add_argument(
        "--state-leads", type=int, metavar="N", help="leads in the recovered state (1,000,000)"
    )
    bench.add_argument(
        "--latency-rates",
        metavar="R[,R...]",
        help="offer the latency phases these rates (records/s) instead of 25/50/75%% of the "
        "pipeline's measured rate (quick: 50%%), so that runs compare the same load",
    )
    bench.add_argument(
        "--latency-seconds",
        type=float,
        metavar="S",
        help="length of each latency phase (20; quick: 5)",
    )
    bench.add_argument("--no-recovery", action="store_true", help="skip the recovery runs")
    bench.add_argument("--no-two-workers", action="store_true", help="skip the two-worker run")
    bench.add_argument(
        "--no-standby", action="store_true", help="skip the recovery runs with a standby replica"
    )
    bench.add_argument(
        "--changes",
        type=int,
        metavar="N",
        help="connect: stage changes to deliver (webhook: 20,000; hubspot: 50,000)",
    )
    bench.add_argument(
        "--leads",
        type=int,
        metavar="N",
        help="connect: leads they belong to (webhook: 5,000; hubspot: 10,000)",
    )
    bench.add_argument(
        "--delay-ms", type=float, metavar="MS", help="connect: the receiver's answer time (50)"
    )
    bench.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="connect: calls in flight at once (webhook: 32; hubspot: "
        "LEADSTREAM_CONNECT_CONCURRENCY)",
    )
    bench.add_argument(
        "--json", default="bench-results.json", metavar="FILE", help="where to write the JSON"
    )
    bench.add_argument(
        "--work-dir", default=".run/bench", metavar="DIR", help="worker data and logs (deleted)"
    )
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure the pipeline against same-run baselines on the configured broker."""
    if args.what == "connect":
        return run_connect(args)
    from stream.bench.run import BenchConfig, run, table, write_json  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    work_dir = Path(args.work_dir)
    config = BenchConfig.quick_mode(work_dir) if args.quick else BenchConfig(work_dir=work_dir)
    overrides: dict[str, object] = {}
    if args.events is not None:
        overrides["events"] = args.events
    if args.state_leads is not None:
        overrides["state_leads"] = args.state_leads
    if args.latency_rates:
        overrides["latency_rates"] = _rates(args.latency_rates)
    if args.latency_seconds is not None:
        if args.latency_seconds <= 0:
            raise ConfigurationError("--latency-seconds must be above 0")
        overrides["latency_seconds"] = args.latency_seconds
    if args.no_recovery:
        overrides["recovery"] = False
    if args.no_two_workers:
        overrides["two_workers"] = False
    if args.no_standby:
        overrides["standby_recovery"] = False
    if overrides:
        from dataclasses import replace  # noqa: PLC0415

        config = replace(config, **overrides)  # type: ignore[arg-type]

    import logging  # noqa: PLC0415

    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retried leader changes on new topics

    def log(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    results = asyncio.run(run(config, Settings(), log))
    print(table(results))
    write_json(results, Path(args.json))
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return EXIT_OK


def _rates(text: str) -> tuple[float, ...]:
    """``--latency-rates``: positive records/s, comma-separated."""
    try:
        rates = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigurationError(
            f"--latency-rates {text!r}: give records per second, e.g. 500,1000"
        ) from None
    if not rates or any(rate <= 0 for rate in rates):
        raise ConfigurationError(f"--latency-rates {text!r}: every rate must be above 0")
    return rates


def run_connect(args: argparse.Namespace) -> int:
    """Measure a connector's delivery to a local receiver (webhook) or contract server."""
    from dataclasses import replace  # noqa: PLC0415

    from stream.bench import connect  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    options = {
        "changes": args.changes,
        "leads": args.leads,
        "concurrency": args.concurrency,
        "delay_ms": args.delay_ms,
        "rate_per_10s": args.rate_per_10s,
        "recycled_pct": args.recycled_pct,
    }
    if args.kind == "hubspot":
        from stream.bench import hubspot  # noqa: PLC0415

        config: Any = (
            hubspot.HubspotBenchConfig.quick_mode() if args.quick else hubspot.HubspotBenchConfig()
        )
        measure: Any = hubspot.run
        if args.delay_ms is not None:
            raise ConfigurationError("--delay-ms is for --kind webhook")
    else:
        config = (
            connect.ConnectBenchConfig.quick_mode() if args.quick else connect.ConnectBenchConfig()
        )
        measure = connect.run
        if args.rate_per_10s is not None or args.recycled_pct is not None:
            raise ConfigurationError("--rate-per-10s and --recycled are for --kind hubspot")
    config = replace(config, **{k: v for k, v in options.items() if v is not None})

    def log(line: str) -> None:
        print(f"bench connect {args.kind}: {line}", file=sys.stderr, flush=True)

    results = asyncio.run(measure(config, Settings(), log))
    print(connect.table(results))
    import json  # noqa: PLC0415

    key = "connect" if args.kind == "webhook" else f"connect_{args.kind}"
    Path(args.json).write_text(json.dumps({key: results}, indent=2) + "\n")
    print(f"\nresults written to {args.json}", file=sys.stderr)
    return EXIT_OK
