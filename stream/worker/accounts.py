"""Accounts in the stream processor: leads roll up to the accounts they belong to.

Two halves, each on the partition that owns its key:

- **The lead's side** (``lead_changed``): after a lead's state changed, its account contribution
  (``stream.scoring.accounts.member_of``) is compared with the one it last sent (the lead's
  record keeps the account id and a digest of it). A changed contribution, or the leave of a
  lead that moved, lost its account key, was merged into another or was erased, is queued for
  its account; ``flush`` sends what is queued as one ``account_members`` message per account
  on the internal topic, keyed by the account id (the processor flushes once per micro-batch's
  scoring pass, so a batch sends one message per account rather than one per lead). Only leads
  with an account key produce account work. The messages are sent before the leads' states are
  written, as the leads' own records are: after a crash the leads score the same events again
  and send the same changes (same versions), which the account recognises.
- **The account's side** (``on_members``): an account's changes of a micro-batch are applied
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
from schemas.internal import AccountMember, AccountMembers, MemberChange, Tick
from schemas.outputs import AccountScoreUpdated, AccountStageChanged
from stream import metrics
from stream.faust_guards.tables import read
from stream.kafka import topics
from stream.settings import Settings
from stream.worker.port import AccountEngine
from stream.worker.schedule import DueSchedule

__all__ = ["ACCOUNTS_TABLE", "MAX_CHANGES", "AccountDesk", "account_key", "changes_of"]

ACCOUNTS_TABLE = "accounts"
MAX_CHANGES = 200
"""Member changes per ``account_members`` message at most (a few hundred bytes each; an account
with more changes in one batch gets several messages, in order)."""


def account_key(account_id: str) -> str:
    """The account's key in the due schedule."""
    return f"c:{account_id}"


def _digest(member: dict[str, Any]) -> str:
    return hashlib.blake2b(codec.dumps(member), digest_size=8).hexdigest()


def _kind(change: MemberChange) -> str:
    """The metric kind of a member change: ``update`` or ``leave``."""
    return "leave" if change.member is None else "update"


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
        write: Callable[[Any, bytes, bytes | None], None] | None = None,
    ) -> None:
        self.engine = engine
        self.write = write
        self.table = table
        self.send = send
        self.schedule = schedule
        self.partition_of = partition_of
        self.internal_name = settings.topic(topics.INTERNAL.name)
        self.scores_name = settings.topic(topics.ACCOUNT_SCORES.name)
        self.stage_changes_name = settings.topic(topics.ACCOUNT_STAGE_CHANGES.name)
        self.outbox: dict[str, list[MemberChange]] = {}
        """Changes queued per account, in order (``lead_changed``), until ``flush``."""

    # ------------------------------------------------------------------ the lead's side

    def lead_changed(
        self,
        lead_id: str,
        previous: list[str] | None,
        live: Any,
        *,
        version: int,
        at: datetime,
    ) -> list[str] | None:
        """Queue what changed for the lead's accounts (sent by ``flush``); returns what the
        lead's record keeps (``[account id, digest]``, ``None``: no account). ``previous``: what
        it kept before; ``live``: the lead's decoded state now (``None``: it has none: erased or
        merged)."""
        found = None if live is None else self.engine.account_member(live)
        now = None if found is None else [found[0], _digest(found[1])]
        if now == previous:
            return previous
        if previous is not None and (now is None or now[0] != previous[0]):
            self._queue(previous[0], MemberChange(lead_id=lead_id, version=version, occurred_at=at))
        if found is not None:
            self._queue(
                found[0],
                MemberChange(lead_id=lead_id, member=found[1], version=version, occurred_at=at),
            )
        return now

    def _queue(self, account_id: str, change: MemberChange) -> None:
        queued = self.outbox.get(account_id)
        if queued is None:
            self.outbox[account_id] = [change]
        else:
            queued.append(change)

    @property
    def queued(self) -> bool:
        """Whether changes wait for ``flush``."""
        return bool(self.outbox)

    async def flush(self) -> None:
        """Send the queued changes: one message per account (at most ``MAX_CHANGES`` changes
        each), the changes in the order they were made."""
        outbox, self.outbox = self.outbox, {}
        for account_id, changes in outbox.items():
            key = account_id.encode()
            for start in range(0, len(changes), MAX_CHANGES):
                message = AccountMembers(
                    account_id=account_id, changes=changes[start : start + MAX_CHANGES]
                )
                await self.send(self.internal_name, key, codec.encode(message))
            for change in changes:
                metrics.account_member_message("sent", _kind(change))

    # ------------------------------------------------------------------ the account's side

    def load(self, account_id: str) -> dict[str, Any] | None:
        raw = read(self.table, account_id.encode())
        return None if raw is None else codec.loads(raw)

    def store(self, account_id: str, state: dict[str, Any], due: datetime | None) -> None:
        record: dict[str, Any] = {"s": state}
        if due is not None:
            record["d"] = math.ceil(due.timestamp())
        if self.write is not None:
            self.write(self.table, account_id.encode(), codec.dumps(record))
        else:
            self.table[account_id.encode()] = codec.dumps(record)
        self.schedule.set(
            self.partition_of(account_id),
            account_key(account_id),
            None if due is None else due.timestamp(),
        )

    async def on_members(self, account_id: str, changes: Sequence[MemberChange]) -> None:
        """Apply an account's member changes of a batch, in order."""
        for change in changes:
            metrics.account_member_message("applied", _kind(change))
        record = self.load(account_id)
        step = self.engine.apply_members(
            None if record is None else record["s"],
            [(c.lead_id, c.member, c.version, c.occurred_at) for c in changes],
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


def changes_of(message: AccountMembers | AccountMember) -> Sequence[MemberChange]:
    """The member changes a message carries (an ``account_member`` of an earlier release is
    one)."""
    return message.changes if isinstance(message, AccountMembers) else [message]
