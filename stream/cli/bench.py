"""`leadstream bench`: measure throughput, latency, recovery and state size on the real broker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from stream.cli.common import EXIT_OK, Subparsers, examples

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        **examples(
            "leadstream bench --quick",
            "leadstream bench --events 200000 --json results.json",
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
        "--quick", action="store_true", help="a small run (20,000 records) for CI and smoke tests"
    )
    bench.add_argument("--events", type=int, metavar="N", help="records to load (100,000)")
    bench.add_argument(
        "--state-leads", type=int, metavar="N", help="leads in the recovered state (1,000,000)"
    )
    bench.add_argument("--no-recovery", action="store_true", help="skip the recovery runs")
    bench.add_argument("--no-two-workers", action="store_true", help="skip the two-worker run")
    bench.add_argument(
        "--no-standby", action="store_true", help="skip the recovery runs with a standby replica"
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
    from stream.bench.run import BenchConfig, run, table, write_json  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    work_dir = Path(args.work_dir)
    config = BenchConfig.quick_mode(work_dir) if args.quick else BenchConfig(work_dir=work_dir)
    overrides: dict[str, object] = {}
    if args.events is not None:
        overrides["events"] = args.events
    if args.state_leads is not None:
        overrides["state_leads"] = args.state_leads
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
