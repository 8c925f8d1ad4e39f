"""A standby replica holds every changelog record, on the real broker (``guard_standby_backlog``).

Worker A (``standby_app.py``) writes 400 keys to its table; worker B then joins the group with
one standby replica of the table, so it reads A's changelog partitions from their start while
the changelog already holds records; 100 more keys are written once B runs. When B's standby
partitions have caught up, both workers stop and B's stores of those partitions must hold
exactly the last value of every key of their changelog partitions, and record the partition's
last offset. Without the guard, the records B's recovery had not taken yet when Faust resumed
the flow at the end of the recovery are dropped from its queue and never read again: the stores
lack a run of keys while their offsets say they are up to date.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

PARTITIONS = 4
BEFORE, AFTER = 400, 100
"""Keys written before the standby starts, and after."""
WAIT_S = 120.0
APP = Path(__file__).with_name("standby_app.py")


class Worker:
    """One ``standby_app.py`` process."""

    def __init__(self, name: str, unique: str, bootstrap: str, tmp: Path) -> None:
        self.datadir = tmp / name
        self.report = tmp / f"{name}.json"
        self.log = tmp / f"{name}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), unique, str(self.datadir), str(self.report), bootstrap],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def standby(self) -> dict[int, int | None]:
        """The standby partitions and the offset each one's store records."""
        try:
            state = json.loads(self.report.read_text())
        except (OSError, ValueError):
            return {}
        return {int(p): offset for p, offset in state["standby"].items()}

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"worker stopped:\n{self.log.read_text(errors='replace')[-3000:]}")


async def _until(condition: Any, worker: Worker, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        worker.alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {WAIT_S:.0f} s; see {worker.log}")
        await asyncio.sleep(0.3)


async def _create_topics(bootstrap: str, source: str, changelog: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(source, PARTITIONS, 1),
                NewTopic(changelog, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"}),
            ]
        )
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, keys: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in keys:
            await producer.send(topic, key=f'"k{i}"'.encode(), value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _changelog(bootstrap: str, topic: str) -> tuple[dict[int, dict[bytes, bytes]], list[int]]:
    """The last value of each key per partition, and each partition's end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        state: dict[int, dict[bytes, bytes]] = {p: {} for p in range(PARTITIONS)}
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    state[tp.partition][record.key] = record.value
        return state, [ends[tp] for tp in tps]
    finally:
        await consumer.stop()


def _store(datadir: Path, partition: int) -> tuple[dict[bytes, bytes], bytes | None]:
    """A stopped worker's store of one partition: its keys and values, and its offset."""
    (path,) = datadir.rglob(f"counts-{partition}.db")
    db = rocksdict.Rdict(
        str(path),
        options=rocksdict.Options(raw_mode=True),
        access_type=rocksdict.AccessType.read_only(),
    )
    try:
        items = dict(db.items())
    finally:
        db.close()
    offset = items.pop(b"__faust\x00offset__", None)
    return items, offset


async def test_a_standby_started_on_a_filled_changelog_holds_every_record(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    source, changelog = f"in-{unique}", f"standby-{unique}-counts-changelog"
    await _create_topics(kafka_bootstrap, source, changelog)
    a = Worker("a", unique, kafka_bootstrap, tmp_path)
    b: Worker | None = None
    try:
        await _until(lambda: a.logged("Worker ready"), a, "worker A ready")
        await _produce(kafka_bootstrap, source, range(BEFORE))

        async def filled(total: int) -> list[int]:
            deadline = time.monotonic() + WAIT_S
            while True:
                _, ends = await _changelog(kafka_bootstrap, changelog)
                if sum(ends) >= total or time.monotonic() > deadline:
                    return ends
                await asyncio.sleep(0.5)

        assert sum(await filled(BEFORE)) == BEFORE
        b = Worker("b", unique, kafka_bootstrap, tmp_path)
        worker_b = b
        await _until(lambda: len(worker_b.standby()) == 2, b, "worker B's two standby partitions")
        await _produce(kafka_bootstrap, source, range(BEFORE, BEFORE + AFTER))
        ends = await filled(BEFORE + AFTER)
        assert sum(ends) == BEFORE + AFTER

        def caught_up() -> bool:
            standby = worker_b.standby()
            return len(standby) == 2 and all(
                offset is not None and offset >= ends[p] - 1 for p, offset in standby.items()
            )

        await _until(caught_up, b, "worker B's standby partitions caught up")
        standby = sorted(b.standby())
    finally:
        if b is not None:
            b.stop()
        a.stop()
    expected, ends = await _changelog(kafka_bootstrap, changelog)
    for partition in standby:
        held, offset = _store(tmp_path / "b", partition)
        missing = sorted(set(expected[partition]) - set(held))
        assert not missing, f"standby partition {partition} lacks {len(missing)}: {missing[:5]}"
        assert held == expected[partition]
        assert offset == str(ends[partition] - 1).encode()
