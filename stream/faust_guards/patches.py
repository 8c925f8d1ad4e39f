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

**Reads after a seek keep the seek's offset** (``guard_read_offsets``), **a flush empties
the producer buffer** (``guard_buffer_flush``) and **commits count each offset once**
(``guard_commit_offsets``): see each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
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


# ----------------------------------------------------------------------------- read offsets

_EPOCH = "_leadstream_seek_epoch"
_SEEKED = "_leadstream_seeked"


def guard_read_offsets() -> None:
    """Do not let a record handed over across a seek leave a stale read offset behind.

    Faust's fetch loop hands a record to the streams and *then* records its offset as read.
    When the hand-over waits (the stream's buffer is full) and the partitions are meanwhile
    sought back to their committed offsets (a rebalance), the read offset recorded afterwards is
    the stale record's: the records between the committed offset and it, fetched again, are
    dropped as "already read" and never reach the agent. The guard puts back the read offset the
    seek set. (The processor's ``stream.faust_guards.sequence`` catches records that slip past the
    agent by any route; this keeps the common one from happening.)
    """
    if getattr(Consumer, _EPOCH, None) is not None:
        return
    setattr(Consumer, _EPOCH, 0)
    original_seek = Consumer.perform_seek
    original_getmany = Consumer.getmany

    async def perform_seek(self: Any) -> None:
        await original_seek(self)
        setattr(self, _SEEKED, dict(self._read_offset))
        setattr(self, _EPOCH, getattr(self, _EPOCH, 0) + 1)

    async def getmany(
        self: Any,
        timeout: float,  # noqa: ASYNC109 - Faust's own signature (called with timeout=)
    ) -> AsyncIterator[tuple[Any, Any]]:
        async for tp, message in original_getmany(self, timeout):
            epoch = getattr(self, _EPOCH, 0)
            yield tp, message
            if getattr(self, _EPOCH, 0) != epoch:
                # Handed over across a seek: the read offset just taken from it is stale.
                seeked: dict[Any, int | None] = getattr(self, _SEEKED, {})
                if seeked.get(tp) is not None:
                    self._read_offset[tp] = seeked[tp]
                else:
                    self._read_offset.pop(tp, None)

    Consumer.perform_seek = perform_seek
    Consumer.getmany = getmany


# ----------------------------------------------------------------------------- buffer flush

_FLUSH_GUARDED = "_leadstream_flush_guard"


def guard_buffer_flush() -> None:
    """Make the producer buffer's flush wait until the buffer is empty.

    Table writes (the changelog) go through Faust's producer buffer, which a background task
    hands to the Kafka client. Before committing offsets Faust flushes the producer, but the
    buffer's flush *returns* as soon as no message was sent for 0.1 s, however many are still
    waiting: on a busy machine the commit then goes out ahead of state writes still in the
    buffer, and a worker killed at that moment restarts after records whose state was never
    written (found by the reliability suite's ``kill -9`` scenario). The guarded flush waits
    until the buffer is empty and the message the background task took is handed over.
    """
    from faust.transport.producer import ProducerBuffer  # noqa: PLC0415

    if getattr(ProducerBuffer, _FLUSH_GUARDED, False):
        return
    original_send = ProducerBuffer._send_pending

    async def _send_pending(self: Any, fut: Any) -> None:
        self._leadstream_in_flight = getattr(self, "_leadstream_in_flight", 0) + 1
        try:
            await original_send(self, fut)
        finally:
            self._leadstream_in_flight -= 1

    async def flush(self: Any) -> None:
        while self.size or getattr(self, "_leadstream_in_flight", 0):
            if self.state != "running":
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.1)

    ProducerBuffer._send_pending = _send_pending
    ProducerBuffer.flush = flush
    setattr(ProducerBuffer, _FLUSH_GUARDED, True)


# ----------------------------------------------------------------------------- commit offsets

_OFFSETS_GUARDED = "_leadstream_offsets_guard"


def guard_commit_offsets() -> None:
    """Count each offset once when Faust works out how far a partition can be committed.

    Faust commits a partition up to the first break in its sorted list of acknowledged offsets.
    Offsets it skipped while reading (its "gaps") join that list when the commit reaches them,
    but without entering the index that keeps an offset from being acknowledged twice, and a
    gap reaching past the highest acknowledged offset keeps its last offset to add again
    later. Either way an offset can be listed twice, every copy breaks the run, and the commits
    then move one offset per commit interval (seen after a restart: a partition's commits
    crawling 2-3 offsets every 5 s behind a worker that had handled everything). The guard
    moves the gaps up to the highest acknowledged offset into the list itself (indexed, each
    offset once), and drops offsets already committed, before Faust's own reckoning.
    """
    if getattr(Consumer, _OFFSETS_GUARDED, False):
        return
    original = Consumer._new_offset

    def _new_offset(self: Any, tp: Any) -> int | None:
        acked: list[int] = self._acked[tp]
        if acked:
            index: set[int] = self._acked_index[tp]
            top = max(acked)
            gaps = self._gap[tp]
            if gaps:
                taken = [o for g in gaps.overlap(0, top + 1) for o in range(g.begin, g.end)]
                if taken:
                    last = max(taken)
                    gaps.chop(0, max(last, top) + 1)
                    acked.extend(taken)
                    index.update(taken)
            committed = self._committed_offset[tp]
            unique = sorted(set(acked))
            if committed is not None:
                stale = [o for o in unique if o < committed]
                if stale:
                    index.difference_update(stale)
                    unique = unique[len(stale) :]
            acked[:] = unique
        result: int | None = original(self, tp)
        return result

    Consumer._new_offset = _new_offset
    setattr(Consumer, _OFFSETS_GUARDED, True)
