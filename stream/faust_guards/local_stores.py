"""A worker trusts its local table stores only when it last stopped cleanly.

Faust writes a table value to the worker's local RocksDB store at once and to the table's
changelog through the producer, a moment later. A worker killed in between (``kill -9``, out
of memory, power) restarts with local values the changelog never got, and the offsets it
committed are behind them: the records that made those values are read again, and the lead
state, which already remembers their event ids, takes them for duplicates. Their score and
stage-change records, sent just before the state was written, may have died with the worker:
they are then never published. Or a changelog write that did reach the broker is replayed over a
newer local value and rolls the lead back behind a position the sequence guard saved, so
records are skipped. (Found by the reliability suite's ``kill -9`` scenario: about one short
run in three left a lead a few revisions or stage changes short.)

So a worker's stores are kept across a restart only when the previous run stopped cleanly
with every table write confirmed by the broker, which it records in a marker file in the table
directory. Otherwise the local stores are removed before the worker starts and its tables are
restored from their changelogs, which hold exactly what the committed offsets account for.
Kafka Streams does the same under exactly-once after an unclean shutdown. The price is a full
restore after a crash; a standby replica (``LEADSTREAM_STANDBY_REPLICAS``) makes failover fast.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "closed", "install_write_tracking", "open_stores"]

log = logging.getLogger(__name__)

MARKER = "clean-shutdown"
"""File in the table directory written when a worker stopped with every table write confirmed."""

_TRACKED = "_leadstream_write_tracking"
_unconfirmed = 0


def install_write_tracking() -> None:
    """Count table writes sent to a changelog and not yet confirmed by the broker (idempotent;
    affects every Faust table in the process)."""
    from faust.tables.base import Collection  # noqa: PLC0415

    if getattr(Collection, _TRACKED, False):
        return
    original_send = Collection.send_changelog
    original_sent = Collection._on_changelog_sent

    def send_changelog(self: Any, *args: Any, **kwargs: Any) -> Any:
        global _unconfirmed  # noqa: PLW0603 - one count per process, read at exit
        _unconfirmed += 1
        return original_send(self, *args, **kwargs)

    def _on_changelog_sent(self: Any, fut: Any) -> None:
        global _unconfirmed  # noqa: PLW0603
        if not fut.cancelled() and fut.exception() is None:
            _unconfirmed -= 1
        original_sent(self, fut)

    Collection.send_changelog = send_changelog
    Collection._on_changelog_sent = _on_changelog_sent
    setattr(Collection, _TRACKED, True)


def _stores(tabledir: Path) -> list[Path]:
    if not tabledir.is_dir():
        return []
    return sorted(path for path in tabledir.iterdir() if path.name != MARKER)


def open_stores(tabledir: Path) -> bool:
    """Before a worker starts: keep the local stores if the last run stopped cleanly, else
    remove them (the tables are then restored from their changelogs). Returns whether they
    were removed. The marker is consumed, so a crash of this run leaves none behind."""
    marker = tabledir / MARKER
    if marker.exists():
        marker.unlink()
        return False
    stores = _stores(tabledir)
    if not stores:
        return False
    log.warning(
        "the last run of this worker did not stop cleanly: its %d local table store(s) in %s "
        "may hold writes its changelogs never got; they are removed and the tables restored "
        "from the changelogs",
        len(stores),
        tabledir,
    )
    for path in stores:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return True


def closed(tabledir: Path, *, clean: bool) -> bool:
    """After a worker stopped: mark its stores trustworthy if it stopped ``clean`` (no crash)
    and the broker confirmed every table write. Returns whether it marked them."""
    if not clean or _unconfirmed != 0:
        log.warning(
            "this worker did not stop cleanly (%s); its local table stores will be restored "
            "from the changelogs at the next start",
            "a crash" if not clean else f"{_unconfirmed} table write(s) unconfirmed",
        )
        return False
    if not _stores(tabledir):
        return False
    (tabledir / MARKER).write_text(datetime.now(UTC).isoformat(timespec="seconds") + "\n")
    return True
