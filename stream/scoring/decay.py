"""Exact, order-independent time decay (see docs/ARCHITECTURE.md, "Exact decay").

Points `p` earned at time `t` are worth `p · 2^(-(now - t)/h)` at `now`, for half-life `h`. A
running sum is kept as `(S, T)`, its value as of time `T`:

- an event at `t >= T`: `S = S · 2^(-(t - T)/h) + p`, `T = t`
- a late event at `t < T`: `S = S + p · 2^(-(T - t)/h)`, `T` unchanged
- read at `now >= T`: `S · 2^(-(now - T)/h)`

so `S(now) = Σ pᵢ · 2^(-(now - tᵢ)/h)` whatever the order the events arrived in. The code uses
the decay rate `k = ln 2 / h` (`2^(-x/h) = e^(-k·x)`); `k = 0` means the points never decay.
Times are epoch seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["add", "first_below", "value_at"]

Term = tuple[float, float, float]
"""`(S, T, k)`: a running sum, the time it is as of, and its decay rate."""


def add(s: float, t_ref: float, points: float, t: float, rate: float) -> tuple[float, float]:
    """`(S, T)` after adding `points` earned at `t` (on time or late)."""
    if t >= t_ref:
        return (s * math.exp(-rate * (t - t_ref)) if rate else s) + points, t
    return s + (points * math.exp(-rate * (t_ref - t)) if rate else points), t_ref


def value_at(s: float, t_ref: float, now: float, rate: float) -> float:
    """The value of `(S, T)` at `now`."""
    return s * math.exp(-rate * (now - t_ref)) if rate else s


def _sum(terms: Sequence[Term], constant: float, at: float) -> float:
    return constant + math.fsum(s * math.exp(-k * (at - t)) for s, t, k in terms)


def first_below(
    terms: Sequence[Term], constant: float, threshold: float, after: float
) -> float | None:
    """The first whole microsecond at or after `after` at which `constant + Σ terms` is below
    `threshold`, or `None` if it never will be.

    Every term must have `S >= 0` and `k > 0`, so the sum only falls with time (towards
    `constant`). With one decay rate the crossing has a closed form: for `A` the sum as of
    `after`, `t* = after + ln(A / (threshold - constant)) / k`, i.e. `T + h·log2(S/threshold)`;
    the answer is the microsecond on or after it at which the sum is first below. A sum of
    exponentials with different rates has no closed form; it is found by bisection on the
    microsecond grid between `after` and an upper bound at which every term is at most
    `(threshold - constant)/n` (so the sum is at most the threshold), about 50 evaluations.
    """
    if _sum(terms, constant, after) < threshold:
        return after
    room = threshold - constant
    live = [(s, t, k) for s, t, k in terms if s > 0.0]
    if room <= 0.0 or not live:
        return None  # the sum never gets below `constant >= threshold`
    rates = {k for _, _, k in live}
    if len(rates) == 1:
        k = live[0][2]
        amount = _sum(live, 0.0, after)
        guess = after + math.log(amount / room) / k
        lo = max(math.floor(after * 1e6), math.floor(guess * 1e6) - 2)
        if _sum(live, constant, lo / 1e6) < threshold:
            lo = math.floor(after * 1e6)
        hi = math.ceil(guess * 1e6) + 2
    else:
        n = len(live)
        bound = max(t + math.log(n * s / room) / k for s, t, k in live)
        lo = math.floor(after * 1e6)
        hi = max(lo + 1, math.ceil(bound * 1e6) + 1)
    step = 1
    while _sum(live, constant, hi / 1e6) >= threshold:  # guard against rounding at the bound
        lo, hi = hi, hi + step
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _sum(live, constant, mid / 1e6) < threshold:
            hi = mid
        else:
            lo = mid
    return hi / 1e6
