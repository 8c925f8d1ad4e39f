"""The cost of a lead's decay-crossing search, on the states of the scoring bench's stream.

    .venv/bin/python -m stream.bench.crossing [--leads 2000] [--events 40000] [--seed 7]
        [--repeat 5] [--accounts]

A worker asks, after every batch and for every lead it scored, when decay will next take the
lead across a threshold (`next_crossing_all`: the MQL demotion threshold of a lead in MQL, and
the engagement band of its grade). This folds `apply_all` over the bench's stream
(`stream.bench.apply`, not timed), takes every search those questions make of the state after
each event (its decaying terms, constant, threshold and start), and times, best of `--repeat`
in the process's CPU time, the two searches the core has had: `first_below` on the microsecond
grid rounded up to the whole second, and `first_second_below` on the whole-second grid. It
checks that both give the same value for every search, counts the evaluations of the sum each
makes, and prints µs per search for each.

With `--accounts` the searches are those of the accounts instead: the stream's leads rolled up
to their accounts (`score_accounts`, as a worker applies member updates), and after every
update the search for the account's next demotion (`next_account_crossing`: one search per
segment between members leaving the engaged window).

The searches are collected by swapping the search function of the core's module, which only a
core running from its Python source sees (a compiled module calls its own functions directly):
with the compiled core installed, `main` runs the bench again in a child process with
`LEADSTREAM_PURE_PYTHON=1` (`stream.native`), and `searches` and `account_searches` refuse to
run. The timings are those of the pure-Python searches.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from stream import native
from stream.bench.apply import build_stream
from stream.model_files import load_default_models
from stream.scoring import (
    LeadState,
    ModelState,
    account_history,
    accounts,
    apply_all,
    decay,
    engine,
)

Search = tuple[list[decay.Term], float, float, float]
"""`(terms, constant, threshold, after)`: one question `first_below` answers."""


def _require_source() -> None:
    if native.BUILD.compiled:
        raise RuntimeError(
            f"the crossing searches are collected from the core's Python source: run with "
            f"{native.PURE_ENV}=1 (the compiled core calls its own functions directly)"
        )


@contextmanager
def _swapped(module: ModuleType, name: str, value: Any) -> Iterator[None]:
    """`module.name` is `value` inside the block (the module's own calls see it)."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def searches(leads: int, events: int, seed: int) -> list[Search]:
    """Every search `next_crossing_all` makes of the lead's state after each event."""
    _require_source()
    models = load_default_models()
    states: dict[str, LeadState | None] = {}
    found: list[Search] = []

    def record(st: ModelState, basis: str, threshold: float, after: float) -> None:
        if basis != "fit":  # `fit` does not decay: no search
            terms, constant = engine._decay_terms(st, basis)  # noqa: SLF001 - the core's terms
            found.append((terms, constant, threshold, after))

    for event in build_stream(leads, events, seed):
        key = event.lead_id or ""
        state = apply_all(states.get(key), event, models=models).state
        states[key] = state
        if state is not None:
            with _swapped(engine, "_first_below", record):
                engine.next_crossing_all(state)
    return found


def account_searches(leads: int, events: int, seed: int) -> list[Search]:
    """Every search `next_account_crossing` makes of an account after each member update."""
    _require_source()
    models = load_default_models()
    found: list[Search] = []
    real_search = decay.first_second_below
    real_apply = accounts.apply_members  # what `account_history` calls, swapped there below

    def record(terms: list[decay.Term], constant: float, threshold: float, after: float) -> Any:
        found.append((list(terms), constant, threshold, after))
        return real_search(terms, constant, threshold, after)

    def apply_members(*args: Any, **kwargs: Any) -> Any:
        step = real_apply(*args, **kwargs)
        if step.state is not None:
            with _swapped(decay, "first_second_below", record):
                accounts.next_account_crossing(step.state, models)
        return step

    with _swapped(account_history, "apply_members", apply_members):
        account_history.score_accounts(build_stream(leads, events, seed), models)
    return found


def rounded_up(
    terms: list[decay.Term], constant: float, threshold: float, after: float
) -> float | None:
    """The microsecond search, rounded up as the core did with it."""
    exact = decay.first_below(terms, constant, threshold, after)
    return None if exact is None else max(after, float(math.ceil(exact)))


def _time(search: Callable[..., float | None], items: list[Search], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        started = time.process_time()
        for item in items:
            search(*item)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1e6


def _evaluations(search: Callable[..., float | None], items: list[Search]) -> float:
    real = decay._sum  # noqa: SLF001 - counted, not changed
    count = 0

    def counted(*args: object) -> float:
        nonlocal count
        count += 1
        return real(*args)  # type: ignore[arg-type]

    with _swapped(decay, "_sum", counted):
        for item in items:
            search(*item)
    return count / len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--accounts", action="store_true", help="the accounts' searches")
    args = parser.parse_args(argv)
    if native.BUILD.compiled:
        return _in_python_source(sys.argv[1:] if argv is None else argv)
    collect = account_searches if args.accounts else searches
    items = collect(args.leads, args.events, args.seed)
    if not items:
        print("no crossing searches on this stream")
        return 1
    differ = sum(rounded_up(*item) != decay.first_second_below(*item) for item in items)
    print(
        f"{len(items):,} {'account ' if args.accounts else ''}crossing searches from "
        f"{args.events:,} events for {args.leads:,} leads "
        f"(seed {args.seed}); results that differ: {differ}"
    )
    for label, search in (
        ("first_below, rounded up", rounded_up),
        ("first_second_below", decay.first_second_below),
    ):
        us = _time(search, items, args.repeat)
        sums = _evaluations(search, items)
        print(
            f"{label:26s} {us:8.2f} µs/search (CPU, best of {args.repeat})  {sums:5.1f} sums/search"
        )
    return 1 if differ else 0


def _in_python_source(argv: list[str]) -> int:
    """Run the bench in a child process whose core runs from its Python source."""
    child = native.run_from_source(["-m", "stream.bench.crossing", *argv])
    print(child.stdout, end="")
    print(child.stderr, end="", file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
