"""A crash of a vital Faust service names it and stops the worker (stream.faust_guards.vital),
checked on Faust's own services of an app (not started) under a root service standing for the
worker, and on a process whose stop hangs."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import faust
import pytest
from mode import OneForOneSupervisor, Service
from mode.threads import ServiceThread

from stream import faust_guards
from stream.faust_guards.vital import EXIT_STATUS, VITAL, vital_role

ROLE_LINE = "Faust's Fetcher (the Kafka fetch loop) crashed (RuntimeError('fetch failed'))"


class Root(Service):
    """Stands for the ``mode.Worker``: the root of the app's service tree."""


def _app_under_root(name: str) -> tuple[faust.App, Root]:
    faust_guards.install()
    app = faust.App(name, broker="kafka://localhost:1", store="memory://")
    root = Root()
    app.beacon.reattach(root.beacon)  # as ``faust.Worker`` does when it starts the app
    return app, root


def _vital_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stream.faust_guards.vital"]


def test_every_vital_class_is_a_mode_service_and_guarded() -> None:
    faust_guards.install()
    for cls, _role in VITAL:
        assert issubclass(cls, Service), cls
        # mode's, or its thread service's (which also fails the thread's start, then calls it)
        assert getattr(cls.crash, "__wrapped__", None) in (Service.crash, ServiceThread.crash)


def test_the_services_of_an_app_are_the_vital_classes() -> None:
    app, _root = _app_under_root("vital-classes")
    vital = [
        app._fetcher,
        app.consumer,
        app.consumer._thread,
        app.topics,
        app.producer,
        app.producer.buffer,
        app.tables,
        app.tables.recovery,
    ]
    assert all(vital_role(service) is not None for service in vital)
    assert vital_role(app.monitor) is None
    assert vital_role(app.agents) is None
    assert vital_role(app) is None


async def test_a_crash_of_the_fetcher_is_named_and_crashes_the_tree_to_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, root = _app_under_root("vital-fetcher")
    fetcher = app._fetcher
    error = RuntimeError("fetch failed")
    with caplog.at_level(logging.CRITICAL, logger="stream.faust_guards.vital"):
        await fetcher.crash(error)
    assert _vital_lines(caplog) == [f"{ROLE_LINE}: the worker stops"]
    assert fetcher.crashed and app.consumer.crashed and app.crashed
    assert root.crashed and root.crash_reason is error  # the worker's wait ends: it stops


async def test_a_crash_mode_leaves_to_a_supervisor_still_crashes_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mode's ``crash`` of a supervised service only wakes the supervisor (which restarts it)."""
    app, root = _app_under_root("vital-supervised")
    buffer = app.producer.buffer
    buffer.supervisor = OneForOneSupervisor()
    with caplog.at_level(logging.CRITICAL, logger="stream.faust_guards.vital"):
        await buffer.crash(OSError("send failed"))
    assert _vital_lines(caplog) == [
        "Faust's ProducerBuffer (the producer's send buffer) crashed (OSError('send failed')): "
        "the worker stops"
    ]
    assert not app.crashed  # mode's walk stopped at the supervisor
    assert root.crashed


async def test_a_cancellation_and_a_statistics_service_are_left_to_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Faust's fetch loop reports a cancellation during a rebalance with ``crash``; the monitor
    keeps statistics only."""
    app, _root = _app_under_root("vital-cancelled")
    with caplog.at_level(logging.DEBUG, logger="stream.faust_guards.vital"):
        await app._fetcher.crash(asyncio.CancelledError())
        await app.monitor.crash(RuntimeError("sampler failed"))
    assert _vital_lines(caplog) == []


async def test_a_second_crash_of_a_crashed_service_is_not_reported_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _root = _app_under_root("vital-twice")
    with caplog.at_level(logging.CRITICAL, logger="stream.faust_guards.vital"):
        await app._fetcher.crash(RuntimeError("fetch failed"))
        await app._fetcher.crash(RuntimeError("again"))
    assert _vital_lines(caplog) == [f"{ROLE_LINE}: the worker stops"]


_PROCESS = """
import asyncio, logging, sys, time
import faust
from mode import Service
from stream import faust_guards
from stream.faust_guards import vital

logging.basicConfig(level=logging.INFO)
faust_guards.install()
vital.exit_within(0.5)
app = faust.App("vital-process", broker="kafka://localhost:1", store="memory://")
root = Service()
app.beacon.reattach(root.beacon)

async def main():
    await app._fetcher.crash(RuntimeError("fetch failed"))
    assert root.crashed
    if sys.argv[1] == "hang":
        time.sleep(120)  # a stop that never ends: the event loop does not come back

asyncio.run(main())
print("stopped in time")
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_PROCESS), mode],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_a_worker_whose_stop_hangs_after_a_vital_crash_exits_with_a_failure() -> None:
    done = _run("hang")
    assert done.returncode == EXIT_STATUS, done.stderr[-3000:]
    assert f"{ROLE_LINE}: the worker stops" in done.stderr
    assert (
        "the worker did not stop within 0.5 s of the crash of Faust's Fetcher "
        "(RuntimeError('fetch failed')): it exits now"
    ) in done.stderr
    assert "stopped in time" not in done.stdout


def test_a_worker_that_stops_in_time_ends_as_it_would_without_the_bound() -> None:
    done = _run("stop")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped in time" in done.stdout
    assert "did not stop within" not in done.stderr
