"""The worker's Python heap: what the cyclic garbage collector looks at, and how often.

Python's collector runs a full collection (generation 2) whenever the objects promoted since the
last one exceed a quarter of those it already holds, and a full collection walks every tracked
object. A worker holds about 180,000 of them before its first record (modules, classes,
functions, the contract's pydantic validators, Faust's services), all alive until it stops, and
its micro-batches promote many short-lived ones (a batch's decoded events, the leads' decoded
states the cache replaces), so a full collection came every two seconds or so on a busy worker and
stopped the agent for 45 to 240 ms (on a loaded 2-core machine): the longest waits between an
event and its stage change.

``settle`` is called once the app is built, before the worker starts: it collects what is
garbage by then and freezes the rest (``gc.freeze``: moved to a permanent generation that no
collection walks), and raises the youngest generation's threshold from 700 allocations to
``YOUNG_THRESHOLD``, so objects that live for one batch mostly die young instead of being
promoted. Objects made later are collected as before; the frozen ones are never freed, which is
what they would be anyway.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle"]

YOUNG_THRESHOLD = 10_000
"""Allocations (less deallocations) of tracked objects between two collections of the youngest
generation (Python's default: 700)."""


def settle() -> int:
    """Collect, freeze what is alive, and raise the youngest generation's threshold; returns
    how many objects are frozen."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    return gc.get_freeze_count()
