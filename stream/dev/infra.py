"""Development infrastructure: which Kafka and Redis to use, and starting the local ones.

Three ways to get a broker and a Redis, chosen per service in this order:

1. ``external``: ``LEADSTREAM_KAFKA_BOOTSTRAP`` / ``LEADSTREAM_REDIS_URL`` are set; use them,
   start nothing.
2. ``docker``: for tests only, when a Docker engine answers and nothing is configured; the test
   session starts testcontainers (see ``tests/conftest.py``).
3. ``local``: the real Apache Kafka and redis-server started without Docker by the scripts in
   ``deploy/local/`` (Kafka fetched from Maven Central into a cache outside the work tree).

``LEADSTREAM_INFRA=local|docker`` forces the choice for unconfigured services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream.errors import ConfigurationError, InfrastructureError

Source = Literal["external", "docker", "local"]

REPO_DIR = Path(__file__).resolve().parents[2]
LOCAL_DIR = REPO_DIR / "deploy" / "local"

KAFKA_ENV = "LEADSTREAM_KAFKA_BOOTSTRAP"
REDIS_ENV = "LEADSTREAM_REDIS_URL"
DEFAULT_LOCAL_KAFKA_PORT = 19092
DEFAULT_LOCAL_REDIS_PORT = 16379


@dataclass(frozen=True)
class InfraPlan:
    """Where each service comes from."""

    kafka: Source
    redis: Source


def plan_infra(env: Mapping[str, str], *, docker_reachable: bool, for_tests: bool) -> InfraPlan:
    """Decide where Kafka and Redis come from. Pure: the caller probes Docker."""
    forced = env.get("LEADSTREAM_INFRA", "").strip().lower()
    if forced not in {"", "local", "docker"}:
        raise ConfigurationError(f"LEADSTREAM_INFRA must be 'local' or 'docker', not {forced!r}")
    if forced == "docker" and not docker_reachable:
        raise ConfigurationError("LEADSTREAM_INFRA=docker but no Docker engine answers")
    if forced == "docker" and not for_tests:
        raise ConfigurationError(
            "LEADSTREAM_INFRA=docker is for tests; on a laptop use `docker compose up`"
        )

    def one(var: str) -> Source:
        if env.get(var, "").strip():
            return "external"
        if forced == "docker" or (forced == "" and for_tests and docker_reachable):
            return "docker"
        return "local"

    return InfraPlan(kafka=one(KAFKA_ENV), redis=one(REDIS_ENV))


def docker_reachable(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping (the client alone is not enough)."""
    try:
        import docker  # noqa: PLC0415  (optional: comes with testcontainers)
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure to reach the engine means "no engine"
        return False


def local_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """The env vars that point Leadstream at the locally started services."""
    kafka_port = int(env.get("LEADSTREAM_LOCAL_KAFKA_PORT", DEFAULT_LOCAL_KAFKA_PORT))
    redis_port = int(env.get("LEADSTREAM_LOCAL_REDIS_PORT", DEFAULT_LOCAL_REDIS_PORT))
    return {
        KAFKA_ENV: f"127.0.0.1:{kafka_port}",
        REDIS_ENV: f"redis://127.0.0.1:{redis_port}/0",
    }


def _script(service: str) -> Path:
    return LOCAL_DIR / f"{service}.sh"


def run_script(service: str, *args: str) -> int:
    """Run ``deploy/local/<service>.sh`` with ``args``; its messages go to stderr."""
    script = _script(service)
    if not script.exists():
        raise InfrastructureError(
            f"{script} is missing: the local infrastructure scripts ship with the source tree"
        )
    return subprocess.call(["bash", str(script), *args])


def service_running(service: str) -> bool:
    """True when our local ``service`` (kafka or redis) is up and ready."""
    script = _script(service)
    return (
        subprocess.call(
            ["bash", str(script), "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        == 0
    )


@dataclass
class LocalSession:
    """Local services started for one command, and stopped after it."""

    env: dict[str, str]
    started: list[str]

    def stop(self) -> None:
        for service in reversed(self.started):
            run_script(service, "stop")
        self.started.clear()


def _run_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("LEADSTREAM_RUN_DIR", str(REPO_DIR / ".run")))


def start_local(plan: InfraPlan, env: Mapping[str, str], *, fresh: bool) -> LocalSession:
    """Start the services the plan wants local; return the env vars to use them.

    A service that is already running is reused and left running afterwards, unless it was
    left behind by a run that was killed (its lock file names a dead process): then it is
    restarted and stopped at the end like one this session started.
    """
    run_dir = _run_dir(env)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / "session.pid"
    orphaned = False
    if lock.exists():
        try:
            previous = int(lock.read_text().strip() or "0")
            os.kill(previous, 0)
        except (ValueError, ProcessLookupError):
            orphaned = True
        except PermissionError:
            orphaned = False
    lock.write_text(str(os.getpid()))

    endpoints = local_endpoints(env)
    session = LocalSession(env={}, started=[])
    try:
        for service, source, var in (
            ("kafka", plan.kafka, KAFKA_ENV),
            ("redis", plan.redis, REDIS_ENV),
        ):
            if source != "local":
                continue
            reuse = service_running(service) and not orphaned
            args = ["start"] + (["--fresh"] if fresh and service == "kafka" and not reuse else [])
            if run_script(service, *args) != 0:
                raise InfrastructureError(
                    f"could not start the local {service} (messages above; logs under {run_dir})"
                )
            if not reuse:
                session.started.append(service)
            session.env[var] = endpoints[var]
    except BaseException:
        session.stop()
        lock.unlink(missing_ok=True)
        raise
    return session


def release_lock(env: Mapping[str, str]) -> None:
    (_run_dir(env) / "session.pid").unlink(missing_ok=True)


def run_with_infra(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    for_tests: bool,
    fresh: bool,
    probe_docker: Callable[[], bool] = docker_reachable,
) -> int:
    """Run ``command`` with Kafka and Redis available; stop what was started afterwards."""
    plan = plan_infra(env, docker_reachable=probe_docker(), for_tests=for_tests)
    print(f"[leadstream-infra] kafka: {plan.kafka}, redis: {plan.redis}", file=sys.stderr)
    session = start_local(plan, env, fresh=fresh)
    child_env = {**env, **session.env}
    proc = None
    try:
        proc = subprocess.Popen(list(command), env=child_env)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The child got the same Ctrl-C; give it time to shut down cleanly.
                proc.send_signal(signal.SIGINT)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        session.stop()
        release_lock(env)
