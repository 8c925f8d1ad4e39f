"""The worker of ``test_standby``: a Faust app with Leadstream's guards, one table ``counts`` (4
partitions, one standby replica) written from topic ``in-UNIQUE``.

Run as ``python standby_app.py UNIQUE DATADIR REPORT BOOTSTRAP``. Every 0.2 s it writes to REPORT
(JSON) the changelog partitions it holds as standby replicas and the offset each one's store
records (the last changelog record applied to it: with ``standby_buffer_size=1`` the recovery
applies every standby record as it takes it). Two of Faust's own hooks are slow on purpose, to
make the recovery the part that lags behind, as on a busy worker: the table's
``on_changelog_event`` callback (awaited for every changelog record the recovery takes) takes
5 ms, and its ``on_recovery_completed`` (awaited before Faust resumes the flow at the end of a
recovery) 1 s, so the standby partitions' first records are fetched and queued for the
recovery before that resume.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import faust

from stream import faust_guards

CHANGELOG_EVENT_S = 0.005
RECOVERY_COMPLETED_S = 1.0


class SlowTable(faust.Table):  # type: ignore[misc]
    """A table whose recovery-completed hook takes ``RECOVERY_COMPLETED_S``."""

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await asyncio.sleep(RECOVERY_COMPLETED_S)
        await super().on_recovery_completed(active_tps, standby_tps)


async def _on_changelog_event(event: Any) -> None:
    await asyncio.sleep(CHANGELOG_EVENT_S)


def main() -> None:
    unique, datadir, report, bootstrap = sys.argv[1:5]
    faust_guards.install()
    app = faust.App(
        f"standby-{unique}",
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=datadir,
        topic_partitions=4,
        table_standby_replicas=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10,
        broker_heartbeat_interval=3,
        web_enabled=False,
        autodiscover=False,
    )
    table = app.tables.add(
        SlowTable(
            app,
            name="counts",
            default=int,
            partitions=4,
            standby_buffer_size=1,
            on_changelog_event=_on_changelog_event,
        )
    )
    topic = app.topic(f"in-{unique}", key_type=str, value_type=int, partitions=4)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for key, value in stream.items():
            table[key] = value

    @app.timer(interval=0.2)
    async def write_report() -> None:
        recovery: Any = app.tables.recovery
        standby = {str(tp.partition): table.persisted_offset(tp) for tp in recovery.standby_tps}
        path = Path(report)
        path.with_suffix(".tmp").write_text(json.dumps({"standby": standby}))
        os.replace(path.with_suffix(".tmp"), path)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
