"""A worker trusts its local table stores only when it last stopped cleanly.

Faust writes a table value to the local RocksDB store at once and to the changelog a moment
later, so a worker killed in between restarts with local values the changelog never got. The
stores are therefore kept across a restart only when the previous run stopped cleanly with every
table write confirmed by the broker (a marker file in the table directory); otherwise they are
removed before the worker starts and the tables are restored from their changelogs.
``install_write_tracking`` counts the unconfirmed writes by patching ``Collection.send_changelog``
and ``Collection._on_changelog_sent`` (upstream issue: none filed). Why:
``RELIABILITY.md#faust-guards``.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "changelog_confirmed",
    "changelog_sent",
    "closed",
    "install_write_tracking",
    "open_stores",
    "unconfirmed",
]

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


def changelog_sent() -> None:
    """A table write's changelog message was sent without Faust (``changelog.ChangelogWriter``)."""
    global _unconfirmed  # noqa: PLW0603
    _unconfirmed += 1


def changelog_confirmed() -> None:
    """The broker confirmed a changelog message sent without Faust."""
    global _unconfirmed  # noqa: PLW0603
    _unconfirmed -= 1


def unconfirmed() -> int:
    """Table writes this process sent to a changelog that the broker has not confirmed."""
    return _unconfirmed


def _stores(tabledir: Path) -> list[Path]:
    if not tabledir.is_dir():
        return []
    return sorted(path for path in tabledir.iterdir() if path.name != MARKER)


def open_stores(tabledir: Path, *, standby_replicas: int = 0) -> bool:
    """Before a worker starts: keep the local stores if the last run stopped cleanly, else
    remove them (the tables are then restored from their changelogs). Returns whether they
    were removed. The marker is consumed, so a crash of this run leaves none behind.

    With standby replicas the stores are removed whatever the last stop: a worker restarted on
    stores it kept, in a rolling replacement of three workers with one standby replica each,
    lost events and published revisions again with other content (its stores' recorded
    changelog positions ran ahead of their contents; RELIABILITY.md, open defects), while the
    same scenario on restored tables equals the reference. The standbys of the other workers
    serve the failover meanwhile."""
    marker = tabledir / MARKER
    clean = marker.exists()
    if clean:
        marker.unlink()
        if standby_replicas == 0:
            return False
    stores = _stores(tabledir)
    if not stores:
        return False
    if clean:
        log.warning(
            "standby replicas are on: this worker's %d local table store(s) in %s are removed "
            "and the tables restored from the changelogs (a worker restarted on its own stores "
            "can miss what another wrote meanwhile)",
            len(stores),
            tabledir,
        )
    else:
        log.warning(
            "the last run of this worker did not stop cleanly: its %d local table store(s) in "
            "%s may hold writes its changelogs never got; they are removed and the tables "
            "restored from the changelogs",
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
