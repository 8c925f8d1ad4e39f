"""`leadstream infra`: start, stop or inspect the local Kafka and Redis for development."""

from __future__ import annotations

import argparse
import os

from stream.cli.common import EXIT_INFRA, EXIT_OK, EXIT_USAGE, Subparsers, examples, fail

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers) -> None:
    infra = sub.add_parser(
        "infra",
        **examples(
            "leadstream infra up",
            'eval "$(leadstream infra up)"   # and export the env vars it prints',
            "leadstream infra status",
        ),
        help="local Kafka and Redis for development",
        description=(
            "Start or stop a real Kafka broker (fetched from Maven Central) and redis-server "
            "on 127.0.0.1 without Docker. Services already configured with "
            "LEADSTREAM_KAFKA_BOOTSTRAP / LEADSTREAM_REDIS_URL are used as they are."
        ),
    )
    actions = infra.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start them and print the export lines for their env vars",
        **examples("leadstream infra up", "leadstream infra up --fresh"),
    )
    up.add_argument("--fresh", action="store_true", help="start Kafka with empty storage")
    actions.add_parser(
        "down", help="stop what the local scripts started", **examples("leadstream infra down")
    )
    actions.add_parser(
        "status",
        help="exit 0 when both are running",
        **examples("leadstream infra status   # exit 0 when both are running"),
    )
    run_with = actions.add_parser(
        "run",
        **examples(
            "leadstream infra run -- pytest tests/integration",
            "leadstream infra run --fresh --for-tests -- make unit",
        ),
        help="run a command with Kafka and Redis up; stop what was started afterwards",
        description="leadstream infra run [--for-tests] [--fresh] -- COMMAND [ARGS...]",
    )
    run_with.add_argument("--fresh", action="store_true", help="start Kafka with empty storage")
    run_with.add_argument(
        "--for-tests",
        action="store_true",
        help="use testcontainers when a Docker engine answers and nothing is configured",
    )
    run_with.add_argument("run_command", nargs=argparse.REMAINDER, help="the command to run")
    infra.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start, stop or inspect the local Kafka and Redis."""
    from stream.dev import infra as devinfra  # noqa: PLC0415

    env = dict(os.environ)
    if args.action == "run":
        command = list(args.run_command)
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            return fail("infra run", "give a command after --", EXIT_USAGE)
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
