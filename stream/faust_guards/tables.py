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
from typing import Any

from faust import streams

__all__ = ["writing_for"]


class writing_for:
    """Table reads and writes in this block belong to ``event``'s partition.

    A class rather than a ``contextlib.contextmanager`` generator: it is entered for every
    record of a batch, and a generator costs several times more per block."""

    __slots__ = ("event", "token")

    def __init__(self, event: Any) -> None:
        self.event = event
        self.token: Any = None

    def __enter__(self) -> None:
        self.token = streams._current_event.set(weakref.ref(self.event))

    def __exit__(self, *exc: object) -> None:
        streams._current_event.reset(self.token)
