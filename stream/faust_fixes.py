"""Guards around faust-streaming behaviour that could lose records.

**Skipped records must not be acknowledged.** While a rebalance is under way (flow control
suspended), or when a record was fetched under an earlier consumer generation, Faust's stream
skips the record without handing it to the agent (and without tracking it), and then
*acknowledges* it "so the lag does not grow". The acknowledged offset is committed, and a worker
that keeps or receives the partition resumes after a record nobody processed: the record is lost
(the class of problem in faust-streaming #216, #221, #318). The guard refuses the
acknowledgement of a record that was never tracked, i.e. never handed to a stream: its offset
stays uncommitted, so the record is read again after the rebalance. Records the agent did
process are tracked and acknowledged as before.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer

_GUARDED = "_leadstream_skip_guard"


def guard_skipped_acks() -> None:
    """Install the guard (idempotent; affects every Faust consumer in the process)."""
    if getattr(Consumer, _GUARDED, False):
        return
    original = Consumer.ack

    def ack(self: Any, message: Any) -> bool:
        if not getattr(message, "tracked", True):
            return False  # skipped, never processed: leave it to be read again
        result: bool = original(self, message)
        return result

    Consumer.ack = ack
    setattr(Consumer, _GUARDED, True)
