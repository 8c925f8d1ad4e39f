"""Faust's monitor keeps no per-record books in a worker where nothing reads them.

Every Faust app carries a ``Monitor`` sensor (``faust.sensors.Monitor``): for every record it
takes in, hands to a stream, acknowledges, reads from or writes to a table and sends, it updates
counters, per-topic and per-table books, timestamps and latency deques (about 8 µs per record on
this project's bench machine for a record's trip through a stream and a table, against 6 µs for
the sensor machinery with the project's own Prometheus sensor alone). Its only readers are
Faust's statistics web endpoints (``web_stats_enabled``, which follows ``debug``, and
``web_metrics_enabled``), off in a worker by default; the worker's metrics are its own sensor's
(``stream.metrics``), ``/metrics`` in Prometheus format.

``quiet_monitor`` gives an app whose statistics endpoints are off an ``IdleMonitor``: Faust's
monitor with its per-record hooks doing nothing. Commits, rebalances, assignments and web
requests are still recorded (a few per second at most). Upstream issue: none filed (a cost).
"""

from __future__ import annotations

from typing import Any

from faust.sensors import Monitor, Sensor

__all__ = ["PER_RECORD_HOOKS", "IdleMonitor", "hooks_idle", "quiet_monitor"]

PER_RECORD_HOOKS = (
    "on_message_in",
    "on_stream_event_in",
    "on_stream_event_out",
    "on_message_out",
    "on_topic_buffer_full",
    "on_table_get",
    "on_table_set",
    "on_table_del",
    "on_send_initiated",
    "on_send_completed",
    "on_send_error",
)
"""The monitor's hooks Faust calls for every record (``IdleMonitor`` makes them no-ops)."""


def _nothing(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


class IdleMonitor(Monitor):  # type: ignore[misc]
    """Faust's ``Monitor`` without its per-record books."""


for _hook in PER_RECORD_HOOKS:
    setattr(IdleMonitor, _hook, _nothing)


def hooks_idle(app: Any, *hooks: str) -> bool:
    """Whether every sensor of ``app`` leaves each of ``hooks`` as Faust's ``Sensor`` base
    (which does nothing) or as an ``IdleMonitor``'s: a caller may then skip calling them."""
    return all(
        getattr(type(sensor), hook) in (getattr(Sensor, hook), _nothing)
        for sensor in app.sensors
        for hook in hooks
    )


def quiet_monitor(app: Any) -> bool:
    """Give ``app`` (not started) an ``IdleMonitor`` unless its statistics endpoints, which
    show the monitor's books, are on. Returns whether it did."""
    if app.conf.web_stats_enabled or app.conf.web_metrics_enabled:
        return False
    app.monitor = IdleMonitor()
    return True
