"""The worker's native heap hands free memory back (stream.worker.native_memory), on glibc."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stream.worker import native_memory

pytestmark = pytest.mark.skipif(
    not native_memory.is_glibc(), reason="the C library is not glibc (nothing to limit or trim)"
)

# A child process, so the test's own heap does not matter: it fills 200 MB of malloc'd blocks,
# keeps the last one (so the heap's top cannot shrink by itself), frees the rest, and reports
# its resident memory before and after a trim.
CHILD = """
import sys
from stream.worker import native_memory

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

blocks = [bytes(2048) + bytes([i % 256]) for i in range(100_000)]
pinned = blocks[-1]
del blocks
before = rss()
trimmed = native_memory.trim()
after = rss()
print(before, after, int(trimmed), pinned[-1])
"""


def test_trim_hands_freed_memory_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout.split()
    before, after, trimmed = int(out[0]), int(out[1]), int(out[2])
    assert trimmed == 1
    assert before - after > 100 * 2**20, (before, after)


def test_the_arena_limit_is_accepted() -> None:
    assert native_memory.limit_arenas(native_memory.ARENAS) is True
