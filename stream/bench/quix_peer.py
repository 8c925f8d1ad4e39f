"""A Python peer for the benchmark: the same work done naively with Quix Streams.

A Quix Streams application (``pip install '.[bench]'``) reads the five source topics from the
beginning under its own consumer group, decodes each record with ``codec.decode``, keeps one
state per lead across the five topics in Quix's RocksDB state (a score and the time it was
last decayed to), decays it exponentially (half-life 7 days, on the events' own times) and
adds the event type's points, and sends one output record per event. The five topics are
co-partitioned (same partitions, keys by lead), which Quix needs to keep one state per key
across them: one dataframe per topic, concatenated, with one stateful step.

Its commit policy is the Faust workers' (every 2 s or 1,000 records), so ``leadstream bench``
times it the same way, from its first committed offset to its last. Run it with
``python -m stream.bench.quix_peer`` (settings from the ``LEADSTREAM_*`` environment); this
module imports Quix Streams only when the application is built.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from schemas import codec
from schemas.errors import DecodeError
from stream.kafka import topics
from stream.settings import Settings

HALF_LIFE_S = 7 * 24 * 3600.0
POINTS: dict[str, float] = {
    "page_viewed": 1.0,
    "clicked": 2.0,
    "cta_clicked": 5.0,
    "file_downloaded": 8.0,
    "video_viewed": 4.0,
    "webinar_attended": 15.0,
    "form_submitted": 20.0,
    "trial_requested": 40.0,
    "demo_requested": 50.0,
    "email_opened": 1.0,
    "email_clicked": 3.0,
    "email_unsubscribed": -10.0,
}
"""Points per event type; other types score 0 (their event still decays the score)."""

COMMIT_INTERVAL_S = 2.0
"""As the Faust workers' ``broker_commit_interval``."""
COMMIT_EVERY = 1000
"""As the Faust workers' ``broker_commit_every``."""
POLL_TIMEOUT_S = 1.0
"""Quix's default consumer poll timeout (a poll returns as soon as records are there)."""
STATE_KEY = "score"


def available() -> bool:
    """Whether Quix Streams is installed (the ``bench`` extra)."""
    return importlib.util.find_spec("quixstreams") is not None


def output_topic(settings: Settings) -> str:
    return settings.topic("bench.quix.out")


def peer_settings(settings: Settings, state_dir: Path) -> dict[str, Any]:
    """What the peer runs with, as the bench prints it."""
    return {
        "consumer_group": settings.app_id,
        "auto_offset_reset": "earliest",
        "commit_interval_s": COMMIT_INTERVAL_S,
        "commit_every": COMMIT_EVERY,
        "consumer_poll_timeout_s": POLL_TIMEOUT_S,
        "processing_guarantee": "at-least-once",
        "state_dir": str(state_dir),
        "half_life_days": HALF_LIFE_S / 86400,
    }


def decayed(state: list[float] | None, points: float, at: float) -> list[float]:
    """The lead's ``[score, time]`` after an event worth ``points`` at ``at`` (epoch seconds).

    The score decays to the later of the two times; a late event's points decay to the
    state's time instead of moving it back.
    """
    if state is None:
        return [points, at]
    score, then = state
    if at >= then:
        return [score * math.exp2(-(at - then) / HALF_LIFE_S) + points, at]
    return [score + points * math.exp2(-(then - at) / HALF_LIFE_S), then]


def score_record(value: bytes, contract_topic: str, state: Any) -> bytes | None:
    """The output record of one source record, its lead's state updated; ``None`` if malformed."""
    try:
        event = codec.decode(value, now=datetime.now(UTC), topic=contract_topic)
    except DecodeError:
        return None
    score, at = decayed(
        state.get(STATE_KEY), POINTS.get(event.type, 0.0), event.occurred_at.timestamp()
    )
    state.set(STATE_KEY, [score, at])
    return orjson.dumps({"event_id": event.event_id, "type": event.type, "score": score})


def create_peer_app(settings: Settings, state_dir: Path) -> Any:
    """The Quix Streams application (its ``run()`` processes until SIGTERM)."""
    from quixstreams import Application, message_context  # noqa: PLC0415  (the `bench` extra)

    app = Application(
        broker_address=settings.kafka_bootstrap,
        consumer_group=settings.app_id,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_S,
        commit_every=COMMIT_EVERY,
        consumer_poll_timeout=POLL_TIMEOUT_S,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    raw = {"key_deserializer": "bytes", "value_deserializer": "bytes"}
    out = app.topic(output_topic(settings), key_serializer="bytes", value_serializer="bytes")
    contract = {settings.topic(spec.name): spec.name for spec in topics.SOURCES}
    merged: Any = None
    for name in contract:
        sdf = app.dataframe(app.topic(name, **raw))
        merged = sdf if merged is None else merged.concat(sdf)

    def step(value: bytes, key: Any, _ts: int, _headers: Any, state: Any) -> Any:
        if key is None:
            return None
        return score_record(value, contract[message_context().topic], state)

    merged = merged.apply(step, stateful=True, metadata=True)
    merged = merged.filter(lambda record: record is not None)
    merged.to_topic(out)
    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m stream.bench.quix_peer``: run the peer until SIGTERM."""
    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m stream.bench.quix_peer", file=sys.stderr)
        return 2
    if not available():
        print("quix peer: Quix Streams is not installed (pip install '.[bench]')", file=sys.stderr)
        return 2
    settings = Settings()
    create_peer_app(settings, settings.data_dir / "quix").run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
