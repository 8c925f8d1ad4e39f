"""A worker keeps its local table stores across a restart only after a clean stop."""

from __future__ import annotations

from pathlib import Path

from stream.faust_guards import local_stores as local_state
from stream.faust_guards.local_stores import MARKER


def _stores(tabledir: Path) -> None:
    for name in ("leads-0.db", "identities-0.db"):
        (tabledir / name).mkdir(parents=True)
        (tabledir / name / "000001.sst").write_bytes(b"state")
    (tabledir / "leads-backups").mkdir()


def test_stores_of_a_run_that_stopped_cleanly_are_kept_and_the_marker_consumed(
    tmp_path: Path,
) -> None:
    _stores(tmp_path)
    assert local_state.closed(tmp_path, clean=True)
    assert (tmp_path / MARKER).exists()

    assert local_state.open_stores(tmp_path) is False
    assert not (tmp_path / MARKER).exists()  # a crash of this run leaves no marker
    assert (tmp_path / "leads-0.db" / "000001.sst").read_bytes() == b"state"


def test_stores_of_a_run_that_did_not_stop_cleanly_are_removed(tmp_path: Path) -> None:
    _stores(tmp_path)
    assert local_state.open_stores(tmp_path) is True
    assert list(tmp_path.iterdir()) == []


def test_a_crash_marks_nothing_and_the_next_start_removes_the_stores(tmp_path: Path) -> None:
    _stores(tmp_path)
    assert local_state.closed(tmp_path, clean=False) is False
    assert not (tmp_path / MARKER).exists()
    assert local_state.open_stores(tmp_path) is True
    assert list(tmp_path.iterdir()) == []


def test_a_worker_without_stores_marks_and_removes_nothing(tmp_path: Path) -> None:
    assert local_state.open_stores(tmp_path / "absent") is False
    assert local_state.closed(tmp_path, clean=True) is False
    assert list(tmp_path.iterdir()) == []
