"""Bytes on disk per lead under the stores' RocksDB options, and what they cost to write and read.

    python -m stream.bench.store_size [--leads 3000] [--copies 1] [--lookups 20000]

Simulated leads (``stream.simulate``, the benchmark's 40 days) are scored through the pure core
as the worker would (``stream.offline.history``) and stored as the worker's ``leads`` table
stores them (``LeadRecord``; the due time and the applied offset drawn at random). Each variant
of the options writes them into an empty store through ``store_options`` and Faust's
``RocksDBOptions`` with the guard that applies them, in write batches without the log and one
flush at the end, as a restore does, and prints: the store's bytes per lead per model (every
file of its directory), the process CPU per lead of the writes and the flush, and the CPU per
point lookup with a 256 KiB read cache, so most lookups read and decompress a block. With
``--copies N`` every lead is stored N times under other ids, as ``leadstream bench`` fills its
table for the recovery runs (its states repeat).

A benchmark to run and record, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from stream.bench.data import DAYS
from stream.settings import Settings
from stream.worker.leads import LeadRecord, store_options

__all__ = ["VARIANTS", "lead_records", "main", "measure"]

VARIANTS: dict[str, dict[str, Any]] = {
    "snappy, 4 KiB blocks": {"rocksdb_compression": "snappy", "rocksdb_dict_kb": 0},
    "zstd, 4 KiB blocks": {"rocksdb_dict_kb": 0},
    "zstd, 16 KiB blocks": {"rocksdb_dict_kb": 0, "rocksdb_block_kb": 16},
    "zstd, 32 KiB blocks": {"rocksdb_dict_kb": 0, "rocksdb_block_kb": 32},
    "zstd, 4 KiB blocks, 16 KiB dictionary": {},
    "zstd, 4 KiB blocks, 16 KiB dictionary trained on 1.6 MB": {"rocksdb_dict_train_kb": 1600},
    "zstd, 16 KiB blocks, 16 KiB dictionary": {"rocksdb_block_kb": 16},
    "zstd, 32 KiB blocks, 16 KiB dictionary": {"rocksdb_block_kb": 32},
}
"""Settings over the defaults, by name."""

LOOKUP_CACHE = 256 * 1024
"""The read cache of the lookup pass: far smaller than the store, so most lookups miss it."""


def lead_records(leads: int, seed: int = 7) -> dict[bytes, bytes]:
    """Stored ``leads`` table values of ``leads`` simulated people, by key."""
    from stream.model_files import load_default_models  # noqa: PLC0415
    from stream.offline.history import group_by_lead, score_leads  # noqa: PLC0415
    from stream.simulate.traffic import SimConfig, generate  # noqa: PLC0415

    models = load_default_models()
    start = datetime.now(UTC) - timedelta(days=DAYS, hours=1)
    simulation = generate(SimConfig(seed=seed, leads=leads, days=DAYS, start=start))
    by_lead = group_by_lead(simulation.events)
    draw = random.Random(seed)
    records: dict[bytes, bytes] = {}
    for history in score_leads(by_lead, models):
        if history.state is None:
            continue
        anonymous = sorted({e.anonymous_id for e in by_lead[history.lead_id] if e.anonymous_id})
        record = LeadRecord(
            state=history.state.to_dict(),
            anonymous_ids=anonymous,
            due=int(start.timestamp()) + draw.randrange(60 * 86_400),
            applied=draw.randrange(200_000),
        )
        records[history.lead_id.encode()] = orjson.dumps(record.to_json())
    return records


def _options(settings: Settings, **overrides: Any) -> Any:
    from faust.stores.rocksdb import RocksDBOptions  # noqa: PLC0415

    from stream.faust_guards.patches import guard_rocksdb_compression  # noqa: PLC0415

    guard_rocksdb_compression()
    options = store_options(settings)
    assert options is not None
    return RocksDBOptions(**{**options, **overrides}).as_options()


def measure(
    records: Sequence[tuple[bytes, bytes]], settings: Settings, where: Path, lookups: int
) -> dict[str, float]:
    """Bytes per lead on disk, write CPU per lead (µs) and lookup CPU (µs) of one store."""
    import rocksdict  # noqa: PLC0415

    shutil.rmtree(where, ignore_errors=True)
    db = rocksdict.Rdict(str(where), options=_options(settings))
    no_log = rocksdict.WriteOptions()
    no_log.disable_wal = True
    started = time.process_time()
    for i in range(0, len(records), 10_000):
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in records[i : i + 10_000]:
            batch.put(key, value)
        db.write(batch, no_log)
    db.flush(True)
    written = time.process_time() - started
    db.close()
    on_disk = sum(path.stat().st_size for path in where.rglob("*") if path.is_file())
    db = rocksdict.Rdict(str(where), options=_options(settings, block_cache_size=LOOKUP_CACHE))
    draw = random.Random(3)
    keys = [draw.choice(records)[0] for _ in range(lookups)]
    started = time.process_time()
    for key in keys:
        db.get(key)
    read = time.process_time() - started
    db.close()
    return {
        "bytes_per_lead": on_disk / len(records),
        "write_us_per_lead": written / len(records) * 1e6,
        "lookup_us": read / max(1, lookups) * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.store_size", description=__doc__)
    parser.add_argument("--leads", type=int, default=3000, help="simulated people (3,000)")
    parser.add_argument(
        "--copies", type=int, default=1, help="times each lead is stored, under other ids (1)"
    )
    parser.add_argument("--lookups", type=int, default=20_000, help="point lookups timed")
    parser.add_argument(
        "--only", action="append", default=[], help="variants whose name contains this"
    )
    args = parser.parse_args(argv)
    base = Settings()
    started = time.monotonic()
    originals = list(lead_records(args.leads).items())
    records = [
        (key if copy == 0 else key.replace(b"lead-", b"lead-r%xx" % copy, 1), value)
        for copy in range(max(1, args.copies))
        for key, value in originals
    ]
    random.Random(1).shuffle(records)  # arrival order
    mean = sum(len(value) for _, value in records) / len(records)
    models = len(orjson.loads(records[0][1])["s"]["m"]) or 1
    print(
        f"{len(originals):,} leads with a state, stored {len(records):,} times; "
        f"value {mean:,.0f} bytes per lead, {models} models "
        f"(built in {time.monotonic() - started:.0f} s)"
    )
    print(f"{'options':<58} {'bytes/lead/model':>16} {'write µs/lead':>13} {'lookup µs':>9}")
    with tempfile.TemporaryDirectory(prefix="store-size-") as tmp:
        for name, overrides in VARIANTS.items():
            if args.only and not any(part in name for part in args.only):
                continue
            settings = base.model_copy(update=overrides)
            row = measure(records, settings, Path(tmp) / "store", args.lookups)
            print(
                f"{name:<58} {row['bytes_per_lead'] / models:>16.1f} "
                f"{row['write_us_per_lead']:>13.1f} {row['lookup_us']:>9.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
