"""Table writes for a batch of events: faust-streaming issue #497.

Faust finds the partition a table write belongs to (its local store and its changelog message)
from the event the stream is handing out at the time (``faust.streams.current_event``). An agent
that takes its records in batches (``stream.take_events``) writes after the batch was handed out,
when no event is current, and Faust refuses: "Cannot modify table key from outside of stream
iteration" (or, in the RocksDB store, an assertion). ``writing_for(event)`` makes ``event`` the
current event for the writes in its block, so each write lands on the partition of the event it
belongs to, exactly as if it were made while that event was iterated.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust import streams

__all__ = ["writing_for"]


@contextmanager
def writing_for(event: Any) -> Iterator[None]:
    """Table reads and writes in this block belong to ``event``'s partition."""
    token = streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        streams._current_event.reset(token)
