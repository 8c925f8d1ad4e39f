"""``leadstream bench --quick`` on the real broker: it runs, prints its tables, writes its JSON.

The figures themselves are not asserted (the machines are shared; speed is read, not tested):
only that every run measured something and every section was filled.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_bench_prints_the_table_and_writes_the_json(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "bench",
            "--quick",
            "--json",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    with capsys.disabled():  # the table, in the CI log
        print("\n" + done.stdout)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (
        "| run | what | records | s | records/s | worker CPU µs/record | broker CPU µs/record |"
        in done.stdout
    )

    results = json.loads(out.read_text())
    rows = {row["name"]: row for row in results["throughput"]}
    quix = importlib.util.find_spec("quixstreams") is not None
    expected = {
        "raw",
        "bare",
        "naive",
        "batched",
        "pipeline",
        "pipeline, accounts off",
        "pipeline x2",
    } | ({"quix peer"} if quix else set())
    assert set(rows) == expected
    broker_measured = results["machine"]["broker_pid"] is not None
    for row in rows.values():
        assert row["events"] > 0 and row["seconds"] > 0 and row["events_per_s"] > 0, row
        assert row["worker_cpu_us_per_record"] > 0, row
        assert (row["broker_cpu_us_per_record"] or 0) > 0 or not broker_measured, row
    if not broker_measured:
        assert any(line.startswith("broker CPU: ") for line in results["not_measured"])
    assert results["ratios"]["pipeline/bare"] > 0
    assert results["ratios"]["pipeline/naive"] > 0
    assert results["ratios"]["pipeline/batched"] > 0
    assert results["ratios"]["batched/bare"] > 0
    assert results["ratios"]["pipeline/pipeline without accounts"] > 0
    assert rows["pipeline"]["account_score_records"] > 0
    if quix:
        assert results["ratios"]["pipeline/quix peer"] > 0
        assert results["config"]["quix_peer"]["auto_offset_reset"] == "earliest"
        # one output per event it decoded: every record but the malformed ones (about 1%)
        assert rows["quix peer"]["outputs"] >= 0.95 * results["config"]["events"]
    else:
        assert "quix peer: skipped (pip install '.[bench]')" in done.stderr
    assert results["scaling"]["ratio"] > 0  # one vs two workers

    assert results["latency"], "no latency run"
    for run in results["latency"]:
        assert run["sent"] > 0
        assert run["event_to_score"]["n"] > 0
        assert run["worker_cpu_us_per_record"] > 0 and run["worker_busy"] > 0, run
        assert run["event_to_score"]["p50_ms"] <= run["event_to_score"]["p99_ms"]

    state = results["state"]
    assert state["leads"] > 0 and state["models"] == 2
    assert state["changelog_value_bytes_per_lead"] > 0
    assert state["decoded_state_bytes_per_lead"] > 0
    assert state["rocksdb_bytes_per_lead_after_run"] > 0

    recovery = results["recovery"]
    assert [(r["case"].split(" (")[0], r["standby"]) for r in recovery] == [
        ("empty data directory", False),
        ("own data directory after SIGKILL", False),
        ("own data directory after SIGTERM", False),
        ("standby replica, the other worker stopped", True),
        ("standby replica, the other worker lost", True),
    ]
    for case in recovery:
        assert case["leads"] == results["config"]["state_leads"]
        assert case["seconds"] > 0
