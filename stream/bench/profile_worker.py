"""Profile a busy worker with py-spy and print where its time goes.

Loads N simulated records (the bench's traffic) into fresh topics on LEADSTREAM_KAFKA_BOOTSTRAP,
starts a worker on them, waits until it is busy, samples it with py-spy for D seconds, stops it
and prints the frames with the most samples: on their own (self time) and including what they
call (total time). The topics are deleted at the end. The worker is `leadstream worker`
(`--worker pipeline`, RocksDB tables, as `leadstream bench` runs it) or one of the bench's Faust
baselines (`--worker bare` or `naive`, `stream.bench.baselines`). `--worker recovery` profiles
a pipeline worker restoring its tables on an empty disk: a first worker scores the records,
the leads changelog is filled to `--leads` leads (copies of the scored ones, as the bench's
recovery runs do), and a new worker is sampled from its start until a probe event on every
partition has its output (the seconds until then are printed too).

    .venv/bin/python -m stream.bench.profile_worker            # --events 100000 --seconds 20
    .venv/bin/python -m stream.bench.profile_worker --worker bare
    .venv/bin/python -m stream.bench.profile_worker --raw out.txt   # keep py-spy's raw stacks
    .venv/bin/python -m stream.bench.profile_worker --worker recovery --events 20000 --leads 300000
    .venv/bin/python -m stream.bench.profile_worker --rate 700 --seconds 15   # a steady stream
    .venv/bin/python -m stream.bench.profile_worker --rate 700 --counts   # + records per topic

With ``--counts`` the worker is left to finish what it was sent, and the records each topic
holds afterwards are printed, per source record: what one event costs in records produced
(internal, outputs, changelogs), on a steady stream or a backlog.

With ``--rate R`` nothing is loaded beforehand: after the warm-up the records are sent at R per
second while the worker is sampled, so the profile is that of a worker offered a steady stream
(small batches) rather than a backlog.

py-spy needs ptrace rights over the worker (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import TopicPartition

from stream.bench.baselines import KINDS, output_topic
from stream.bench.data import build_traffic, produce
from stream.bench.run import (
    baseline_worker,
    create_changelogs,
    create_topics,
    delete_topics,
    drain,
    fill_changelog,
    pipeline_worker,
    probe_records,
    read_changelog,
    wait_probes,
)
from stream.kafka import clients, topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings


def summarise(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self time:"]
    lines += [f"{c / samples:6.1%}  {f}" for f, c in own.most_common(top)]
    lines += ["", "total time (with callees):"]
    lines += [f"{c / samples:6.1%}  {f}" for f, c in total.most_common(top * 2)]
    return "\n".join(lines)


async def load(settings: Settings, events: int) -> None:
    await ensure_topics(settings)
    await create_changelogs(settings, ["leads", "identities"])
    if events == 0:
        return
    traffic = build_traffic(events)
    sent, seconds = await produce(settings, list(traffic.copies(events)))
    print(f"loaded {sent:,} records in {seconds:.1f} s", file=sys.stderr)


def py_spy() -> str:
    """The py-spy executable (on the PATH, else next to this Python)."""
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


async def topic_counts(settings: Settings) -> str:
    """Records in every topic of this run, in all and per source record."""
    admin = await clients.admin(settings)
    try:
        names = [
            n
            for n in await admin.list_topics()
            if n.startswith(settings.topic_prefix) or n.startswith(settings.app_id)
        ]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    async with clients.consumer(settings, group_id=None) as consumer:
        ends = await consumer.end_offsets(parts)
    per_topic: collections.Counter[str] = collections.Counter()
    for tp, end in ends.items():
        per_topic[tp.topic] += end
    sources = {settings.topic(spec.name) for spec in topics.SOURCES}
    source_total = sum(per_topic[n] for n in sources) or 1
    lines = [f"records per topic ({source_total:,} source records):"]
    lines += [
        f"{count:>10,}  {count / source_total:6.3f} per source record  {name}"
        for name, count in per_topic.most_common()
        if count
    ]
    return "\n".join(lines)


async def fill(settings: Settings, events: int, leads: int, work: Path) -> None:
    """Score ``events`` records with a first worker, then fill the leads changelog to ``leads``."""
    first = pipeline_worker(settings, work / "first", work / "first.log")
    first.start()
    try:
        await drain(settings, first.alive, 600, internal=True)
    finally:
        first.stop()
    states = await read_changelog(settings)
    sent, seconds = await fill_changelog(settings, states, leads)
    print(
        f"leads changelog filled to {len(states) + sent:,} leads in {seconds:.1f} s",
        file=sys.stderr,
    )


def profile_recovery(settings: Settings, args: argparse.Namespace, work: Path, raw: Path) -> None:
    asyncio.run(fill(settings, args.events, args.leads, work))
    ids, probes = probe_records(build_traffic(args.events), settings, "p")
    worker = pipeline_worker(settings, work / "data", work / "worker.log")
    spy = py_spy()
    worker.start()
    sampler = subprocess.Popen(
        [
            spy,
            "record",
            "-f",
            "raw",
            "--nonblocking",
            "-d",
            str(args.seconds),
            "-p",
            str(worker.pid),
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(produce(settings, probes))
        seconds = asyncio.run(wait_probes(settings, ids, worker.started_at, 900))
        print(
            f"recovered: every probe answered {seconds:.1f} s after the worker started",
            file=sys.stderr,
        )
        sampler.send_signal(signal.SIGINT)  # py-spy writes what it sampled so far
        sampler.wait(timeout=60)
    finally:
        sampler.kill()
        worker.stop()


async def sample_at_rate(
    settings: Settings, record: list[str], pid: int, raw: Path, *, rate: float, seconds: int
) -> None:
    """Send records at ``rate`` per second while py-spy samples process ``pid``."""
    records = list(build_traffic(int(rate * seconds) + 1).copies(int(rate * (seconds + 2)) + 1))
    sampler = await asyncio.create_subprocess_exec(
        *record, "-p", str(pid), "-o", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with clients.producer(settings, acks=1, linger_ms=1) as producer:
        started = time.perf_counter()
        sent = 0
        while sampler.returncode is None and sent < len(records):
            due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                delivery = records[sent]
                await producer.send(
                    settings.topic(delivery.topic), key=delivery.key, value=delivery.value
                )
                sent += 1
            await asyncio.sleep(0.002)
    await sampler.wait()
    elapsed = time.perf_counter() - started
    print(f"sent {sent:,} records in {elapsed:.1f} s ({sent / elapsed:,.0f}/s)", file=sys.stderr)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=20, help="sampling time")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before sampling")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here")
    parser.add_argument(
        "--worker",
        choices=("pipeline", "recovery", *KINDS),
        default="pipeline",
        help="the Leadstream worker (pipeline), its table recovery, or a Faust baseline",
    )
    parser.add_argument("--leads", type=int, default=300_000, help="leads to recover")
    parser.add_argument(
        "--rate", type=float, help="send records at this rate while sampling (no backlog)"
    )
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL (py-spy --gil): a thread waiting for the "
        "interpreter, such as Faust's consumer thread after a socket write, is not counted",
    )
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample C frames too (py-spy --native): the compiled scoring core's functions, the "
        "garbage collector, the C parts of pydantic and orjson",
    )
    parser.add_argument(
        "--counts",
        action="store_true",
        help="let the pipeline worker finish, then print the records in each topic",
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    spy = py_spy()
    record = [spy, "record", "-f", "raw", "--nonblocking", "-d", str(args.seconds)]
    if args.gil:
        record.append("--gil")
    if args.native:  # py-spy reads C stacks only with the process paused at each sample
        record.remove("--nonblocking")
        record.append("--native")
    token = uuid.uuid4().hex[:8]
    settings = Settings().model_copy(
        update={"app_id": f"profile-{token}", "topic_prefix": f"profile{token}."}
    )
    work = Path(tempfile.mkdtemp(prefix="leadstream-profile-"))
    raw = args.raw or work / "stacks.txt"
    asyncio.run(load(settings, 0 if args.rate else args.events))
    if args.worker == "recovery":
        try:
            profile_recovery(settings, args, work, raw)
        finally:
            asyncio.run(delete_topics(settings, [settings.topic_prefix, settings.app_id]))
        print(summarise(raw, args.top))
        return 0
    if args.worker == "pipeline":
        worker = pipeline_worker(settings, work / "data", work / "worker.log")
    else:
        asyncio.run(create_topics(settings, [output_topic(settings, args.worker)]))
        worker = baseline_worker(settings, args.worker, work / "data", work / "worker.log")
    try:
        worker.start()
        time.sleep(args.warmup)
        if args.rate:
            assert worker.pid is not None
            asyncio.run(
                sample_at_rate(
                    settings, record, worker.pid, raw, rate=args.rate, seconds=args.seconds
                )
            )
        else:
            subprocess.run(
                [*record, "-p", str(worker.pid), "-o", str(raw)],
                check=True,
                capture_output=True,
            )
        if args.counts and args.worker == "pipeline":
            asyncio.run(drain(settings, worker.alive, 600, internal=True))
            counts = asyncio.run(topic_counts(settings))
            print(counts, file=sys.stderr)
    finally:
        worker.stop()
        asyncio.run(delete_topics(settings, [settings.topic_prefix, settings.app_id]))
    print(summarise(raw, args.top))
    if args.raw is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
