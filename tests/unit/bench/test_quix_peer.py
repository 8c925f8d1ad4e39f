"""The Quix Streams peer's decayed score and settings (its run is in the integration bench)."""

from __future__ import annotations

import math
from pathlib import Path

from stream.bench import quix_peer
from stream.bench.quix_peer import HALF_LIFE_S, decayed
from stream.settings import Settings


def test_a_new_lead_starts_at_its_first_events_points() -> None:
    assert decayed(None, 5.0, 1000.0) == [5.0, 1000.0]


def test_the_score_halves_every_half_life_before_the_points_are_added() -> None:
    assert decayed([8.0, 0.0], 1.0, HALF_LIFE_S) == [5.0, HALF_LIFE_S]
    score, at = decayed([8.0, 0.0], 0.0, 3 * HALF_LIFE_S)
    assert math.isclose(score, 1.0) and at == 3 * HALF_LIFE_S


def test_a_late_event_adds_its_decayed_points_and_keeps_the_time() -> None:
    assert decayed([8.0, 2 * HALF_LIFE_S], 4.0, HALF_LIFE_S) == [10.0, 2 * HALF_LIFE_S]


def test_the_settings_it_prints_are_the_faust_workers_commit_policy(tmp_path: Path) -> None:
    settings = Settings(app_id="bench-x-quix")
    peer = quix_peer.peer_settings(settings, tmp_path)
    assert peer["consumer_group"] == "bench-x-quix"
    assert peer["auto_offset_reset"] == "earliest"
    assert (peer["commit_interval_s"], peer["commit_every"]) == (2.0, 1000)
    assert peer["state_dir"] == str(tmp_path)
    assert quix_peer.output_topic(settings) == settings.topic("bench.quix.out")


def test_the_command_takes_no_arguments() -> None:
    assert quix_peer.main(["extra"]) == 2
