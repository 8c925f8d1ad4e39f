"""The ``leadstream`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from stream import __version__
from stream.errors import LeadstreamError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INFRA = 4


def cmd_worker(args: argparse.Namespace) -> int:
    """Start a Faust worker with the Leadstream agents."""
    import faust  # noqa: PLC0415

    from stream import logmask  # noqa: PLC0415
    from stream.admin import ensure_topics  # noqa: PLC0415
    from stream.app import create_app  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logmask.install(logmask.settings_secrets(settings))
    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel or settings.log_level)
    worker.execute_from_commandline()
    return EXIT_OK  # pragma: no cover  (execute_from_commandline exits)


def cmd_infra(args: argparse.Namespace) -> int:
    """Start, stop or inspect the local Kafka and Redis."""
    from stream import devinfra  # noqa: PLC0415

    env = dict(os.environ)
    if args.action == "run":
        command = list(args.run_command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            print("leadstream infra run: give a command after --", file=sys.stderr)
            return EXIT_USAGE
        return devinfra.run_with_infra(command, env=env, for_tests=args.for_tests, fresh=args.fresh)
    if args.action == "up":
        plan = devinfra.plan_infra(env, docker_reachable=False, for_tests=False)
        session = devinfra.start_local(plan, env, fresh=args.fresh)
        devinfra.release_lock(env)
        endpoints = {**devinfra.local_endpoints(env), **session.env}
        for var in (devinfra.KAFKA_ENV, devinfra.REDIS_ENV):
            value = env.get(var) or endpoints[var]
            print(f"export {var}={value}")
        return EXIT_OK
    if args.action == "down":
        rc = 0
        for service in ("redis", "kafka"):
            rc |= devinfra.run_script(service, "stop")
        return EXIT_OK if rc == 0 else EXIT_INFRA
    # status
    rc = 0
    for service in ("kafka", "redis"):
        rc |= devinfra.run_script(service, "status")
    return EXIT_OK if rc == 0 else EXIT_INFRA


def cmd_topics(args: argparse.Namespace) -> int:
    """Create or describe Leadstream's topics."""
    from stream.admin import ALL_TOPICS, describe_topics, ensure_topics  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    if args.action == "create":
        created = asyncio.run(ensure_topics(settings))
        print(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))
        return EXIT_OK
    states = asyncio.run(describe_topics(settings))
    specs = {settings.topic(spec.name): spec for spec in ALL_TOPICS}
    ok = True
    for state in states:
        spec = specs[state.name]
        if state.partitions is None:
            status = "MISSING"
            ok = False
        elif state.partitions != settings.topic_partitions:
            status = f"{state.partitions} partitions (expected {settings.topic_partitions})"
            ok = False
        else:
            status = f"{state.partitions} partitions"
        print(f"{state.name:40s} {spec.cleanup_policy:8s} {status}")
    return EXIT_OK if ok else EXIT_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything and show Leadstream working."""
    from stream import demo  # noqa: PLC0415

    return demo.run(duration=args.duration, events=args.events)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadstream",
        description="Real-time lead scoring on Kafka. Settings come from LEADSTREAM_* env vars.",
    )
    parser.add_argument("--version", action="version", version=f"leadstream {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = sub.add_parser(
        "worker",
        help="run a stream-processing worker",
        description=(
            "Run a Faust worker: consumes the source topics, keeps lead state in tables and "
            "publishes outputs. Connects to LEADSTREAM_KAFKA_BOOTSTRAP."
        ),
    )
    worker.add_argument("--loglevel", choices=["debug", "info", "warning", "error"])
    worker.add_argument("--web-port", type=int, help="port of the worker's web server")
    worker.add_argument("--data-dir", help="directory of the worker's RocksDB tables")
    worker.set_defaults(func=cmd_worker)

    infra = sub.add_parser(
        "infra",
        help="local Kafka and Redis for development",
        description=(
            "Start or stop a real Kafka broker (fetched from Maven Central) and redis-server "
            "on 127.0.0.1 without Docker. Services already configured with "
            "LEADSTREAM_KAFKA_BOOTSTRAP / LEADSTREAM_REDIS_URL are used as they are."
        ),
    )
    actions = infra.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start them and print the export lines for their env vars")
    up.add_argument("--fresh", action="store_true", help="start Kafka with empty storage")
    actions.add_parser("down", help="stop what the local scripts started")
    actions.add_parser("status", help="exit 0 when both are running")
    run = actions.add_parser(
        "run",
        help="run a command with Kafka and Redis up; stop what was started afterwards",
        description="leadstream infra run [--for-tests] [--fresh] -- COMMAND [ARGS...]",
    )
    run.add_argument("--fresh", action="store_true", help="start Kafka with empty storage")
    run.add_argument(
        "--for-tests",
        action="store_true",
        help="use testcontainers when a Docker engine answers and nothing is configured",
    )
    run.add_argument("run_command", nargs=argparse.REMAINDER, help="the command to run")
    infra.set_defaults(func=cmd_infra)

    topics_cmd = sub.add_parser(
        "topics",
        help="create or describe Leadstream's topics on the broker",
        description="create: make the missing topics; describe: list them and their state.",
    )
    topics_cmd.add_argument("action", choices=["create", "describe"])
    topics_cmd.set_defaults(func=cmd_topics)

    demo = sub.add_parser(
        "demo",
        help="start Kafka, Redis and a worker, stream traffic, show the results",
        description="The one-command demo (what `make demo` runs). Stop it with Ctrl-C.",
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--events", type=int, default=40, help="events to send per second")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:
        print(f"leadstream: invalid settings:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LeadstreamError as exc:
        from stream.errors import ConfigurationError  # noqa: PLC0415

        print(f"leadstream: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ConfigurationError) else EXIT_INFRA
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
