"""The lead table's stored value, the RocksDB options of the worker's tables, and the bounded
cache of decoded lead records."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from stream.settings import Settings

__all__ = ["LIVE_LEADS", "MAX_CONTROL_IDS", "LeadRecord", "LiveCache", "store_options"]

MAX_CONTROL_IDS = 64
"""Control message ids remembered per lead (merges are rare; this bounds the state)."""
LIVE_LEADS = 10_000
"""Leads whose decoded records the processor keeps in memory (least recently used dropped)."""


@dataclass(slots=True)
class LeadRecord:
    """The one value stored per lead id.

    ``state`` is the scoring core's state for every model; ``anonymous_ids`` the visitor ids
    linked to the lead (so an erase reaches them); ``merged_into`` marks a lead absorbed by a
    merge, which keeps its last state until the surviving lead has it; ``controls`` the ids of
    recently applied control messages; ``due`` when decay next crosses a threshold (epoch
    seconds, rounded up; ``None``: never, or merged), kept so that a worker taking the lead's
    partition schedules it without decoding its state. ``applied`` is the offset, in the lead's
    partition of the internal topic, of the last record applied to the state: a record read
    again after a crash or a rebalance (its state was written, its position not yet saved) is
    skipped however many of the lead's events came after it, where the state's memory of recent
    event ids covers only the last ``SEEN_IDS``. ``live`` (not stored) is the engine's decoded
    ``state`` when the processor has it in memory (``Step.live``). ``account``: the account the
    lead last sent its contribution to and a digest of it (``stream.worker.accounts``).
    """

    state: dict[str, Any] | None = None
    anonymous_ids: list[str] = field(default_factory=list)
    merged_into: str | None = None
    controls: list[str] = field(default_factory=list)
    due: int | None = field(default=None, compare=False)
    applied: int | None = field(default=None, compare=False)
    live: Any = field(default=None, compare=False, repr=False)
    account: list[str] | None = None

    def copy(self) -> LeadRecord:
        """A copy a handler can change without touching this one (lists are replaced, not
        changed in place, by every handler)."""
        return LeadRecord(
            self.state,
            self.anonymous_ids,
            self.merged_into,
            self.controls,
            self.due,
            self.applied,
            self.live,
            self.account,
        )

    def already_applied(self, offset: int | None) -> bool:
        """Whether the internal record at ``offset`` was applied to this state already."""
        return offset is not None and self.applied is not None and offset <= self.applied

    def mark_applied(self, offset: int | None) -> None:
        if offset is not None and (self.applied is None or offset > self.applied):
            self.applied = offset

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.state is not None:
            out["s"] = self.state
        if self.anonymous_ids:
            out["a"] = self.anonymous_ids
        if self.merged_into is not None:
            out["m"] = self.merged_into
        if self.controls:
            out["c"] = self.controls
        if self.due is not None:
            out["d"] = self.due
        if self.applied is not None:
            out["o"] = self.applied
        if self.account is not None:
            out["k"] = self.account
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeadRecord:
        return cls(
            state=data.get("s"),
            anonymous_ids=list(data.get("a", ())),
            merged_into=data.get("m"),
            controls=list(data.get("c", ())),
            due=data.get("d"),
            applied=data.get("o"),
            account=data.get("k"),
        )

    def remember_control(self, control_id: str) -> bool:
        """Record a control message id; False when it was applied already."""
        if control_id in self.controls:
            return False
        self.controls = [*self.controls[-(MAX_CONTROL_IDS - 1) :], control_id]
        return True


def store_options(settings: Settings) -> dict[str, int | str] | None:
    """RocksDB options of a table: memory bounded per partition store (Faust's defaults hold up
    to three 64 MiB memtables and a 2 GiB read cache per store, so a worker's memory grows for
    a long while before it levels off), and the block compression, its dictionary and the block
    size (applied by ``faust_guards.patches.guard_rocksdb_compression``). The memory store takes
    none."""
    if settings.store != "rocksdb":
        return None
    kib, mib = 2**10, 2**20
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_mb * mib,
        "max_write_buffer_number": 2,
        "target_file_size_base": 4 * settings.rocksdb_write_buffer_mb * mib,
        "block_cache_size": settings.rocksdb_block_cache_mb * mib,
        "compression": settings.rocksdb_compression,
        "compression_dict_bytes": settings.rocksdb_dict_kb * kib,
        "zstd_train_bytes": settings.rocksdb_dict_train_kb * kib,
        "block_size": settings.rocksdb_block_kb * kib,
    }


class LiveCache:
    """Decoded records of recently used leads, each with the stored bytes it was decoded from
    (least recently used dropped beyond ``size``): a lead whose stored bytes are still those is
    not decoded again."""

    def __init__(self, size: int = LIVE_LEADS) -> None:
        self.size = size
        self._records: OrderedDict[str, tuple[bytes, LeadRecord]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, lead_id: str, raw: bytes) -> LeadRecord | None:
        """The kept record of ``lead_id`` if it was decoded from ``raw``."""
        kept = self._records.get(lead_id)
        if kept is None or kept[0] != raw:
            return None
        self._records.move_to_end(lead_id)
        return kept[1]

    def keep(self, lead_id: str, raw: bytes, record: LeadRecord) -> None:
        self._records[lead_id] = (raw, record)
        self._records.move_to_end(lead_id)
        if len(self._records) > self.size:
            self._records.popitem(last=False)

    def remember_live(self, lead_id: str, live: Any) -> None:
        """The decoded form of the kept record's (unchanged) state, for its next input."""
        kept = self._records.get(lead_id)
        if kept is not None:
            kept[1].live = live

    def drop(self, lead_id: str) -> None:
        self._records.pop(lead_id, None)
