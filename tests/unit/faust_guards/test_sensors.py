"""Faust's monitor keeps no per-record books where nothing reads them
(stream.faust_guards.sensors), checked on Faust's own Monitor and sensor delegate."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
from faust.sensors import Monitor, Sensor
from faust.sensors.base import SensorDelegate
from faust.types import TP

from stream.app import create_app
from stream.faust_guards.sensors import PER_RECORD_HOOKS, IdleMonitor, hooks_idle, quiet_monitor
from stream.settings import Settings

PART = TP("leads.internal.v1", 0)


def _record() -> SimpleNamespace:
    return SimpleNamespace(tp=PART, offset=7, topic=PART.topic, partition=0, key=b"k", value=b"v")


def test_faust_calls_each_per_record_hook_on_its_monitor() -> None:
    """Each hook silenced is one Faust's monitor defines and its sensor delegate passes on
    (a Faust release renaming one fails here)."""
    for hook in PER_RECORD_HOOKS:
        assert hook in vars(Monitor), hook
        assert callable(getattr(SensorDelegate, hook)), hook


def test_the_stock_monitor_books_every_record_and_the_idle_one_does_not() -> None:
    stock, idle = Monitor(), IdleMonitor()
    for monitor in (stock, idle):
        monitor.on_message_in(PART, 7, _record())
        monitor.on_table_get(SimpleNamespace(name="leads"), b"k")
    assert stock.messages_received_total == 1
    assert stock.tables["leads"].keys_retrieved == 1
    assert idle.messages_received_total == 0
    assert "leads" not in idle.tables


def test_a_worker_app_gets_the_idle_monitor() -> None:
    app = create_app(Settings(web_enabled=True, projector_enabled=False))
    assert isinstance(app.monitor, IdleMonitor)


def test_an_app_serving_faust_statistics_keeps_the_stock_monitor() -> None:
    for option in ("web_stats_enabled", "web_metrics_enabled"):
        app = faust.App(f"stats-{option}", broker="kafka://localhost:1", **{option: True})
        assert not quiet_monitor(app)
        assert type(app.monitor) is Monitor
    quiet = faust.App("no-stats", broker="kafka://localhost:1")
    assert quiet_monitor(quiet)
    assert type(quiet.monitor) is IdleMonitor


class StreamEvents(Sensor):  # type: ignore[misc]
    """A sensor that does something with the events a stream takes."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None


def test_the_stream_hooks_are_idle_in_a_worker_and_not_with_a_sensor_that_uses_them() -> None:
    hooks = ("on_stream_event_in", "on_stream_event_out")
    app = create_app(Settings(web_enabled=True, projector_enabled=False))
    app.sensors.add(app.monitor)  # as Faust does when the app starts
    assert hooks_idle(app, *hooks)  # the idle monitor and the project's sensor
    stock = faust.App("stock-monitor", broker="kafka://localhost:1")
    stock.sensors.add(stock.monitor)
    assert not hooks_idle(stock, *hooks)  # Faust's monitor books them
    app.sensors.add(StreamEvents())
    assert not hooks_idle(app, *hooks)
    assert hooks_idle(app, "on_stream_event_out")
