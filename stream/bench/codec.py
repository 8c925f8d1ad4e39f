"""Codec throughput: decode + validate a typical event, against `orjson.loads` in the same run.

    python -m stream.bench.codec [--number 100000] [--repeat 5]

Prints events per second (best of `--repeat` runs) and the ratio. A benchmark to run and record,
not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
import pydantic

from schemas.codec import decode, decode_internal, encode, encode_events
from schemas.examples import EVENT_EXAMPLES

__all__ = ["main"]

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
EVENTS_PER_RECORD = 50
"""Events in the events record timed (a batch of 500 records over 10 partitions)."""


def _rate(function: Callable[[], object], number: int, repeat: int) -> float:
    best = min(timeit.repeat(function, number=number, repeat=repeat))
    return number / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.codec", description=__doc__)
    parser.add_argument("--number", type=int, default=100_000, help="calls per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (the best counts)")
    args = parser.parse_args(argv)

    event = EVENT_EXAMPLES["page_viewed"]
    data = encode(event)
    assert decode(data, now=NOW) == event

    loads = _rate(lambda: orjson.loads(data), args.number, args.repeat)
    validate = _rate(lambda: decode(data, now=NOW), args.number, args.repeat)
    topic = _rate(
        lambda: decode(data, now=NOW, topic="leads.clickstream.v1"), args.number, args.repeat
    )
    dumps = _rate(lambda: encode(event), args.number, args.repeat)
    internal = _rate(lambda: decode_internal(data), args.number, args.repeat)
    # a micro-batch's events of one internal partition, passed on in one record
    values = [encode(event.model_copy(update={"lead_id": "lead-1"}))] * EVENTS_PER_RECORD
    record = encode_events(values)
    calls = max(1, args.number // EVENTS_PER_RECORD)
    bulk = _rate(lambda: decode_internal(record), calls, args.repeat) * EVENTS_PER_RECORD
    framed = _rate(lambda: encode_events(values), calls, args.repeat) * EVENTS_PER_RECORD

    print(f"typical event: page_viewed, {len(data)} bytes of JSON")
    print(
        f"python {platform.python_version()}, pydantic {pydantic.VERSION}, "
        f"orjson {orjson.__version__}, {platform.machine()}, {os.cpu_count()} cores"
    )
    print(f"{'operation':<52} {'events/s':>12}")
    rows = [
        ("orjson.loads (parse only)", loads),
        ("codec.decode (parse + validate, any inbound type)", validate),
        ("codec.decode topic=leads.clickstream.v1", topic),
        ("codec.encode", dumps),
        ("codec.decode_internal, one event per record", internal),
        (f"codec.decode_internal, {EVENTS_PER_RECORD} per events record", bulk),
        (f"codec.encode_events of {EVENTS_PER_RECORD} values as read", framed),
    ]
    for name, rate in rows:
        print(f"{name:<52} {rate:>12,.0f}")
    print(
        f"decode+validate / orjson.loads = {validate / loads:.2f} ({loads / validate:.1f}x slower)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
