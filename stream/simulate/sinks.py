"""Where simulated traffic goes: JSONL files, the ground-truth CSV, or the real Kafka topics.

JSONL: one record per line, in delivery order, as a JSON object
``{"topic": <contract topic name>, "key": <UTF-8 key or null>, "value": <the value as text>}``.
``value`` is the record value's bytes decoded as UTF-8, so ``line["value"].encode()`` gives back
exactly what goes to Kafka; a value that is not UTF-8 (a malformed message made of random bytes)
is written as ``"value_b64"`` (standard base64) instead. Topic names carry no environment prefix.

Ground truth per lead: a CSV with the header ``lead_id,persona,converted,privacy_proxy,
link_scanner`` (``converted`` and ``privacy_proxy`` are 1 or 0; ``link_scanner`` names the gateway
scanning the lead's mail, empty for none). Per event: a CSV next to it (``*.events.csv``) with
the header ``event_id,lead_id,type,occurred_at,made_by,machine``, one row per event a machine
made or ingest marked as a machine's (every other event is a person's and unmarked): ``made_by``
is ``person``, ``privacy proxy``, ``link scanner`` or ``web scraper``; ``machine`` is why ingest
marked it (the event's ``machine`` field, else the source's flag), empty when it did not. Per
account (a buying group): a CSV next to it (``*.accounts.csv``) with the header
``account_id,bought,members`` (``bought`` is 1 or 0; ``members``: lead ids separated by spaces).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from aiokafka.errors import KafkaError

from schemas.codec import dumps, loads
from stream.errors import ConfigurationError, InfrastructureError
from stream.kafka import clients
from stream.kafka.admin import ensure_topics
from stream.kafka.clients import Record
from stream.settings import Settings
from stream.simulate.traffic import (
    AccountTruth,
    Delivery,
    LeadTruth,
    Simulation,
    marked_at_ingest,
)

__all__ = [
    "account_truth_path_for",
    "delivery_line",
    "event_truth_path_for",
    "parse_line",
    "read_account_truth",
    "read_event_truth",
    "read_jsonl",
    "read_truth",
    "send_to_kafka",
    "truth_path_for",
    "wall_offsets",
    "write_account_truth",
    "write_event_truth",
    "write_jsonl",
    "write_truth",
]


# ----------------------------------------------------------------------------------- JSONL


def delivery_line(delivery: Delivery) -> bytes:
    """One JSONL line (with its newline) for a delivery."""
    record: dict[str, Any] = {
        "topic": delivery.topic,
        "key": None if delivery.key is None else delivery.key.decode(),
    }
    try:
        record["value"] = delivery.value.decode()
    except UnicodeDecodeError:
        record["value_b64"] = base64.b64encode(delivery.value).decode("ascii")
    return dumps(record) + b"\n"


def parse_line(line: bytes | str) -> Delivery:
    """The delivery in one JSONL line (the inverse of `delivery_line`)."""
    try:
        record = loads(line.encode() if isinstance(line, str) else line)
        key = record["key"]
        if "value_b64" in record:
            value = base64.b64decode(record["value_b64"], validate=True)
        else:
            value = record["value"].encode()
        return Delivery(record["topic"], None if key is None else key.encode(), value)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"not a simulated-traffic line: {str(line)[:80]!r}") from exc


@contextmanager
def _open(path: Path | str, mode: str) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdout.buffer if "w" in mode else sys.stdin.buffer
        return
    if "w" in mode:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open(mode + "b") as handle:
        yield handle


def write_jsonl(deliveries: Iterable[Delivery], path: Path | str) -> int:
    """Write deliveries to `path` (``-``: standard output); returns how many."""
    count = 0
    with _open(path, "w") as out:
        for delivery in deliveries:
            out.write(delivery_line(delivery))
            count += 1
    return count


def read_jsonl(path: Path | str) -> list[Delivery]:
    """The deliveries in a JSONL file, in order."""
    with _open(path, "r") as handle:
        return [parse_line(line) for line in handle if line.strip()]


def truth_path_for(out: Path | str) -> Path:
    """Where the ground truth goes next to an output file: ``traffic.jsonl`` →
    ``traffic.truth.csv``."""
    path = Path(out)
    return path.with_name(f"{path.stem}.truth.csv")


def event_truth_path_for(truth: Path | str) -> Path:
    """Where the per-event ground truth goes next to the per-lead one: ``traffic.truth.csv`` →
    ``traffic.truth.events.csv``."""
    path = Path(truth)
    return path.with_name(f"{path.stem}.events{path.suffix or '.csv'}")


def write_truth(truth: Mapping[str, LeadTruth], path: Path | str) -> None:
    """The ground truth per lead as CSV: ``lead_id,persona,converted,privacy_proxy,
    link_scanner``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("lead_id", "persona", "converted", "privacy_proxy", "link_scanner"))
        for lead_id, row in truth.items():
            writer.writerow(
                (
                    lead_id,
                    row.persona,
                    int(row.converted),
                    int(row.privacy_proxy),
                    row.link_scanner or "",
                )
            )


def read_truth(path: Path | str) -> dict[str, LeadTruth]:
    """The ground truth written by `write_truth` (or by earlier versions, without the machine
    columns)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return {
            row["lead_id"]: LeadTruth(
                row["persona"],
                row["converted"] == "1",
                row.get("privacy_proxy") == "1",
                row.get("link_scanner") or None,
            )
            for row in csv.DictReader(handle)
        }


def account_truth_path_for(truth: Path | str) -> Path:
    """Where the per-account ground truth goes next to the per-lead one: ``traffic.truth.csv``
    → ``traffic.truth.accounts.csv``."""
    path = Path(truth)
    return path.with_name(f"{path.stem}.accounts{path.suffix or '.csv'}")


def write_account_truth(simulation: Simulation, path: Path | str) -> int:
    """The ground truth per account as CSV: ``account_id,bought,members`` (the members' lead
    ids separated by spaces); returns the number of accounts."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("account_id", "bought", "members"))
        for account_id, row in simulation.accounts.items():
            writer.writerow((account_id, int(row.bought), " ".join(row.members)))
    return len(simulation.accounts)


def read_account_truth(path: Path | str) -> dict[str, AccountTruth]:
    """The rows written by `write_account_truth`."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return {
            row["account_id"]: AccountTruth(tuple(row["members"].split()), row["bought"] == "1")
            for row in csv.DictReader(handle)
        }


def write_event_truth(simulation: Simulation, path: Path | str) -> int:
    """Which machine made each event, and what ingest marked, as CSV (the module docstring
    describes the rows); returns the number of rows."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("event_id", "lead_id", "type", "occurred_at", "made_by", "machine"))
        for index, event in enumerate(simulation.events):
            maker = simulation.maker(index)
            marked = marked_at_ingest(event)
            if maker is None and not marked:
                continue
            reason = event.machine or ("the source's machine flag" if marked else "")
            writer.writerow(
                (
                    event.event_id,
                    simulation.person_of(event),
                    event.type,
                    event.occurred_at.isoformat().replace("+00:00", "Z"),
                    maker or "person",
                    reason,
                )
            )
            rows += 1
    return rows


def read_event_truth(path: Path | str) -> list[dict[str, str]]:
    """The rows written by `write_event_truth`."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------------- Kafka


def wall_offsets(
    at: Sequence[float], *, rate: float | None = None, speed: float | None = None
) -> list[float] | None:
    """When (wall seconds after the first send) each delivery is due, or `None`: at once.

    `rate`: at most that many deliveries per second. `speed`: simulated seconds per wall second
    (86400: a simulated day per second), measured from the first delivery's simulated time.
    """
    if rate is None and speed is None:
        return None
    origin = min(at, default=0.0)
    out = []
    for i, when in enumerate(at):
        due = 0.0
        if rate is not None:
            due = i / rate
        if speed is not None:
            due = max(due, (when - origin) / speed)
        out.append(due)
    return out


async def send_to_kafka(
    deliveries: Sequence[Delivery],
    settings: Settings,
    *,
    due: Sequence[float] | None = None,
    create_topics: bool = True,
    progress: Callable[[int], None] | None = None,
    progress_every: float = 1.0,
) -> int:
    """Send every delivery to ``settings.topic(delivery.topic)`` in order; returns how many.

    `due`: wall seconds after the start at which each one may be sent (see `wall_offsets`);
    `None` sends as fast as the broker takes them. `progress` is called with the number sent
    about every `progress_every` seconds, and once at the end.
    """
    if due is not None and len(due) != len(deliveries):
        raise ValueError("due must have one entry per delivery")
    if create_topics:
        await ensure_topics(settings)

    async def paced() -> AsyncIterator[Record]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, delivery in enumerate(deliveries):
            if due is not None:
                wait = started + due[i] - loop.time()
                if wait > 0.002:
                    await asyncio.sleep(wait)
            yield settings.topic(delivery.topic), delivery.key, delivery.value

    async with clients.producer(settings, acks="all", linger_ms=5) as producer:
        try:
            sent = await clients.send_batch(
                producer, paced(), progress=progress, progress_every=progress_every
            )
        except KafkaError as exc:
            raise InfrastructureError(f"sending to Kafka failed: {exc}") from exc
    return sent
