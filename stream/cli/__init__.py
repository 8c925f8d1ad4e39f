"""The ``leadstream`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from stream import __version__
from stream.errors import LeadstreamError

if TYPE_CHECKING:
    from stream.simulate.traffic import Simulation

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INFRA = 4
EXIT_NOT_FOUND = 5


def cmd_worker(args: argparse.Namespace) -> int:
    """Start a Faust worker with the Leadstream agents."""
    import faust  # noqa: PLC0415

    from stream import logmask  # noqa: PLC0415
    from stream.app import create_app  # noqa: PLC0415
    from stream.faust_guards import local_stores as local_state  # noqa: PLC0415
    from stream.kafka.admin import ensure_topics  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415
    from stream.worker import native_memory  # noqa: PLC0415

    overrides: dict[str, object] = {}
    if args.web_port is not None:
        overrides["web_port"] = args.web_port
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    logmask.install(logmask.settings_secrets(settings))
    native_memory.limit_arenas()  # before RocksDB's threads start
    created = asyncio.run(ensure_topics(settings))
    if created:
        print(f"created topics: {', '.join(created)}", file=sys.stderr)
    app = create_app(settings)
    tabledir = Path(app.conf.tabledir)

    class Worker(faust.Worker):  # type: ignore[misc]  # Faust's classes carry no types
        async def on_execute(self) -> None:
            # logging is set up, the app and its tables not started yet
            local_state.open_stores(tabledir)
            await super().on_execute()

    worker = Worker(app, loglevel=args.loglevel or settings.log_level)
    # Faust's progress spinner (on at --loglevel warning and above) sets the root logger to
    # DEBUG, so every debug call in Faust and aiokafka builds (and masks) a record: about a
    # third of a busy worker's time. Without it the root logger keeps the chosen level.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        clean = stop.code in (None, 0) and worker.crash_reason is None
        local_state.closed(tabledir, clean=clean)
        raise
    return EXIT_OK  # pragma: no cover  (execute_from_commandline exits)


def cmd_infra(args: argparse.Namespace) -> int:
    """Start, stop or inspect the local Kafka and Redis."""
    from stream.dev import infra as devinfra  # noqa: PLC0415

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
    from stream.kafka.admin import ALL_TOPICS, describe_topics, ensure_topics  # noqa: PLC0415
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


def cmd_redis(args: argparse.Namespace) -> int:
    """Rebuild the Redis read model from the topics."""
    from stream.readmodel.projector import rebuild  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    stats = asyncio.run(rebuild(settings, clear=not args.keep))
    print(
        f"rebuilt the read model from {stats.records} record(s)"
        + (f" after deleting {stats.deleted} key(s)" if stats.deleted else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Start everything and show Leadstream working."""
    from stream.dev import demo  # noqa: PLC0415

    return demo.run(
        duration=args.duration,
        leads=args.leads,
        days=args.days,
        speed=args.speed,
        seed=args.seed,
        web_port=args.web_port,
    )


def _parse_speed(text: str) -> float:
    """``86400`` (simulated seconds per wall second) or a duration per second: ``1d``, ``6h``."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a duration") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("the speed must be positive")
    return value


def _parse_start(text: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Generate persona traffic; write JSONL, send it to Kafka, report how models rank it."""
    import time  # noqa: PLC0415

    from stream.simulate import sinks as simulate_sinks  # noqa: PLC0415
    from stream.simulate import traffic as simulate  # noqa: PLC0415

    if not (args.out or args.kafka or args.report):
        print("leadstream simulate: give --out FILE, --kafka and/or --report", file=sys.stderr)
        return EXIT_USAGE
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
        )
    except ValueError as exc:
        print(f"leadstream simulate: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
    truth = args.truth or (
        simulate_sinks.truth_path_for(args.out) if args.out and args.out != "-" else None
    )
    try:
        if args.out:
            simulate_sinks.write_jsonl(sim.deliveries, args.out)
            print(f"wrote {len(sim.deliveries)} records to {args.out}", file=sys.stderr)
        if truth is not None:
            simulate_sinks.write_truth(sim.truth, truth)
            print(f"wrote the ground truth to {truth}", file=sys.stderr)
    except OSError as exc:
        print(f"leadstream simulate: cannot write: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.report:
        code = _simulation_report(sim, args.models, to_stderr=args.out == "-")
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


def _simulation_report(sim: Simulation, models_path: str | None, *, to_stderr: bool) -> int:
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415
    from stream.simulate.report import build_report  # noqa: PLC0415

    try:
        models = load_model_file(models_path) if models_path else load_default_models()
    except ModelFileError as exc:
        print(f"leadstream simulate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(build_report(sim, models).render(), file=sys.stderr if to_stderr else sys.stdout)
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    """Check a scoring-model file, or print its models as tables."""
    from stream.model_files import load_default_models, load_model_file  # noqa: PLC0415
    from stream.scoring import ModelFileError, describe_model  # noqa: PLC0415

    if args.action == "diff":
        return _rules_diff(args)
    if args.new_file:
        print(f"leadstream rules {args.action}: give one FILE", file=sys.stderr)
        return EXIT_USAGE
    try:
        models = load_model_file(args.file) if args.file else load_default_models()
    except ModelFileError as exc:
        print(f"leadstream rules: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    source = args.file or "the default models"
    chosen = list(models.models)
    if args.model:
        chosen = [m for m in chosen if m.id == args.model]
        if not chosen:
            print(
                f"leadstream rules: {source} has no model {args.model!r} "
                f"(models: {', '.join(models.ids)})",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if args.action == "validate":
        print(f"{source}: valid, {len(models)} model{'s' if len(models) > 1 else ''}")
        for model in chosen:
            print(
                f"  {model.id} {model.version}: {len(model.fit)} fit rules, "
                f"{len(model.engagement)} engagement rules, "
                f"decay groups {', '.join(model.decay)}"
            )
        return EXIT_OK
    print("\n\n".join(describe_model(model) for model in chosen))
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Print a lead's score rule by rule and its stage history, from a running worker."""
    from stream.cli.explain import LeadNotFoundError, fetch_lead, render  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    token = args.token
    if token is None:
        tokens = Settings().auth_tokens
        token = tokens[0].get_secret_value() if tokens else None
    try:
        document = fetch_lead(args.url, args.lead_id, token)
    except LeadNotFoundError as exc:
        print(f"leadstream explain: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(render(document))
    return EXIT_OK


def cmd_forget(args: argparse.Namespace) -> int:
    """Send a lead_erased event for a lead to the profiles topic."""
    from stream.cli.forget import forget  # noqa: PLC0415
    from stream.settings import Settings  # noqa: PLC0415

    settings = Settings()
    try:
        event, topic = asyncio.run(forget(settings, args.lead_id, args.reason))
    except ValidationError as exc:
        if any(error["loc"][:1] == ("lead_id",) for error in exc.errors()):
            print(f"leadstream forget: {args.lead_id!r} is not a lead id", file=sys.stderr)
            return EXIT_USAGE
        raise
    print(f"sent lead_erased {event.event_id} for {event.lead_id} to {topic}")
    return EXIT_OK


def _add_lead_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = sub.add_parser(
        "explain",
        help="a lead's score rule by rule and its stage history, from a running worker",
        description=(
            "Ask a running worker (GET /leads/LEAD_ID) for a lead's live score under each model "
            "and print its rules' points and stage history as tables. The token is --token, "
            "else the first of LEADSTREAM_AUTH_TOKENS. Exit 5 when the worker knows no such "
            "lead, 4 when it cannot be reached, 3 when it refuses the token."
        ),
    )
    explain.add_argument("lead_id", metavar="LEAD_ID")
    explain.add_argument(
        "--url", default="http://127.0.0.1:6066", help="the worker (http://127.0.0.1:6066)"
    )
    explain.add_argument("--token", help="bearer token (default: LEADSTREAM_AUTH_TOKENS' first)")
    explain.set_defaults(func=cmd_explain)

    forget = sub.add_parser(
        "forget",
        help="erase a lead: send a lead_erased event to the profiles topic",
        description=(
            "Send a lead_erased event (fresh event id) for LEAD_ID to the profiles topic; the "
            "worker owning the lead deletes its state and publishes the erasure to the scores "
            "and stage-changes topics. Exit 4 when Kafka cannot be reached."
        ),
    )
    forget.add_argument("lead_id", metavar="LEAD_ID")
    forget.add_argument("--reason", help="why (kept with the event), e.g. 'GDPR request 4411'")
    forget.set_defaults(func=cmd_forget)


def _progress_bar(what: str) -> Callable[[int, int], None]:
    """``report(done, total)``: a plain progress line on stderr, at most one a second, and one
    at the end."""
    import time  # noqa: PLC0415

    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= 1.0:
            last[0] = now
            print(f"{what} {done}/{total} ({100 * done / max(total, 1):.0f}%)", file=sys.stderr)

    return report


def _progress(what: str, total: int) -> Callable[[int], None]:
    bar = _progress_bar(what)
    return lambda done: bar(done, total)


def _rules_diff(args: argparse.Namespace) -> int:
    from stream.model_files import load_model_file  # noqa: PLC0415
    from stream.offline import diff as rules_diff  # noqa: PLC0415
    from stream.offline.history import group_by_lead  # noqa: PLC0415
    from stream.scoring import ModelFileError  # noqa: PLC0415
    from stream.simulate.traffic import SimConfig, generate  # noqa: PLC0415

    if not (args.file and args.new_file):
        print("leadstream rules diff: give OLD and NEW model files", file=sys.stderr)
        return EXIT_USAGE
    try:
        old, new = load_model_file(args.file), load_model_file(args.new_file)
    except ModelFileError as exc:
        print(f"leadstream rules: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.events:
        try:
            events, bad = rules_diff.read_events(args.events)
        except OSError as exc:
            print(f"leadstream rules diff: cannot read {args.events}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if not events:
            print(f"leadstream rules diff: no events in {args.events}", file=sys.stderr)
            return EXIT_CONFIG
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
    bars = {name: _progress(f"scoring with {name}", len(by_lead)) for name in ("old", "new")}
    diffs = rules_diff.diff_models(by_lead, old, new, at=at, progress=lambda name, n: bars[name](n))
    print(rules_diff.render(diffs, old, new, source=f"{source}, read at {at.isoformat()}"))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
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
        print(f"leadstream replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    same = replay.same_versions(new, live)
    if same:
        print(
            f"leadstream replay: {args.model} has the live version of {', '.join(same)} "
            f"({live_path or 'the default models'}); a replay must carry a new version",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    since = None if args.since == "earliest" else _parse_start(args.since)
    stats = replay.ReplayStats()

    events = asyncio.run(
        replay.read_history(settings, since=since, stats=stats, progress=_progress_bar("read"))
    )
    records = replay.rescore(events, new, now=datetime.now(UTC), stats=stats)
    scores_topic, changes_topic = asyncio.run(
        replay.publish(settings, records, live=args.publish, progress=_progress_bar("published"))
    )
    versions = ", ".join(f"{m.id} {m.version}" for m in new.models)
    print(
        f"replayed {stats.events} events ({stats.undecodable} undecodable records skipped) of "
        f"{stats.leads} leads under {versions}: {stats.scores} scores to {scores_topic}, "
        f"{stats.stage_changes} stage changes to {changes_topic}"
    )
    return EXIT_OK


def _add_replay_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
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
    replay.set_defaults(func=cmd_replay)


def _add_demo_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="start Kafka, Redis and a worker, stream traffic, show the results",
        description=(
            "The one-command demo (what `make demo` runs): Kafka and Redis (local, or the "
            "configured ones), a worker with its dashboard, and the persona simulator's traffic "
            "from DAYS ago until now, paced by --speed; prints stage changes, events per second "
            "and the top leads, and the dashboard's URL with a token made for the run. Stop it "
            "with Ctrl-C."
        ),
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--leads", type=int, default=200, help="people to simulate (200)")
    demo.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    demo.add_argument(
        "--speed",
        type=_parse_speed,
        metavar="X",
        help="simulated seconds per second (86400 or 1d: a day per second); "
        "default: the span in about 150 seconds",
    )
    demo.add_argument("--seed", type=int, help="simulation seed (default: a new one each run)")
    demo.add_argument("--web-port", type=int, help="the worker's web port (6066, or a free one)")
    demo.set_defaults(func=cmd_demo)


def _add_redis_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    redis_cmd = sub.add_parser(
        "redis",
        help="maintain the Redis read model",
        description=(
            "rebuild: delete the read model and replay it from the compacted scores topic and "
            "the stage-changes topic, from their first offsets to the end offsets taken at the "
            "start, with a progress bar. Exit 4 when Kafka or Redis is unreachable."
        ),
    )
    redis_cmd.add_argument("action", choices=["rebuild"])
    redis_cmd.add_argument(
        "--keep", action="store_true", help="apply over the current read model without deleting it"
    )
    redis_cmd.set_defaults(func=cmd_redis)


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

    _add_demo_parser(sub)

    simulate = sub.add_parser(
        "simulate",
        help="generate realistic lead traffic: to Kafka, to JSONL, or scored in a report",
        description=(
            "Generate traffic from personas (ideal buyer, researcher, student, competitor, "
            "churned customer, email-scanner and web-scraper bots, anonymous visitor who later "
            "fills a form) with a ground-truth label per lead, late, duplicate and malformed "
            "deliveries. Deterministic for a seed. --out writes JSONL (and the truth CSV next "
            "to it), --kafka sends to the source topics (LEADSTREAM_* settings), --report "
            "scores the traffic with the models and prints the AUC per model."
        ),
    )
    simulate.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    simulate.add_argument("--leads", type=int, default=500, help="people to simulate (500)")
    simulate.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    simulate.add_argument(
        "--start", type=_parse_start, help="start of simulated time, ISO 8601 (2025-06-02)"
    )
    simulate.add_argument(
        "--ends-now",
        action="store_true",
        help="end simulated time at the current time instead (the only use of the clock)",
    )
    simulate.add_argument("--duplicate-rate", type=float, default=0.02, metavar="SHARE")
    simulate.add_argument("--out-of-order-rate", type=float, default=0.05, metavar="SHARE")
    simulate.add_argument("--malformed-rate", type=float, default=0.01, metavar="SHARE")
    simulate.add_argument("--out", metavar="FILE", help="write JSONL here (- for stdout)")
    simulate.add_argument("--truth", metavar="FILE", help="write the ground truth CSV here")
    simulate.add_argument("--kafka", action="store_true", help="send to the Kafka topics")
    simulate.add_argument(
        "--rate", type=float, metavar="N", help="with --kafka: at most N records per second"
    )
    simulate.add_argument(
        "--speed",
        type=_parse_speed,
        metavar="X",
        help="with --kafka: pace by simulated time, X simulated seconds per second "
        "(86400 or 1d: a simulated day per second)",
    )
    simulate.add_argument("--report", action="store_true", help="print AUC and persona table")
    simulate.add_argument("--models", metavar="FILE", help="model file for --report")
    simulate.set_defaults(func=cmd_simulate)

    _add_redis_parser(sub)
    _add_rules_parser(sub)
    _add_lead_parsers(sub)
    _add_replay_parser(sub)
    _add_calibrate_parser(sub)
    _add_bench_parser(sub)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
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


def _add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure throughput, latency, recovery and state size on the real broker",
        description=(
            "Load N simulated records into fresh topics on LEADSTREAM_KAFKA_BOOTSTRAP and "
            "measure, in the same run on the same data: a raw aiokafka decode loop, a bare "
            "Faust agent, a naive one-table-write-per-event agent and the full pipeline "
            "(events/s and ratios); event -> score and stage-change latency at fixed offered "
            "loads; recovery of a worker's state after a kill; bytes per lead; one vs two "
            "workers. Prints Markdown tables and writes the figures as JSON. Its topics and "
            "data are deleted at the end."
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
    bench.set_defaults(func=cmd_bench)


def _add_calibrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from stream.cli.calibrate import add_parser  # noqa: PLC0415  (pandas only when run)

    add_parser(sub)


def _add_rules_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser(
        "rules",
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
    rules.add_argument("--model", metavar="ID", help="only this model of the file")
    rules.add_argument(
        "--events", metavar="JSONL", help="diff: score these events instead of a simulation"
    )
    rules.add_argument("--seed", type=int, default=42, help="diff: simulation seed (42)")
    rules.add_argument("--leads", type=int, default=300, help="diff: simulated leads (300)")
    rules.add_argument("--days", type=float, default=30.0, help="diff: simulated days (30)")
    rules.set_defaults(func=cmd_rules)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands of ``parser`` by name (empty when it has none)."""
    # argparse has no public way to list a parser's sub-commands: its actions are the only record
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


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
