"""Test-wide fixtures: the real Kafka broker and Redis, and unique names per test.

Where the services come from (see ``stream.dev.infra``):
- ``LEADSTREAM_KAFKA_BOOTSTRAP`` / ``LEADSTREAM_REDIS_URL`` set (``make test`` sets them after
  starting the local broker and Redis): those are used.
- otherwise, when a Docker engine answers: testcontainers start them for the session.
- otherwise the integration tests skip with the reason, except in CI (``CI=true``) where a
  missing service fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
from hypothesis import settings as hypothesis_settings

from stream.dev import infra as devinfra
from stream.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# In CI, property tests draw the same examples on every run: a red build is reproducible.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    hypothesis_settings.load_profile("ci")


def _test_module(name: str) -> ModuleType:
    """tests/<name>.py (or the package tests/<name>/), registered as the module ``name`` for the
    test modules (they are run with ``--import-mode=importlib``, so the tests folder is not on
    the import path)."""
    package = Path(__file__).with_name(name)
    path = package / "__init__.py" if package.is_dir() else package.with_suffix(".py")
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package)] if package.is_dir() else None
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


make_settings = _test_module("factories").make_settings
_test_module("webworker")  # a worker with its web server, for the collector's tests
_test_module("collector_http")  # the collector served over HTTP with a list for a sink
_test_module("connect_kit")  # connector processes and their topics, for the connector tests
_test_module("crm_fakes")  # local servers enforcing the CRMs' documented APIs


def _unavailable(what: str) -> None:
    message = (
        f"{what} is not available: set {devinfra.KAFKA_ENV} / {devinfra.REDIS_ENV}, "
        "run the suite with `make test` (starts the local broker and Redis), or start Docker"
    )
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def _containers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def infra_plan() -> devinfra.InfraPlan:
    return devinfra.plan_infra(
        os.environ, docker_reachable=devinfra.docker_reachable(), for_tests=True
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(infra_plan: devinfra.InfraPlan, _containers: ExitStack) -> str:
    """host:port of a real Kafka broker."""
    if infra_plan.kafka == "docker":
        from testcontainers.kafka import KafkaContainer

        container = _containers.enter_context(KafkaContainer().with_kraft())
        return str(container.get_bootstrap_server())
    bootstrap = os.environ.get(devinfra.KAFKA_ENV, "")
    if not bootstrap:
        _unavailable("Kafka")
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        _unavailable(f"Kafka at {bootstrap}")
    return bootstrap


@pytest.fixture(scope="session")
def redis_url(infra_plan: devinfra.InfraPlan, _containers: ExitStack) -> str:
    """URL of a real Redis server."""
    if infra_plan.redis == "docker":
        from testcontainers.redis import RedisContainer

        container = _containers.enter_context(RedisContainer("redis:7-alpine"))
        host = container.get_container_host_ip()
        return f"redis://{host}:{container.get_exposed_port(6379)}/0"
    url = os.environ.get(devinfra.REDIS_ENV, "")
    if not url:
        _unavailable("Redis")
    parsed = urlparse(url)
    if not _reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        _unavailable(f"Redis at {url}")
    return url


@pytest.fixture
def unique() -> str:
    """A short unique token for topic, group and app names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings_factory(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path
) -> Callable[..., Settings]:
    """``settings_factory(**overrides)``: `make_settings` on the run's broker, tables in tmp_path.

    The Redis URL is the run's too when the test uses Redis (asks for ``redis_url``).
    """
    services = {"kafka_bootstrap": kafka_bootstrap}
    if "redis_url" in request.fixturenames:
        services["redis_url"] = request.getfixturevalue("redis_url")

    def make(**overrides: Any) -> Settings:
        return make_settings(tmp_path, **{**services, **overrides})

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.config.get_terminal_writer().line(
            "leadstream: no tests were collected; that is a failure, not a pass", red=True
        )


# ----------------------------------------------------------------------------- a served worker


class ServedWorker:
    """A `leadstream worker` process with its web server on a free port."""

    def __init__(self, settings: Any, env: dict[str, str], log: Path, token: str) -> None:
        self.settings = settings
        self.env = env
        self.log = log
        self.token = token
        self.base = f"http://127.0.0.1:{env['LEADSTREAM_WEB_PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "--loglevel", "info"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the worker did not get ready:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_worker(kafka_bootstrap: str, redis_url: str, tmp: Path) -> ServedWorker:
    """A worker's settings and environment (unique app id, topics and port); not started."""
    token = uuid.uuid4().hex
    settings = make_settings(
        tmp,
        kafka_bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        store="memory",
        web_enabled=True,
        web_port=_free_port(),
    )
    env = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADSTREAM_REDIS_URL": redis_url,
        "LEADSTREAM_APP_ID": settings.app_id,
        "LEADSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "LEADSTREAM_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "LEADSTREAM_DATA_DIR": str(settings.data_dir),
        "LEADSTREAM_STORE": settings.store,
        "LEADSTREAM_WEB_PORT": str(settings.web_port),
        "LEADSTREAM_AUTH_TOKENS": token,
        "LEADSTREAM_AUTH_DISABLED": "false",
    }
    return ServedWorker(settings, env, tmp / "worker.log", token)


@pytest.fixture(scope="module")
def served_worker(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWorker]:
    """A running worker (processor, projector, read API) on the real broker and Redis."""
    worker = launch_worker(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("worker"))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker_launcher(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Iterator[Any]:
    """``launch(redis_url=None) -> ServedWorker`` (not started); stopped after the test."""
    launched: list[ServedWorker] = []

    def launch(redis: str | None = None) -> ServedWorker:
        worker = launch_worker(kafka_bootstrap, redis or redis_url, tmp_path)
        launched.append(worker)
        return worker

    yield launch
    for worker in launched:
        worker.stop()


async def _produce_events(settings: Any, events: Any) -> None:
    from aiokafka import AIOKafkaProducer

    from schemas import codec
    from schemas.topics import topic_for

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                settings.topic(topic_for(event)),
                key=codec.event_key(event),
                value=codec.encode(event),
            )
    finally:
        await producer.stop()


@pytest.fixture
def produce_events() -> Any:
    """``await produce_events(settings, events)``: contract events onto their own topics."""
    return _produce_events


def _crm_fake(module: str, name: str) -> Any:
    """A fixture serving the local stand-in `crm_fakes.<module>.<name>`, one per test."""

    async def serve() -> AsyncIterator[Any]:
        fake = getattr(importlib.import_module(f"crm_fakes.{module}"), name)()
        await fake.serve()
        yield fake
        await fake.close()

    return pytest.fixture(serve, name=f"{module}_fake")


hubspot_fake = _crm_fake("hubspot", "HubspotFake")
salesforce_fake = _crm_fake("salesforce", "SalesforceFake")
mautic_fake = _crm_fake("mautic", "MauticFake")
