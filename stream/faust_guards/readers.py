"""Reads of faust-streaming state that Faust keeps in private attributes (no public API).

| function | Faust attribute read |
| --- | --- |
| ``committed_offsets(consumer)`` | ``faust.transport.consumer.Consumer._committed_offset`` |
| ``active_databases(store)`` | ``faust.stores.rocksdb.Store._dbs_for_actives`` |
| ``open_databases(store)`` | ``faust.stores.rocksdb.Store._dbs`` |

Upstream issue: none filed. Each is covered by ``tests/unit/faust_guards/test_faust_symbols.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["active_databases", "committed_offsets", "open_databases"]


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The consumer's committed offset per partition (the next offset to read; ``None``: none
    committed yet). Raises ``AttributeError`` when ``consumer`` is not a Faust consumer."""
    offsets: Mapping[Any, int | None] = consumer._committed_offset
    return offsets


def active_databases(store: Any) -> Callable[[], Iterable[Any]] | None:
    """For a RocksDB table store, a function listing the open databases of its active
    partitions; ``None`` for any other store (the memory store)."""
    dbs: Callable[[], Iterable[Any]] | None = getattr(store, "_dbs_for_actives", None)
    return dbs


def open_databases(store: Any) -> Mapping[int, Any] | None:
    """For a RocksDB table store, its open databases (every partition, standbys included) by
    partition; ``None`` for any other store (the memory store)."""
    dbs: Mapping[int, Any] | None = getattr(store, "_dbs", None)
    return dbs
