"""The one-command demo: local Kafka and Redis, a worker, simulated traffic, a live summary.

``leadstream demo`` (what ``make demo`` runs) starts the local broker and Redis unless
``LEADSTREAM_KAFKA_BOOTSTRAP`` / ``LEADSTREAM_REDIS_URL`` point at running ones, starts a
worker process with its web server (the dashboard, behind a random bearer token made for the
run) and streams the persona simulator's traffic (``stream.simulate.traffic``) into the source
topics.

Simulated time starts ``days`` before now and is paced at ``speed`` simulated seconds per wall
second, so a month passes in a few minutes, decay shows, and simulated time catches up with the
present as the traffic ends (events dated more than a day ahead would be rejected). While it
runs it prints the stage changes as they happen and, every few seconds, events per second and
the top leads by score. When the traffic is over the worker and the dashboard stay up until
Ctrl-C (or ``--duration``), which stops everything the demo started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import codec
from schemas.outputs import ScoreUpdated, StageChanged
from stream.dev import infra as devinfra
from stream.kafka import clients, topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings
from stream.simulate.sinks import send_to_kafka, wall_offsets
from stream.simulate.traffic import SimConfig, Simulation, generate

DEFAULT_LEADS = 200
DEFAULT_DAYS = 30.0
DEFAULT_WALL_SECONDS = 150.0
"""With the default speed, the simulated span streams in about this many wall seconds."""
DEFAULT_WEB_PORT = 6066
SUMMARY_EVERY = 5.0
TOP = 5


def default_speed(days: float, wall_seconds: float = DEFAULT_WALL_SECONDS) -> float:
    """Simulated seconds per wall second that stream `days` in about `wall_seconds`."""
    return days * 86400.0 / wall_seconds


def free_port(preferred: int | None = DEFAULT_WEB_PORT) -> int:
    """`preferred` when nothing listens on it, else a port the system picks."""
    candidates = [preferred, 0] if preferred else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port")  # pragma: no cover


def dashboard_url(port: int, token: str) -> str:
    """The dashboard's address, the token in the fragment (browsers never send it)."""
    return f"http://127.0.0.1:{port}/dashboard#token={token}"


@dataclass
class Summary:
    """What the demo has seen so far."""

    sent: int = 0
    outputs: int = 0
    stage_changes: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)

    def see(self, topic: str, value: bytes, model: str) -> StageChanged | None:
        """Track a score record; return a stage change to print."""
        self.outputs += 1
        if topic.endswith(topics.SCORES.name):
            score = codec.decode_score(value)
            if isinstance(score, ScoreUpdated) and score.model == model:
                self.totals[score.lead_id] = score.total
                self.stages[score.lead_id] = score.stage.value
            return None
        change = codec.decode_stage_change(value)
        if not isinstance(change, StageChanged) or change.from_stage is None:
            return None  # erasures, and the first stage of a new lead
        self.stage_changes += 1
        return change

    def top(self, n: int = TOP) -> list[tuple[str, float, str]]:
        best = sorted(self.totals.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [(lead, total, self.stages.get(lead, "?")) for lead, total in best]


def _change_line(change: StageChanged) -> str:
    at = change.occurred_at.strftime("%Y-%m-%d %H:%M")
    source = change.from_stage.value if change.from_stage is not None else "-"
    return (
        f"  {at}  {change.lead_id:20s} [{change.model}] {source} -> "
        f"{change.to_stage.value}: {change.reason}"
    )


async def _stream(
    settings: Settings,
    sim: Simulation,
    due: list[float] | None,
    deadline: float | None,
    *,
    top_model: str = "b2b",
) -> Summary:
    consumer = await clients.consumer(
        settings,
        settings.topic(topics.SCORES.name),
        settings.topic(topics.STAGE_CHANGES.name),
        role="demo",
        auto_offset_reset="latest",
        group_id=None,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    summary = Summary()

    def progress(sent: int) -> None:
        summary.sent = sent

    total = len(sim.deliveries)
    sender = asyncio.create_task(
        send_to_kafka(
            sim.deliveries,
            settings,
            due=due,
            create_topics=False,
            progress=progress,
            progress_every=0.5,
        )
    )
    started = last = time.monotonic()
    last_sent = 0
    announced = False
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    change = summary.see(record.topic, record.value, top_model)
                    if change is not None:
                        print(_change_line(change), flush=True)
            if sender.done() and not announced:
                sender.result()  # an outage of the broker surfaces here
                summary.sent = total
                announced = True
                print(
                    f"\nThe simulation is over ({total} records sent). The worker and the "
                    "dashboard stay up"
                    + (" until the end of --duration." if deadline else "; Ctrl-C stops them.\n"),
                    flush=True,
                )
            now = time.monotonic()
            if now - last >= SUMMARY_EVERY:
                rate = (summary.sent - last_sent) / (now - last)
                last, last_sent = now, summary.sent
                top = ", ".join(f"{lead} {t:.0f} ({stage})" for lead, t, stage in summary.top())
                print(
                    f"[{now - started:6.1f}s] sent {summary.sent}/{total} ({rate:.0f} ev/s)  "
                    f"outputs {summary.outputs}  stage changes {summary.stage_changes}  "
                    f"top {top_model}: {top or '-'}",
                    flush=True,
                )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if not sender.done():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await consumer.stop()
    return summary


def _start_worker(env: Mapping[str, str], data_dir: str, log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker", "--data-dir", data_dir],
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the demo stops it, after the traffic has stopped
        )


def _wait_ready(worker: subprocess.Popen[bytes], port: int, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(
    *,
    duration: float | None,
    leads: int = DEFAULT_LEADS,
    days: float = DEFAULT_DAYS,
    speed: float | None = None,
    seed: int | None = None,
    web_port: int | None = None,
) -> int:
    """Run the demo; returns a process exit code (0, or 1 when the worker published nothing)."""
    began = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the demo as Ctrl-C does
    env = dict(os.environ)
    plan = devinfra.plan_infra(env, docker_reachable=False, for_tests=False)
    session = devinfra.start_local(plan, env, fresh=False)
    env.update(session.env)
    token = secrets.token_urlsafe(24)
    port = web_port or free_port(int(env.get("LEADSTREAM_WEB_PORT", DEFAULT_WEB_PORT)))
    env.setdefault("LEADSTREAM_APP_ID", "leadstream-demo")
    env.update(
        LEADSTREAM_WEB_ENABLED="true",
        LEADSTREAM_WEB_PORT=str(port),
        LEADSTREAM_AUTH_TOKENS=token,
        LEADSTREAM_AUTH_DISABLED="false",
    )
    settings = Settings(
        kafka_bootstrap=env[devinfra.KAFKA_ENV],
        redis_url=env[devinfra.REDIS_ENV],
        topic_prefix=env.get("LEADSTREAM_TOPIC_PREFIX", ""),
        topic_partitions=int(env.get("LEADSTREAM_TOPIC_PARTITIONS", "8")),
    )
    try:
        asyncio.run(ensure_topics(settings))
        with tempfile.TemporaryDirectory(prefix="leadstream-demo-") as data_dir:
            run_dir = Path(env.get("LEADSTREAM_RUN_DIR", devinfra.REPO_DIR / ".run"))
            log_path = run_dir / "demo-worker.log"
            worker = _start_worker(env, data_dir, log_path)
            try:
                print(f"Worker started (pid {worker.pid}); its log: {log_path}", flush=True)
                if not _wait_ready(worker, port):
                    print(f"The worker did not get ready; see {log_path}", file=sys.stderr)
                    return 1
                print(f"Dashboard: {dashboard_url(port, token)}", flush=True)
                deadline = None if duration is None else began + duration
                return _traffic(settings, deadline, leads=leads, days=days, speed=speed, seed=seed)
            finally:
                _stop_worker(worker)
    except KeyboardInterrupt:
        print("\nStopping the demo.")
        return 0
    finally:
        session.stop()
        devinfra.release_lock(env)


def _traffic(
    settings: Settings,
    deadline: float | None,
    *,
    leads: int,
    days: float,
    speed: float | None,
    seed: int | None,
) -> int:
    # Simulated time ends now: every event is in the past when it is sent.
    start = datetime.now(UTC) - timedelta(days=days)
    sim = generate(
        SimConfig(
            seed=random.SystemRandom().randrange(2**31) if seed is None else seed,
            leads=leads,
            days=days,
            start=start,
        )
    )
    pace = speed or default_speed(days)
    due = wall_offsets([note.at for note in sim.notes], speed=pace)
    span = max(due or [0.0])
    print(
        f"Streaming {len(sim.deliveries)} records from {len(sim.truth)} simulated leads over "
        f"{days:g} days from {start:%Y-%m-%d %H:%M} UTC, {pace / 3600:.1f} simulated hours per "
        f"second (about {span:.0f}s); Ctrl-C stops.\n",
        flush=True,
    )
    summary = asyncio.run(_stream(settings, sim, due, deadline))
    signal.signal(signal.SIGTERM, _interrupt)  # asyncio put the default handler back
    print(
        f"\nDemo stopped: sent {summary.sent} records; the worker published {summary.outputs} "
        f"score and stage records ({summary.stage_changes} stage changes)."
    )
    return 0 if summary.outputs > 0 else 1
