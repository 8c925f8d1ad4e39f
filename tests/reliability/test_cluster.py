"""A three-broker cluster (``deploy/local/kafka-cluster.sh``): the leader of the busiest
partitions is killed mid-stream and comes back later.

Topics have three replicas and ``min.insync.replicas=2`` (``Settings.durability_configs``), the
worker's producer and the test's waits for ``acks=all``: every write acknowledged before the
kill is on a surviving broker, leadership moves to a follower, and the worker carries on. The
scenario ends, like the others, with the outputs equal to the offline reference: nothing lost,
nothing republished with other content, every expected stage change. How long the group took to
commit again after the kill is recorded (RELIABILITY.md); the waits here are only deadlines.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability_harness as h
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.kafka import topics
from stream.kafka.admin import changelog_topic, ensure_topics
from stream.worker import processor

pytestmark = pytest.mark.integration

SCRIPT = h.REPO / "deploy/local/kafka-cluster.sh"


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out for outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_base() -> int:
    """A port base whose six ports (clients base+1..3, controllers base+11..13) are free, below
    the ephemeral range: a port from that range can be taken by any outgoing connection (the
    nodes' own, the workers') between this check and the node's start."""
    rng = random.Random()
    high = min(_ephemeral_low(), 65536) - 14
    for _ in range(200):
        base = rng.randrange(20000, max(high, 20001))
        ports = [base + n for n in (1, 2, 3, 11, 12, 13)]
        if all(_free(p) for p in ports):
            return base
    raise AssertionError("no six free ports found")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Cluster:
    """This test's own three-node cluster, driven by its script."""

    def __init__(self, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "LEADSTREAM_RUN_DIR": str(tmp / "run-cluster"),
            "LEADSTREAM_LOCAL_CLUSTER_PORT": str(_free_base()),
            "LEADSTREAM_KAFKA_HEAP": "384m",
        }

    def run(self, action: str, *args: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), action, *args],
            env=self.env,
            capture_output=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return done.stdout.decode().strip()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    own = Cluster(tmp_path)
    own.run("start", "--fresh")
    try:
        yield own, own.run("bootstrap")
    finally:
        own.run("stop")


async def _leaders(bootstrap: str, names: list[str]) -> dict[int, int]:
    """How many partitions of ``names`` each broker leads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    counts: collections.Counter[int] = collections.Counter()
    for topic in described:
        for partition in topic["partitions"]:
            counts[partition["leader"]] += 1
    return dict(counts)


async def _topic_settings(bootstrap: str, names: list[str]) -> dict[str, tuple[int, str]]:
    """(replicas of partition 0, min.insync.replicas) of each topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    isr: dict[str, str] = {}
    for answer in answers:
        for resource in answer.resources:
            name, entries = resource[3], resource[4]
            isr[name] = next(e[1] for e in entries if e[0] == "min.insync.replicas")
    return {name: (len(described[name]["partitions"][0]["replicas"]), isr[name]) for name in names}


async def _until(check: Any, *, timeout: float, what: str) -> float:
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout, f"{what} within {timeout}s"
        await asyncio.sleep(0.25)
    return time.monotonic() - began


class Stream:
    """What a disruption works with: the cluster, the source topics, the rest of the traffic."""

    def __init__(self, control: Cluster, bootstrap: str, settings: Any, rest: list[Any]) -> None:
        self.control = control
        self.bootstrap = bootstrap
        self.settings = settings
        self.sources = [settings.topic(spec.name) for spec in topics.SOURCES]
        self.rest = rest

    async def send_the_rest(self) -> None:
        await h.pipeline.produce(self.settings, self.rest)

    async def committed(self) -> int:
        try:
            return int(await h.committed(self.settings))
        except Exception:  # a coordinator moving to another broker
            return -1


Disruption = Callable[[Stream], Awaitable[dict[str, Any]]]
"""Breaks the cluster mid-stream, sends the rest of the traffic; returns figures to record."""


async def _scenario(
    name: str,
    cluster: tuple[Cluster, str],
    tmp_path: Path,
    *,
    seed: int,
    unique: str,
    disrupt: Disruption,
) -> None:
    """Half the traffic, the disruption (which sends the other half), the outputs checked."""
    control, bootstrap = cluster
    sim = h.scenario(seed=seed, leads=h.SIZES.broker_leads)
    settings = h.pipeline_settings(bootstrap, unique, tmp_path, topic_replication=3)
    await ensure_topics(settings, tables=processor.TABLES)
    changelog = changelog_topic(settings, processor.LEADS_TABLE)
    log = tmp_path / "worker.log"
    half = len(sim.deliveries) // 2
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    worker = h.start_worker(settings, log)
    try:
        await h.pipeline.produce(settings, sim.deliveries[:half])

        async def started() -> bool:
            return await h.committed(settings) > half // 4

        await _until(started, timeout=300, what="the worker committed a quarter")

        stream = Stream(control, bootstrap, settings, sim.deliveries[half:])
        notes = await disrupt(stream)
        await h.settle(settings, out, log)
        alive = worker.poll() is None
        configs = await _topic_settings(bootstrap, [*stream.sources, changelog])
    finally:
        h.stop_worker(worker)
        stop.set()
        await reader
    result = await h.tally(name, sim, settings, out)
    result.notes |= notes
    h.record(result)
    assert alive, "the worker exited while the cluster was disrupted:\n" + log.read_text()[-3000:]
    assert configs == dict.fromkeys(configs, (3, "2")), configs
    assert len(configs) == len(topics.SOURCES) + 1
    assert result.dead_lettered == h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)


async def test_the_leader_of_the_busiest_partitions_dies_mid_stream_and_nothing_is_lost(
    cluster: tuple[Cluster, str], unique: str, tmp_path: Path
) -> None:
    """SIGKILL the broker leading the most source partitions, send the rest, bring it back
    after the group committed again and ``broker_down_s`` more (longer, in all, than the
    session timeout)."""

    async def kill_the_busiest_leader(stream: Stream) -> dict[str, Any]:
        leaders = await _leaders(stream.bootstrap, stream.sources)
        victim = max(sorted(leaders), key=lambda node: leaders[node])
        before = await stream.committed()
        stream.control.run("kill-node", str(victim))
        killed = time.monotonic()
        await stream.send_the_rest()

        async def progressed() -> bool:
            return await stream.committed() > before

        await _until(progressed, timeout=300, what="the worker committed again")
        resumed_s = time.monotonic() - killed
        moved = await _leaders(stream.bootstrap, stream.sources)
        assert victim not in moved, "the killed broker still leads partitions"
        await asyncio.sleep(h.SIZES.broker_down_s)
        stream.control.run("start-node", str(victim))
        down_s = time.monotonic() - killed
        # gone for longer than the group's session timeout (a coordinator on the dead broker
        # has moved, its members' sessions with it)
        assert down_s > stream.settings.session_timeout_s
        return {
            "killed_node": victim,
            "partitions_it_led": leaders[victim],
            "committed_again_after_s": round(resumed_s, 1),
            "broker_gone_s": round(down_s, 1),
        }

    await _scenario(
        "cluster: leader killed",
        cluster,
        tmp_path,
        seed=61,
        unique=unique,
        disrupt=kill_the_busiest_leader,
    )


async def test_a_rolling_restart_of_every_broker_mid_stream_loses_nothing(
    cluster: tuple[Cluster, str], unique: str, tmp_path: Path
) -> None:
    """Each broker in turn stopped cleanly and started again (an upgrade), traffic flowing."""

    async def roll(stream: Stream) -> dict[str, Any]:
        began = time.monotonic()
        sending = asyncio.create_task(stream.send_the_rest())
        for node in (1, 2, 3):
            await asyncio.to_thread(stream.control.run, "stop-node", str(node))
            await asyncio.to_thread(stream.control.run, "start-node", str(node))
        await sending
        return {"roll_s": round(time.monotonic() - began, 1)}

    await _scenario(
        "cluster: rolling restart", cluster, tmp_path, seed=62, unique=unique, disrupt=roll
    )
