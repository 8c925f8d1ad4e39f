"""The worker's Python heap settles before it starts (stream.worker.heap)."""

from __future__ import annotations

import subprocess
import sys

# A child process, so the test runner's own heap and collector settings stay as they are. It
# holds 100,000 objects (the worker's modules and app), leaves a reference cycle as garbage,
# settles, and reports what a collection walks and what it can still free.
CHILD = """
import gc, weakref
from stream.worker import heap

class Node:
    pass

kept = [Node() for _ in range(100_000)]
cycle = Node(); cycle.me = cycle
gone = weakref.ref(cycle)
del cycle
walked_before = len(gc.get_objects())
frozen = heap.settle()
walked_after = len(gc.get_objects())
late = Node(); late.me = late
late_ref = weakref.ref(late)
del late
gc.collect()
print(frozen, walked_before, walked_after, gone() is None, late_ref() is None,
      gc.get_threshold()[0], len(kept))
"""


def test_settle_freezes_what_is_alive_and_collects_the_rest() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, walked_before, walked_after = int(out[0]), int(out[1]), int(out[2])
    garbage_freed, later_garbage_freed, young, kept = out[3], out[4], int(out[5]), int(out[6])
    assert frozen >= 100_000  # the held objects (and the interpreter's own objects) are frozen
    assert walked_before > 100_000 > walked_after  # no collection walks them any more
    assert garbage_freed == "True"  # garbage made before settling was freed, not frozen
    assert later_garbage_freed == "True"  # objects made later are collected as before
    assert young == 10_000
    assert kept == 100_000
