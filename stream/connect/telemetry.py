"""The connector's Prometheus metrics, served on its own ``/metrics`` (`serve`).

| metric | what |
| --- | --- |
| ``leadstream_connector_delivered_total{destination}`` | changes the destination took |
| ``leadstream_connector_skipped_total{destination}`` | changes it does not take (filters) |
| ``leadstream_connector_retried_total{destination,reason}`` | transient failures retried |
| ``leadstream_connector_dead_lettered_total{destination,reason}`` | records given up on |
| ``leadstream_connector_delivery_latency_seconds{destination}`` | stage change → delivered |
| ``leadstream_connector_calls_total{destination}`` | destination calls (batches) made |
| ``leadstream_connector_lag{destination}`` | records on the topic not yet committed |
| ``leadstream_connector_in_flight{destination}`` | records read and not done |
| ``leadstream_connector_paused_partitions{destination}`` | partitions paused (window full) |
| ``leadstream_connector_assigned_partitions{destination}`` | partitions this connector owns |

The dead-letter ``reason`` is the failure kind (`permanent`, `retries_exhausted`,
`undecodable`); the retry ``reason`` is ``status_<code>`` or ``no_answer``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from stream.errors import ConfigurationError
from stream.metrics import sample_names

__all__ = [
    "ASSIGNED",
    "CALLS",
    "DEAD_LETTERED",
    "DELIVERED",
    "IN_FLIGHT",
    "LAG",
    "LATENCY",
    "METRIC_NAMES",
    "PAUSED",
    "REGISTRY",
    "RETRIED",
    "SKIPPED",
    "serve",
]

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""The connector process's metrics (one connector per process)."""

DELIVERED = Counter(
    "leadstream_connector_delivered",
    "Stage changes (and erasures) the destination took, per destination.",
    ["destination"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    "leadstream_connector_skipped",
    "Records the destination does not take (filters, unmapped stages, erasures it ignores).",
    ["destination"],
    registry=REGISTRY,
)
RETRIED = Counter(
    "leadstream_connector_retried",
    "Transient failures that were retried, per destination and reason (status_<code>, no_answer).",
    ["destination", "reason"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "leadstream_connector_dead_lettered",
    "Records written to leads.connector-dead-letters.v1, per destination and reason "
    "(permanent, retries_exhausted, undecodable).",
    ["destination", "reason"],
    registry=REGISTRY,
)
CALLS = Counter(
    "leadstream_connector_calls",
    "Destination calls made (one batch each), per destination.",
    ["destination"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "leadstream_connector_delivery_latency_seconds",
    "Time from a stage change's occurred_at to its delivery, per destination.",
    ["destination"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
    registry=REGISTRY,
)
LAG = Gauge(
    "leadstream_connector_lag",
    "Records on the connector's assigned partitions past its committed offsets.",
    ["destination"],
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "leadstream_connector_in_flight",
    "Records read and not yet delivered, skipped or dead-lettered (at most the window).",
    ["destination"],
    registry=REGISTRY,
)
PAUSED = Gauge(
    "leadstream_connector_paused_partitions",
    "Assigned partitions paused because the in-flight window is full.",
    ["destination"],
    registry=REGISTRY,
)
ASSIGNED = Gauge(
    "leadstream_connector_assigned_partitions",
    "Partitions of the topic this connector owns in its consumer group.",
    ["destination"],
    registry=REGISTRY,
)

METRIC_NAMES: Final[frozenset[str]] = frozenset(
    sample
    for metric in (
        DELIVERED,
        SKIPPED,
        RETRIED,
        DEAD_LETTERED,
        CALLS,
        LATENCY,
        LAG,
        IN_FLIGHT,
        PAUSED,
        ASSIGNED,
    )
    for sample in sample_names(metric)
)
"""Every series name the connector's ``/metrics`` can show."""


def serve(port: int, host: str) -> None:
    """Serve ``/metrics`` on `host`:`port` from a background thread; `ConfigurationError` when
    the address is taken."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve the connector's metrics on {host}:{port} ({exc.strerror}): set "
            "LEADSTREAM_CONNECT_METRICS_PORT to a free port, or 0 for none"
        ) from exc
