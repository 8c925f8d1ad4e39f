"""Due times per key and partition, for the decay timer and identity expiry.

Each worker keeps the due times of the keys in the partitions it owns: when a lead's decayed
engagement will next cross a threshold downwards (``next_crossing``), or when an anonymous
visitor's held activity expires. A tick pops only what is due, so no tick scans every lead.
The schedule lives in memory; on partition assignment the worker rebuilds it for the new
partitions from the table (one pass per assignment), and drops it for revoked ones.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

COMPACT_SLACK = 1024
"""Superseded heap entries a partition may carry beyond its live ones before its heap is rebuilt."""


@dataclass(slots=True)
class DueSchedule:
    """A min-heap per partition with lazy deletion: ``set`` replaces a key's due time.

    A replaced due time stays in the heap until it comes up, and a lead's due time moves with
    most of its events while coming up only days later, so the heap would grow by an entry per
    event (about 130 bytes) for days. When a partition's heap holds more than twice its live
    keys (plus ``COMPACT_SLACK``) it is rebuilt from them: linear work once per as many sets,
    and memory bounded by the keys scheduled.
    """

    _heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    _due: dict[int, dict[str, float]] = field(default_factory=dict)

    def set(self, partition: int, key: str, due: float | None) -> None:
        """Schedule ``key`` at ``due`` (epoch seconds); ``None`` unschedules it."""
        dues = self._due.setdefault(partition, {})
        if due is None:
            dues.pop(key, None)
            return
        if dues.get(key) == due:
            return
        dues[key] = due
        heap = self._heaps.setdefault(partition, [])
        heapq.heappush(heap, (due, key))
        if len(heap) > 2 * len(dues) + COMPACT_SLACK:
            heap = [(when, name) for name, when in dues.items()]
            heapq.heapify(heap)
            self._heaps[partition] = heap

    def set_if_absent(self, partition: int, key: str, due: float) -> None:
        """Schedule ``key`` at ``due`` unless it has a due time already (set since)."""
        if key not in self._due.get(partition, {}):
            self.set(partition, key, due)

    def pop_due(self, now: float) -> list[tuple[int, str]]:
        """Every (partition, key) due at or before ``now``, removed from the schedule."""
        out: list[tuple[int, str]] = []
        for partition, heap in self._heaps.items():
            dues = self._due.get(partition, {})
            while heap and heap[0][0] <= now:
                due, key = heapq.heappop(heap)
                if dues.get(key) == due:  # else: superseded by a later set()
                    del dues[key]
                    out.append((partition, key))
        return out

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the partitions this worker no longer owns."""
        for partition in partitions:
            self._heaps.pop(partition, None)
            self._due.pop(partition, None)

    def entries(self) -> int:
        """Heap entries held, superseded ones included (what the schedule costs in memory)."""
        return sum(len(heap) for heap in self._heaps.values())

    def due_time(self, partition: int, key: str) -> float | None:
        return self._due.get(partition, {}).get(key)

    def __len__(self) -> int:
        return sum(len(dues) for dues in self._due.values())
