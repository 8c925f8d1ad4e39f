"""`leadstream worker`: run a stream-processing worker (Faust, imported only when it runs)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from stream.cli.common import EXIT_OK, Subparsers, examples

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    worker = sub.add_parser(
        "worker",
        **examples(
            "leadstream worker",
            "leadstream worker --web-port 6066 --loglevel debug",
        ),
        help="run a stream-processing worker",
        description=(
            "Run a Faust worker: consumes the source topics, keeps lead state in tables and "
            "publishes outputs. Connects to LEADSTREAM_KAFKA_BOOTSTRAP."
        ),
    )
    worker.add_argument("--loglevel", choices=["debug", "info", "warning", "error"])
    worker.add_argument("--web-port", type=int, help="port of the worker's web server")
    worker.add_argument("--data-dir", help="directory of the worker's RocksDB tables")
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start a Faust worker with the Leadstream agents."""
    import faust  # noqa: PLC0415

    from stream import logmask, native  # noqa: PLC0415
    from stream.app import create_app  # noqa: PLC0415
    from stream.faust_guards import local_stores as local_state  # noqa: PLC0415
    from stream.faust_guards import vital  # noqa: PLC0415
    from stream.kafka.admin import ensure_topics  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415
    from stream.worker import heap, native_memory, processor  # noqa: PLC0415

    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logmask.install(logmask.settings_secrets(settings))
    native_memory.limit_arenas()  # before RocksDB's threads start
    created = asyncio.run(ensure_topics(settings, tables=processor.TABLES))
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    app = create_app(settings)
    tabledir = Path(app.conf.tabledir)

    class Worker(faust.Worker):  # type: ignore[misc]  # Faust's classes carry no types
        async def on_execute(self) -> None:
            # logging is set up, the app and its tables not started yet
            logging.getLogger("stream.worker").info("%s", native.BUILD.describe())
            local_state.open_stores(tabledir, standby_replicas=settings.standby_replicas)
            await super().on_execute()

    worker = Worker(app, loglevel=args.loglevel or settings.log_level)
    # Faust's progress spinner (on at --loglevel warning and above) sets the root logger to
    # DEBUG, so every debug call in Faust and aiokafka builds (and masks) a record: about a
    # third of a busy worker's time. Without it the root logger keeps the chosen level.
    worker.spinner = None
    # a crash of Faust's fetch loop, consumer, producer, conductor or table recovery stops the
    # worker (exit status 1); should Faust's stop then hang, the process ends after this long
    vital.exit_within(vital.STOP_WITHIN_S)
    heap.settle()  # everything built so far lives as long as the worker: out of the GC's walks
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        clean = stop.code in (None, 0) and worker.crash_reason is None
        local_state.closed(tabledir, clean=clean)
        raise
    return EXIT_OK  # pragma: no cover  (execute_from_commandline exits)
