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

__all__ = ["add", "first_below", "first_second_below", "value_at"]

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
    exp = math.exp
    return constant + math.fsum([s * exp(-k * (at - t)) for s, t, k in terms])


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


_NEWTON_STEPS = 8
"""At most this many Newton steps for the guess of `first_second_below` (it is checked)."""


def _crossing_guess(amounts: list[tuple[float, float]], room: float, span: float) -> float:
    """About how long after `after` the decaying amounts `(a, k)` (as of `after`) sum to `room`,
    at or before the crossing: Newton's method on the logarithm of the sum, a convex, falling
    function of time (a log-sum-exp), from the time a single decay at the fastest rate takes
    (`span / k_max`, at or before the crossing), stays on that side and converges quadratically.
    """
    exp = math.exp
    target = math.log(room)
    x = span / max(k for _, k in amounts)
    for _ in range(_NEWTON_STEPS):
        level = slope = 0.0
        for a, k in amounts:
            part = a * exp(-k * x)
            level += part
            slope += part * k
        if level <= 0.0 or slope <= 0.0:
            break
        step = (math.log(level) - target) * level / slope
        x += step
        if not step > 0.25:  # also stops on a NaN
            break
    return x


def first_second_below(
    terms: Sequence[Term], constant: float, threshold: float, after: float
) -> float | None:
    """`max(after, ceil(first_below(...)))`, as a float: the first whole second at or after
    `after` at which `constant + Σ terms` is below `threshold`, or `None` if it never will be.

    The same value as rounding `first_below` up, found on the whole-second grid: the sum only
    falls with time and whole seconds lie on the microsecond grid, so the first whole second
    below is the ceiling of the first microsecond below. The crossing is guessed by
    `_crossing_guess`, then settled on whole seconds with the sum itself: the search keeps a
    bracket (the answer is after `lo` and at or before `hi`; the first `hi`, the time a single
    decay at the slowest rate takes, is checked before it is returned), probes the guess and
    its neighbours first, and bisects if they did not settle it. Three or four evaluations of
    the sum where `first_below` takes about 50.
    """
    start = math.ceil(after)
    if _sum(terms, constant, after) < threshold:
        return float(start)
    room = threshold - constant
    live = [(s, t, k) for s, t, k in terms if s > 0.0]
    if room <= 0.0 or not live:
        return None  # the sum never gets below `constant >= threshold`
    exp = math.exp
    amounts = [(s * exp(-k * (after - t)), k) for s, t, k in live]
    amount = math.fsum(a for a, _ in amounts)
    span = math.log(amount / room) if amount > room else 0.0
    x = _crossing_guess(amounts, room, span)
    lo = start - 1  # never returned: the answer is at or after `start`
    hi = max(start, math.ceil(after + span / min(k for _, k in amounts)) + 1)
    checked = False
    guess = math.ceil(after + x) if math.isfinite(x) else hi
    probes = 3
    grow = 1
    while True:
        while hi - lo > 1:
            if probes:
                probes -= 1
                mid = min(hi - 1, max(lo + 1, guess))
            else:
                mid = (lo + hi) // 2
            if _sum(live, constant, mid) < threshold:
                hi, checked, guess = mid, True, mid - 1
            else:
                lo, guess = mid, mid + 1
        if checked or _sum(live, constant, hi) < threshold:
            return float(hi)
        lo, hi = hi, hi + grow  # rounding left the sum at the bound: look further
        grow *= 2
