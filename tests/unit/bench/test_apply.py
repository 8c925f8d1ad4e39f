"""The scoring-core bench runs end to end on a small stream and writes its figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from stream.bench import apply


def test_a_small_run_writes_every_row_with_wall_and_cpu_time(tmp_path: Path) -> None:
    out = tmp_path / "apply.json"
    code = apply.main(
        ["--leads", "20", "--events", "400", "--repeat", "1", "--batch", "50", "--json", str(out)]
    )
    assert code == 0
    document = json.loads(out.read_text())
    assert document["bench"] == "apply"
    assert document["args"]["events"] == 400
    assert len(document["load_average_before"]) == 3
    rows = document["results"]
    assert set(rows) == {
        "all",
        "b2b",
        "consumer",
        "batch",
        "all_serialised",
        "to_dict",
        "from_dict",
    }
    for row in rows.values():
        assert row["events_per_s"] > 0
        assert row["cpu_us_per_event"] > 0
        assert abs(row["us_per_event"] * row["events_per_s"] - 1e6) < 1e-3
