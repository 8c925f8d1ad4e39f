"""A crash of a Faust service the worker cannot work without stops the worker: one line names
the service and the exception, and the process ends with exit status 1 within a bounded time.

Faust runs the parts of a worker that move records as ``mode.Service`` s: the Kafka fetch loop
(``Fetcher``), the consumer (its commit and livelock tasks) and its client thread
(``ConsumerThread``), the conductor that hands records to the streams, the producer and its
buffer, the transaction manager, the table manager and the changelog recovery. When one of their
tasks raises, mode's ``Service.crash`` logs ``Crashed reason=...`` with the traceback under the
class's short label and, as none of them has a supervisor, marks every service from it up to the
root of its tree crashed; in ``leadstream worker`` the root is the ``mode.Worker``, which then
stops the app and exits with status 1 (measured: an error raised in the fetch loop, aiokafka's
``CorruptRecordException`` on a record batch whose CRC does not check, and a ``TypeError`` raised
in an ``exactly_once`` transaction commit each ended the worker with status 1 about a second
later). What that leaves open:

* nothing tells an operator that the worker stops because of it, nor which part of the worker it
  was: the line names Faust's class at the depth of the tree, among the tracebacks;
* the stop that follows is Faust's ordinary stop, with no time limit: it waits for the streams to
  drain (``stream_wait_empty``), commits the offsets (ending the transactions under
  ``exactly_once``), flushes the producer and waits for the fetch loop to finish (forever, with a
  warning a second, for one that ignores its cancellation). A step that waits on the part that
  crashed keeps the process up, consuming nothing, with no supervisor told;
* a service given a supervisor (mode's ``crash`` then only wakes the supervisor, which restarts
  it) or attached elsewhere in the tree would not stop the worker at all.

``guard_vital_services`` wraps ``crash`` of each class of ``VITAL`` (process-wide, idempotent).
A crash by anything but a cancellation logs ``Faust's <class> (<role>) crashed (<exception>): the
worker stops`` at CRITICAL level, lets mode crash the tree as before, and crashes the root of the
service's tree too if mode's walk did not reach it. Cancellations pass through untouched: Faust
cancels the fetch loop when it stops it, at shutdown and when the table manager stops, and its
``Fetcher`` reports a cancellation during a rebalance with ``crash`` (a restart, not a failure).
In a worker process, ``exit_within`` (called by ``leadstream worker``) arms the bound: the first
such crash starts a timer thread that, if the process is still running ``seconds`` later, logs
why and ends it with ``os._exit(1)``, as a ``kill -9`` would (its local stores are then rebuilt
from the changelogs at the next start, as after any crash). Services left out: the monitor and
sensors (statistics), the web server, the reply consumer and the agent manager (each agent has
its own supervisor: ``processor.register`` gives the processing agent a crashing one). Upstream
issue: none filed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer, ConsumerThread, Fetcher, TransactionManager
from faust.transport.producer import Producer, ProducerBuffer
from mode import Service

__all__ = [
    "EXIT_STATUS",
    "STOP_WITHIN_S",
    "VITAL",
    "exit_within",
    "guard_vital_services",
    "vital_role",
]

log = logging.getLogger(__name__)

EXIT_STATUS = 1
"""The exit status of a worker that a vital service's crash ended (as an agent's crash does)."""

STOP_WITHIN_S = 60.0
"""How long ``leadstream worker`` gives Faust's stop after a vital service crashed (a worker's
ordinary stop takes about a second)."""

VITAL: tuple[tuple[type, str], ...] = (
    (Fetcher, "the Kafka fetch loop"),
    (Consumer, "the Kafka consumer"),
    (ConsumerThread, "the Kafka consumer's client"),
    (Conductor, "the conductor handing records to the streams"),
    (Producer, "the Kafka producer"),
    (ProducerBuffer, "the producer's send buffer"),
    (TransactionManager, "the transaction manager"),
    (TableManager, "the table manager"),
    (Recovery, "the table recovery"),
)
"""The Faust service classes (subclasses included: the aiokafka driver's) a worker cannot work
without, with what each does."""

_GUARDED = "_leadstream_vital_guard"
_bound: dict[str, Any] = {"seconds": None, "timer": None}


def vital_role(service: object) -> str | None:
    """What ``service`` does if it is an instance of a ``VITAL`` class, else ``None``."""
    for cls, role in VITAL:
        if isinstance(service, cls):
            return role
    return None


def exit_within(seconds: float | None) -> None:
    """Have the first crash of a vital service end this process with ``EXIT_STATUS`` if it is
    still running ``seconds`` later (``None``: no bound). For a worker process only."""
    _bound["seconds"] = seconds


def _end_process(name: str, reason: BaseException, seconds: float) -> None:
    log.critical(
        "the worker did not stop within %g s of the crash of Faust's %s (%r): it exits now",
        seconds,
        name,
        reason,
    )
    logging.shutdown()  # the line above reaches its handlers before the process ends
    os._exit(EXIT_STATUS)


def _bound_the_stop(name: str, reason: BaseException) -> None:
    seconds = _bound["seconds"]
    if seconds is None or _bound["timer"] is not None:
        return
    timer = threading.Timer(seconds, _end_process, args=(name, reason, seconds))
    timer.daemon = True  # a process that stops in time does not wait for it
    timer.name = "leadstream-vital-stop-bound"
    _bound["timer"] = timer
    timer.start()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def guard_vital_services() -> None:
    """Wrap ``crash`` of every ``VITAL`` class (idempotent)."""
    for cls, _role in VITAL:
        if vars(cls).get(_GUARDED, False):
            continue
        setattr(cls, "crash", _guarded_crash(getattr(cls, "crash")))  # noqa: B009, B010
        setattr(cls, _GUARDED, True)


def _guarded_crash(original: Any) -> Any:
    async def crash(self: Any, reason: BaseException) -> None:
        role = vital_role(self)
        if role is None or isinstance(reason, asyncio.CancelledError) or self._crashed.is_set():
            await original(self, reason)
            return
        name = type(self).__name__
        log.critical("Faust's %s (%s) crashed (%r): the worker stops", name, role, reason)
        _bound_the_stop(name, reason)
        await original(self, reason)
        root = self.beacon.root
        top = root.data if root is not None else self
        if isinstance(top, Service) and not top._crashed.is_set():
            # mode's walk stopped short of it (a supervisor, a detached tree); the consumer's
            # client crashes in its own thread, the worker's events belong to the main loop
            if _running_loop() is top.loop:
                top._crash(reason)
            else:
                top.loop.call_soon_threadsafe(top._crash, reason)

    crash.__wrapped__ = original  # type: ignore[attr-defined]
    return crash
