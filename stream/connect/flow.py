"""The delivery core's arithmetic: retry delays, the rate limit and the offsets it may commit.

Pure and clock-free (every time is an argument), so each rule is tested on its own:

- `retry_delay`: exponential backoff with full jitter (a random wait between 0 and
  ``min(cap, initial * 2 ** (attempt - 1))``), or exactly the receiver's ``Retry-After``.
- `TokenBucket`: at most `burst` calls at once, then `rate` per second; a ``Retry-After`` holds
  every call until it has passed.
- `PartitionLedger`: the offsets of one partition read but not yet done; the offset to commit is
  the lowest one not done (everything below it is delivered, skipped or dead-lettered).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

__all__ = ["Backoff", "PartitionLedger", "TokenBucket", "retry_delay"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before trying a change again."""

    initial_s: float = 0.5
    """The cap of the first wait (full jitter: the wait is uniform in ``[0, cap]``)."""
    max_s: float = 60.0
    """The cap never grows beyond this."""

    def cap(self, attempt: int) -> float:
        """The largest wait after the `attempt`-th failed call (1 for the first)."""
        exponent = min(max(attempt - 1, 0), 62)  # 2**62 s is long past any max_s
        return min(self.max_s, self.initial_s * 2.0**exponent)


def retry_delay(
    backoff: Backoff, attempt: int, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before the next call after the `attempt`-th failure: the receiver's
    ``Retry-After`` when it sent one, else a full-jitter draw from `backoff`."""
    if retry_after is not None:
        return max(retry_after, 0.0)
    return rng.uniform(0.0, backoff.cap(attempt))


class TokenBucket:
    """A token bucket that hands out waits rather than sleeping itself.

    `reserve(cost, now)` takes `cost` tokens and returns how long the caller must wait before
    its call. Tokens may go below zero, so concurrent callers queue up in the order they asked
    and the long-run rate stays `rate` whatever the cost of each call.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated = now
        self._held_until = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now

    def reserve(self, cost: int, now: float) -> float:
        """Take `cost` tokens; the seconds to wait before using them (0: go now)."""
        self._refill(now)
        self._tokens -= cost
        wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        return max(wait, self._held_until - now, 0.0)

    def refund(self, cost: int, now: float) -> None:
        """Give back `cost` tokens reserved and not used (never beyond the burst)."""
        self._refill(now)
        self._tokens = min(self.burst, self._tokens + cost)

    def hold(self, seconds: float, now: float) -> None:
        """No call before ``now + seconds`` (a receiver's ``Retry-After``)."""
        self._held_until = max(self._held_until, now + seconds)

    @property
    def tokens(self) -> float:
        """Tokens left at the last reservation (negative: calls are queued)."""
        return self._tokens


class PartitionLedger:
    """The offsets of one partition that were read and are not done yet."""

    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._heap: list[int] = []
        self._next: int | None = None

    def read(self, offset: int) -> None:
        """`offset` was read and is now in flight."""
        self._pending.add(offset)
        heapq.heappush(self._heap, offset)
        self._advance(offset)

    def passed(self, offset: int) -> None:
        """`offset` was read and needs nothing (done at once)."""
        self._advance(offset)

    def _advance(self, offset: int) -> None:
        if self._next is None or offset + 1 > self._next:
            self._next = offset + 1

    def done(self, offset: int) -> None:
        """`offset` was delivered, skipped or dead-lettered."""
        self._pending.discard(offset)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def committable(self) -> int | None:
        """The offset to commit: the lowest not done, or one past the last read when all are
        done (`None` before anything was read)."""
        while self._heap and self._heap[0] not in self._pending:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self._next
