"""Accounts in the stream processor: leads roll up to the accounts they belong to.

Two halves, each on the partition that owns its key:

- **The lead's side** (``lead_changed``): after a lead's state changed, its account contribution
  (``stream.scoring.accounts.member_of``) is compared with the one it last sent (the lead's
  record keeps the account id and a digest of it). A changed contribution goes to the account as
  an ``account_member`` message on the internal topic, keyed by the account id; a lead that
  moved, lost its account key, was merged into another or erased sends its old account a leave.
  Only leads with an account key produce account work. The messages are sent before the lead's
  state is written, as the lead's own records are: after a crash the lead scores the same
  events again and sends the same messages (same versions), which the account recognises.
- **The account's side** (``on_members``): an account's messages of a micro-batch are applied
  together (one read, one write of the ``accounts`` table per account per batch); the records
  it publishes go to ``leads.account-stage-changes.v1`` and the compacted
  ``leads.account-scores.v1`` before its state is written. The timer sends the account a
  ``tick`` when decay will next demote it (``on_tick``), like a lead's.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from schemas import codec
from schemas.common import ContractModel
from schemas.internal import AccountMember, Tick
from schemas.outputs import AccountScoreUpdated, AccountStageChanged
from stream import metrics
from stream.kafka import topics
from stream.settings import Settings
from stream.worker.port import AccountEngine
from stream.worker.schedule import DueSchedule

__all__ = ["ACCOUNTS_TABLE", "AccountDesk", "account_key"]

ACCOUNTS_TABLE = "accounts"


def account_key(account_id: str) -> str:
    """The account's key in the due schedule."""
    return f"c:{account_id}"


def _digest(member: dict[str, Any]) -> str:
    return hashlib.blake2b(codec.dumps(member), digest_size=8).hexdigest()


def _kind(message: AccountMember) -> str:
    """The metric kind of a member message: ``update`` or ``leave``."""
    return "leave" if message.member is None else "update"


Send = Callable[[str, bytes, bytes | None], Awaitable[Any]]


class AccountDesk:
    """The processor's account table, topics and handlers."""

    def __init__(
        self,
        settings: Settings,
        engine: AccountEngine,
        table: Any,
        *,
        send: Send,
        schedule: DueSchedule,
        partition_of: Callable[[str], int],
    ) -> None:
        self.engine = engine
        self.table = table
        self.send = send
        self.schedule = schedule
        self.partition_of = partition_of
        self.internal_name = settings.topic(topics.INTERNAL.name)
        self.scores_name = settings.topic(topics.ACCOUNT_SCORES.name)
        self.stage_changes_name = settings.topic(topics.ACCOUNT_STAGE_CHANGES.name)

    # ------------------------------------------------------------------ the lead's side

    async def lead_changed(
        self,
        lead_id: str,
        previous: list[str] | None,
        live: Any,
        *,
        version: int,
        at: datetime,
    ) -> list[str] | None:
        """Tell the lead's accounts what changed; returns what the lead's record keeps
        (``[account id, digest]``, ``None``: no account). ``previous``: what it kept before;
        ``live``: the lead's decoded state now (``None``: it has none: erased or merged)."""
        found = None if live is None else self.engine.account_member(live)
        now = None if found is None else [found[0], _digest(found[1])]
        if now == previous:
            return previous
        if previous is not None and (now is None or now[0] != previous[0]):
            await self._send(
                AccountMember(
                    account_id=previous[0], lead_id=lead_id, version=version, occurred_at=at
                )
            )
        if found is not None:
            await self._send(
                AccountMember(
                    account_id=found[0],
                    lead_id=lead_id,
                    member=found[1],
                    version=version,
                    occurred_at=at,
                )
            )
        return now

    async def _send(self, message: AccountMember) -> None:
        await self.send(self.internal_name, message.account_id.encode(), codec.encode(message))
        metrics.account_member_message("sent", _kind(message))

    # ------------------------------------------------------------------ the account's side

    def load(self, account_id: str) -> dict[str, Any] | None:
        raw = self.table.get(account_id.encode())
        return None if raw is None else codec.loads(raw)

    def store(self, account_id: str, state: dict[str, Any], due: datetime | None) -> None:
        record: dict[str, Any] = {"s": state}
        if due is not None:
            record["d"] = math.ceil(due.timestamp())
        self.table[account_id.encode()] = codec.dumps(record)
        self.schedule.set(
            self.partition_of(account_id),
            account_key(account_id),
            None if due is None else due.timestamp(),
        )

    async def on_members(self, account_id: str, messages: Sequence[AccountMember]) -> None:
        """Apply an account's member messages of a batch, in order."""
        for message in messages:
            metrics.account_member_message("applied", _kind(message))
        record = self.load(account_id)
        step = self.engine.apply_members(
            None if record is None else record["s"],
            [(m.lead_id, m.member, m.version, m.occurred_at) for m in messages],
            account_id=account_id,
        )
        await self.emit(step.outputs)
        if step.state is not None:
            self.store(account_id, step.state, step.due)

    async def on_tick(self, message: Tick) -> None:
        record = self.load(message.key)
        if record is None:
            return
        step = self.engine.account_tick(record["s"], message.at, account_id=message.key)
        await self.emit(step.outputs)
        if step.state is not None:
            self.store(message.key, step.state, step.due)
            return
        due = self.engine.account_due(record["s"])
        if due is not None and due <= message.at:
            due = None  # nothing crossed though due: do not spin on it
        self.schedule.set(
            self.partition_of(message.key),
            account_key(message.key),
            None if due is None else due.timestamp(),
        )

    async def emit(self, outputs: Iterable[ContractModel]) -> None:
        for record in outputs:
            if isinstance(record, AccountScoreUpdated):
                name = self.scores_name
            elif isinstance(record, AccountStageChanged):
                name = self.stage_changes_name
            else:  # pragma: no cover - the engine only produces the two
                raise TypeError(f"unexpected output {type(record).__name__}")
            await self.send(name, record.account_id.encode(), codec.encode(record))

    def stored_dues(self, partitions: set[int]) -> Iterator[tuple[int, str, float | None]]:
        """(partition, schedule key, due time) of every account the table holds in
        ``partitions``."""
        for key, raw in self.table.items():
            account_id = key.decode()
            part = self.partition_of(account_id)
            if part in partitions:
                due = codec.loads(raw).get("d")
                yield part, account_key(account_id), None if due is None else float(due)
