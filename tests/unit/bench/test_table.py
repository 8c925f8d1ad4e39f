"""The rates and latency tables: CPU per record columns, the ratio to the Quix Streams peer, and
the split of a stage change's wait."""

from __future__ import annotations

from typing import Any

import pytest

from stream.bench.run import QUIX_ROW, Results, _Receiver, table


def _row(name: str, rate: int, worker_us: float | None, broker_us: float | None) -> dict[str, Any]:
    return {
        "name": name,
        "what": name,
        "events": 10_000,
        "seconds": round(10_000 / rate, 2),
        "events_per_s": rate,
        "worker_cpu_us_per_record": worker_us,
        "broker_cpu_us_per_record": broker_us,
    }


def test_the_table_has_cpu_columns_and_the_quix_ratio() -> None:
    results = Results(config={}, machine={})
    results.throughput = [
        _row("raw", 40_000, 21.4, 9.0),
        _row("pipeline", 1_000, 1_480.25, None),
        _row(QUIX_ROW, 4_000, 230.0, 40.5),
    ]
    lines = table(results).splitlines()
    assert lines[0] == (
        "| run | what | records | s | records/s | worker CPU µs/record | broker CPU µs/record |"
    )
    assert "| raw | raw | 10,000 | 0.25 | 40,000 | 21.4 | 9.0 |" in lines
    assert "| pipeline | pipeline | 10,000 | 10.0 | 1,000 | 1,480.2 | n/a |" in lines
    assert "| pipeline/quix peer | 0.25 |" in lines
    assert results.to_json()["ratios"]["pipeline/quix peer"] == 0.25


def test_without_the_peer_its_ratio_is_not_available() -> None:
    results = Results(config={}, machine={})
    results.throughput = [_row("pipeline", 1_000, None, None)]
    assert "| pipeline/quix peer | n/a |" in table(results).splitlines()


def test_the_batched_baseline_has_its_ratios() -> None:
    results = Results(config={}, machine={})
    results.throughput = [
        _row("bare", 4_000, 170.0, 20.0),
        _row("batched", 6_000, 64.0, 5.0),
        _row("pipeline", 1_500, 390.0, 140.0),
    ]
    ratios = results.to_json()["ratios"]
    assert ratios["pipeline/batched"] == 0.25
    assert ratios["batched/bare"] == 1.5
    assert "| pipeline/batched | 0.25 |" in table(results).splitlines()


def test_latency_rows_show_the_workers_cpu() -> None:
    results = Results(config={}, machine={})
    samples = {"n": 10, "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0}
    results.latency = [
        {
            "share_of_max": 0.5,
            "offered_per_s": 800,
            "sent": 4_000,
            "event_to_score": samples,
            "event_to_stage_change": samples,
            "worker_cpu_us_per_record": 512.5,
            "worker_busy": 0.41,
        }
    ]
    lines = table(results).splitlines()
    assert (
        "| 50% = 800/s | 4,000 | 5.0 / 9.0 / 12.0 (10) | 5.0 / 9.0 / 12.0 (10) | 512.5 (0.41) |"
        in lines
    )


def test_latency_rows_at_a_fixed_rate_name_the_rate_first() -> None:
    results = Results(config={}, machine={})
    samples = {"n": 10, "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0}
    results.latency = [
        {
            "share_of_max": 0.417,
            "fixed_rate": True,
            "offered_per_s": 1_000,
            "sent": 5_000,
            "event_to_score": samples,
            "event_to_stage_change": {"n": 0},
            "worker_cpu_us_per_record": 600.0,
            "worker_busy": 0.6,
        }
    ]
    lines = table(results).splitlines()
    assert (
        "| 1,000/s (42% of the maximum) | 5,000 | 5.0 / 9.0 / 12.0 (10) | no samples "
        "| 600.0 (0.60) |" in lines
    )


def test_a_stage_changes_wait_is_split_at_the_internal_record_that_passed_its_event_on() -> None:
    receiver = _Receiver(None, "stages", "internal")  # type: ignore[arg-type]
    receiver.sent_at[("lead-1", "e1")] = 100.000
    receiver.sent_at[("lead-2", "e2")] = 100.000
    receiver.passed(
        b'{"type":"events","events":[{"lead_id":"lead-1","event_id":"e1"},'
        b'{"lead_id":"lead-9","event_id":"e9"}]}',
        100.020,
    )
    receiver.passed(b'{"type":"identify","lead_id":"lead-2","event_id":"e2"}', 100.050)
    receiver.passed(b'{"type":"events","events":[{"lead_id":"lead-1","event_id":"e1"}]}', 100.900)
    receiver.record(True, {"lead_id": "lead-1", "triggering_event_id": "e1"}, 100.100, 100.090)
    receiver.record(True, {"lead_id": "lead-2", "triggering_event_id": "e2"}, 100.130, 100.110)
    receiver.record(True, {"lead_id": "lead-3", "triggering_event_id": "e3"}, 100.200, 100.150)
    spans = receiver.segments()
    assert spans["to_internal"]["n"] == 2
    assert (spans["to_internal"]["p50_ms"], spans["to_internal"]["max_ms"]) == (50.0, 50.0)
    assert spans["internal_to_output"]["p50_ms"] == 70.0
    assert spans["output_to_read"]["max_ms"] == 20.0
    assert receiver.samples[True] == pytest.approx([0.100, 0.130])


def test_the_split_is_printed_per_offered_load() -> None:
    results = Results(config={}, machine={})
    samples = {"n": 10, "p50_ms": 5.0, "p95_ms": 9.0, "p99_ms": 12.0}
    results.latency = [
        {
            "share_of_max": 0.5,
            "offered_per_s": 800,
            "sent": 4_000,
            "event_to_score": samples,
            "event_to_stage_change": samples,
            "stage_change_segments": {
                "to_internal": {"n": 3, "p50_ms": 20.0, "p99_ms": 40.0},
                "internal_to_output": {"n": 3, "p50_ms": 25.0, "p99_ms": 61.0},
                "output_to_read": {"n": 0},
            },
        }
    ]
    assert "| 800/s | 20.0 / 40.0 | 25.0 / 61.0 | no samples |" in table(results).splitlines()
