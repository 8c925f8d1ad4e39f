"""A worker keeps its local table stores across a restart only after a clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
from aiokafka.structs import RecordMetadata
from faust.types import TP

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


def test_with_standby_replicas_even_a_clean_stops_stores_are_removed(tmp_path: Path) -> None:
    _stores(tmp_path)
    assert local_state.closed(tmp_path, clean=True)
    assert local_state.open_stores(tmp_path, standby_replicas=1) is True
    assert list(tmp_path.iterdir()) == []  # the marker consumed too


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


async def test_write_tracking_counts_table_writes_until_the_broker_confirms_them() -> None:
    local_state.install_write_tracking()
    local_state.install_write_tracking()  # installed once: each write counts once
    app = faust.App("write-tracking-test", broker="kafka://localhost:1")
    table = app.Table("tracked", partitions=1)
    changelog = table.changelog_topic
    before = local_state.unconfirmed()

    confirmed = table.send_changelog(0, b"a", b"1")
    failed = table.send_changelog(0, b"b", b"2")
    assert local_state.unconfirmed() == before + 2

    # the producer's delivery reports, handed to the topic as its producer does
    loop = asyncio.get_running_loop()
    ok, lost = loop.create_future(), loop.create_future()
    name = changelog.get_topic_name()
    ok.set_result(RecordMetadata(name, 0, TP(name, 0), 7, None, 0, None))
    lost.set_exception(ConnectionError("broker gone"))
    changelog._on_published(ok, message=confirmed, producer=app.producer, state=None)
    changelog._on_published(lost, message=failed, producer=app.producer, state=None)
    assert local_state.unconfirmed() == before + 1  # the failed write stays unconfirmed
    assert confirmed.result().offset == 7
    assert isinstance(failed.exception(), ConnectionError)
