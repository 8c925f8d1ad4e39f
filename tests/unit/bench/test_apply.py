"""The scoring-core bench runs end to end on a small stream and writes its figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.bench import apply
from stream.model_files import load_default_models


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


# What `apply_all` and `apply_batch` gave on the bench's stream of 6,000 events for 300 leads
# (seed 7, batches of 500) when the scoring core was last changed without meaning to change its
# results. A change that is meant to change scores, stages, outputs or states updates these with
# the digests `python -m stream.bench.apply --digest --leads 300 --events 6000` prints, and says
# why in its commit; any other change must leave them as they are.
DIGESTS = {
    "apply_all outputs": "79055f044076d8982a5144c8a5c3ed7a43650a9c86a44c47aa8515eb91dc73f1",
    "apply_all contributions": "33cd064e1322b972c7dcfdd381304168ca8d7d4a4d661273b32f2bf14837cfe3",
    "apply_all states": "cda5931ac9eb5353ddfb8ad66db125938b753c4ccce2142da9146148eb7c5c27",
    "apply_batch outputs": "bc61f069e588f2008cd968f2aedc03051e7c09e68627eff80f744017b5646234",
    "apply_batch contributions": "7656f4405505688ca62866dc02acbfc9f58c2601f4d69e6d75880725c63dea0e",
    "apply_batch states": "cda5931ac9eb5353ddfb8ad66db125938b753c4ccce2142da9146148eb7c5c27",
}


def test_the_outputs_and_states_on_the_bench_stream_are_unchanged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every output record (its JSON and its exact field values), contribution and final state
    of `apply_all` and `apply_batch` on the bench's stream, byte for byte."""
    assert apply.main(["--digest", "--leads", "300", "--events", "6000"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "6,000 events for 300 leads (seed 7)"
    got = {line[:26].strip(): line[26:].strip() for line in printed[1:]}
    assert got == DIGESTS


def test_the_digests_tell_different_results_apart() -> None:
    stream = apply.build_stream(20, 300, 7)
    models = load_default_models()
    same = apply.digests(stream, models, 50)
    assert apply.digests(stream, models, 50) == same
    assert apply.digests(stream[:-1], models, 50)["apply_all states"] != same["apply_all states"]
    shifted = apply.digests(stream[1:], models, 50)
    assert all(shifted[name] != same[name] for name in same if "contributions" not in name)
