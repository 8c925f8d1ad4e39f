"""The worker's native heap: fewer malloc arenas, and free memory handed back to the system.

RocksDB allocates its memtables, caches and compaction buffers with the C library's ``malloc``
from its own threads. glibc gives threads their own arenas (up to eight per core) and returns
freed memory to the system only from the top of each heap, so a worker's resident memory hardly
ever came down: the memory of a flushed memtable stayed with the process. The worker therefore
limits malloc to ``ARENAS`` arenas before any RocksDB thread starts (``limit_arenas``) and asks
malloc every ``TRIM_EVERY_S`` seconds to hand free pages back (``trim``), so resident memory
follows what the worker holds, down as well as up. Both are no-ops where the C library is not
glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from typing import Any

__all__ = ["ARENAS", "TRIM_EVERY_S", "is_glibc", "limit_arenas", "trim"]

log = logging.getLogger(__name__)

ARENAS = 2
"""malloc arenas of a worker process (glibc's default: eight per core)."""

TRIM_EVERY_S = 60.0
"""Seconds between two hand-backs of free native memory (one takes milliseconds)."""

_M_ARENA_MAX = -8  # glibc's mallopt parameter number for the arena limit


@functools.cache
def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc (musl, macOS)
    return libc


def is_glibc() -> bool:
    """Whether the C library is glibc (else ``limit_arenas`` and ``trim`` do nothing)."""
    return _glibc() is not None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit malloc to ``arenas`` arenas (call before threads allocate); False when not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Hand the native heap's free pages back to the system; False when none were (or not
    glibc)."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
