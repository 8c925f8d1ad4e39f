"""The store-size micro-benchmark (stream.bench.store_size): the worker's stored lead records,
written through the stores' own options."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from stream.bench import store_size
from stream.settings import Settings


def test_the_records_are_the_worker_s_stored_leads() -> None:
    records = store_size.lead_records(40)
    assert len(records) >= 30
    for key, value in records.items():
        document = orjson.loads(value)
        assert key.startswith(b"lead-")
        assert set(document["s"]["m"]) == {"b2b", "consumer"}
        assert document["s"]["v"] == 1 and isinstance(document["o"], int)


def test_each_variant_writes_and_reads_back_a_store(tmp_path: Path) -> None:
    records = sorted(store_size.lead_records(40).items())
    plain = store_size.measure(
        records, Settings().model_copy(update={"rocksdb_compression": "none"}), tmp_path, 50
    )
    zstd = store_size.measure(records, Settings(), tmp_path, 50)
    raw = sum(len(key) + len(value) for key, value in records) / len(records)
    assert plain["bytes_per_lead"] > raw  # every value is on disk, uncompressed
    assert zstd["bytes_per_lead"] < plain["bytes_per_lead"]
    assert zstd["write_us_per_lead"] > 0 and zstd["lookup_us"] > 0


def test_the_command_prints_a_row_per_chosen_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert store_size.main(["--leads", "30", "--lookups", "10", "--only", "32 KiB"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split("  ")[0] for row in rows[2:]] == [
        "zstd, 32 KiB blocks",
        "zstd, 32 KiB blocks, 16 KiB dictionary",
    ]
