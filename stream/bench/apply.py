"""Throughput of the scoring core: `apply()` events per second on one core.

    .venv/bin/python -m stream.bench.apply [--leads 10000] [--events 200000] [--repeat 3]
        [--batch 500] [--json FILE] [--accounts [--account-size 3]] [--digest]

Builds a realistic stream first (not timed): leads arrive over 60 days; each visits in sessions
of page views a few minutes apart (some on the pricing page), opens and clicks emails, downloads,
watches, attends webinars, fills forms, a few request demos, get profile updates (identify,
enrichment) and CRM feedback; 3% of events arrive up to an hour late and 1% are replays. Then
times, on one core:

- `apply_all` with every model of the default model file (what the stream processor does);
- `apply` per model;
- `apply_batch` with every model, on the stream cut into batches of `--batch` consecutive records
  (500), each split by lead in order of first appearance: one call per lead and batch with that
  lead's events of the batch in arrival order (what a worker consuming micro-batches does; only
  the latest score per lead and model of a batch is built);
- `apply_all` plus a `to_dict`/`from_dict` round trip of the lead's state per event (what a
  table that stores serialised values costs on top);
- `LeadState.to_dict` and `LeadState.from_dict` of every lead's final state, per lead (what a
  worker pays to write a lead's state once per batch, and to read a state it does not hold);
- only the account path on top of `apply_batch` (`--accounts`): the same batches with the
  profiles' addresses at companies of `--account-size` people on average, scored under the
  default models without their `accounts:` section and with it plus, per lead and batch, its
  contribution compared with the one it last sent and, per account and batch, the changed
  contributions applied to the account's stored state (read, fold, write), as the worker does.

`--digest` times nothing: it prints a SHA-256 digest of everything `apply_all` and `apply_batch`
give on the stream (every output record, as published and field by field, every contribution and
every lead's final state, stored form and exact in-memory values), so two builds of the scoring
core can be compared for byte-identical results on the same stream.

The pre-built events are frozen out of the garbage collector's view (`gc.freeze()`), as a
worker's long-lived objects would be; the collector stays on for everything `apply` allocates.
Each figure is the best of `--repeat` runs from empty states (the machine may be shared), in
wall time and in the process's CPU time (which other jobs on a shared machine disturb less);
`--json FILE` also writes them, with the load average before and after.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from schemas.events import EventBase, Traits
from schemas.examples import make_event
from stream import native
from stream.model_files import load_default_models
from stream.scoring import (
    LeadState,
    ModelSet,
    ModelState,
    ScoringModel,
    Transition,
    apply,
    apply_all,
    apply_batch,
)

START = datetime(2025, 3, 1, tzinfo=UTC)
PAGES = ["/", "/features", "/integrations", "/blog/scoring", "/docs/api", "/about", "/customers"]
INDUSTRIES = ["software", "saas", "retail", "fintech", "education", "manufacturing"]
TITLES = ["Head of Marketing", "Engineer", "CEO", "Student", "Marketing Manager", "VP Sales"]


def _events_for_lead(  # noqa: PLR0912 - one branch per kind of activity
    rnd: random.Random, lead: str, budget: int
) -> list[EventBase]:
    """One lead's events, in event-time order."""
    events: list[EventBase] = []
    t = START + timedelta(seconds=rnd.uniform(0, 60 * 86_400))
    n = 0

    def add(kind: str, at: datetime, **fields: object) -> None:
        nonlocal n
        n += 1
        events.append(
            make_event(kind, event_id=f"{lead}-{n}", lead_id=lead, occurred_at=at, **fields)
        )

    add(
        "identify",
        t,
        anonymous_id=None,
        traits=Traits(email=f"{lead}@{rnd.choice(['gmail.com', 'acme-corp.com', 'initech.io'])}"),
    )
    while len(events) < budget:
        roll = rnd.random()
        if roll < 0.45:  # a session of page views
            for _ in range(rnd.randint(1, 6)):
                path = "/pricing" if rnd.random() < 0.12 else rnd.choice(PAGES)
                add(
                    "page_viewed",
                    t,
                    url=f"https://acme.example{path}",
                    path=path,
                    anonymous_id=None,
                )
                t += timedelta(seconds=rnd.uniform(5, 240))
        elif roll < 0.70:
            add("email_delivered", t)
            if rnd.random() < 0.5:
                add(
                    "email_opened",
                    t + timedelta(minutes=rnd.uniform(1, 600)),
                    machine_open=rnd.random() < 0.3,
                )
            if rnd.random() < 0.1:
                add("email_clicked", t + timedelta(minutes=rnd.uniform(1, 900)))
        elif roll < 0.78:
            add(rnd.choice(["file_downloaded", "video_viewed", "ad_clicked"]), t)
        elif roll < 0.84:
            add(rnd.choice(["social_liked", "social_shared", "social_commented"]), t)
        elif roll < 0.88:
            add("webinar_attended", t)
        elif roll < 0.91:
            add("form_submitted", t, form_id=rnd.choice(["newsletter", "contact-us", "survey"]))
        elif roll < 0.93:
            add(
                "profile_updated",
                t,
                traits=Traits(
                    industry=rnd.choice(INDUSTRIES),
                    company_size=rnd.choice([5, 40, 120, 900]),
                    job_title=rnd.choice(TITLES),
                    age=rnd.randint(20, 60),
                ),
            )
        elif roll < 0.94:
            add("demo_requested", t)
        elif roll < 0.95:
            add(rnd.choice(["sales_accepted", "sales_rejected", "opportunity_created"]), t)
        elif roll < 0.96:
            add("email_unsubscribed", t)
        else:
            add("email_sent", t)
        t += timedelta(hours=rnd.expovariate(1 / 40))
    return events[:budget]


def build_stream(leads: int, events: int, seed: int) -> list[EventBase]:
    rnd = random.Random(seed)
    per_lead = max(2, events // leads)
    stream: list[EventBase] = []
    for i in range(leads):
        stream.extend(_events_for_lead(rnd, f"lead-{i:06d}", rnd.randint(2, 2 * per_lead - 2)))
    stream.sort(key=lambda e: e.occurred_at)
    # Some events arrive late (up to an hour), some twice.
    for i in range(len(stream)):
        if rnd.random() < 0.03:
            j = min(len(stream) - 1, i + rnd.randint(1, 200))
            stream[i], stream[j] = stream[j], stream[i]
    replays = [rnd.choice(stream) for _ in range(len(stream) // 100)]
    for event in replays:
        stream.insert(rnd.randrange(len(stream)), event)
    return stream[:events]


T = TypeVar("T")


def lead_batches(stream: list[EventBase], size: int) -> list[tuple[str, list[EventBase]]]:
    """The stream cut into batches of `size` records, each split by lead (in order of the lead's
    first event in the batch; each lead's events in arrival order)."""
    groups: list[tuple[str, list[EventBase]]] = []
    for start in range(0, len(stream), size):
        by_lead: dict[str, list[EventBase]] = {}
        for event in stream[start : start + size]:
            by_lead.setdefault(event.lead_id or "", []).append(event)
        groups.extend(by_lead.items())
    return groups


def _time(
    label: str,
    items: Sequence[T],
    make_step: Callable[[], Callable[[T], int]],
    repeat: int,
    events: int,
    *,
    unit: str = "event",
) -> dict[str, float]:
    """Best of `repeat` runs over `items` (`events` events, or other `unit`s, in all);
    `make_step` gives a step function with fresh, empty states (it returns the number of
    outputs)."""
    best = math.inf
    best_cpu = math.inf
    outputs = 0
    for _ in range(repeat):
        step = make_step()
        gc.collect()
        gc.freeze()
        outputs = 0
        started = time.perf_counter()
        started_cpu = time.process_time()
        for item in items:
            outputs += step(item)
        best_cpu = min(best_cpu, time.process_time() - started_cpu)
        best = min(best, time.perf_counter() - started)
        gc.unfreeze()
    rate = events / best
    print(
        f"{label:44s} {rate:>10,.0f} {unit}s/s  {best / events * 1e6:6.2f} µs/{unit}  "
        f"CPU {best_cpu / events * 1e6:6.2f} µs/{unit}  {outputs / events:.2f} outputs/{unit}",
        flush=True,
    )
    return {
        "events_per_s": rate,
        "us_per_event": best / events * 1e6,
        "cpu_us_per_event": best_cpu / events * 1e6,
    }


def run(  # noqa: PLR0915 - one timed section per row
    leads: int, events: int, seed: int, repeat: int, batch: int = 500
) -> dict[str, object]:
    models: ModelSet = load_default_models()
    print(f"building {events:,} events for {leads:,} leads (seed {seed}) ...", flush=True)
    stream = build_stream(leads, events, seed)
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{len(stream):,} events, models: {', '.join(models.ids)}, best of {repeat}; "
        f"{native.BUILD.describe()}\n"
    )
    results: dict[str, object] = {}
    lead_states: dict[str, LeadState | None] = {}

    def all_models() -> Callable[[EventBase], int]:
        lead_states.clear()

        def step(event: EventBase) -> int:
            key = event.lead_id or ""
            result = apply_all(lead_states.get(key), event, models=models)
            lead_states[key] = result.state
            return len(result.outputs)

        return step

    n = len(stream)
    results["all"] = _time(f"apply_all, {len(models)} models", stream, all_models, repeat, n)

    for model in models.models:

        def one_model(model: ScoringModel = model) -> Callable[[EventBase], int]:
            states: dict[str, ModelState | None] = {}

            def step(event: EventBase) -> int:
                key = event.lead_id or ""
                result = apply(states.get(key), event, model=model)
                states[key] = result.state
                return len(result.outputs)

            return step

        results[model.id] = _time(f"apply, model {model.id}", stream, one_model, repeat, n)

    groups = lead_batches(stream, batch)
    batch_states: dict[str, LeadState | None] = {}

    def batches() -> Callable[[tuple[str, list[EventBase]]], int]:
        batch_states.clear()

        def step(group: tuple[str, list[EventBase]]) -> int:
            key, lead_events = group
            result = apply_batch(batch_states.get(key), lead_events, models=models)
            batch_states[key] = result.state
            return len(result.outputs)

        return step

    results["batch"] = _time(
        f"apply_batch, {len(models)} models, batches of {batch}", groups, batches, repeat, n
    )
    print(f"{'':44s} {n / len(groups):10.1f} events per call")

    def stored_states() -> Callable[[EventBase], int]:
        stored: dict[str, dict[str, object]] = {}

        def step(event: EventBase) -> int:
            key = event.lead_id or ""
            raw = stored.get(key)
            state = LeadState.from_dict(raw, models) if raw is not None else None
            result = apply_all(state, event, models=models)
            if result.state is not None:
                stored[key] = result.state.to_dict()
            return len(result.outputs)

        return step

    results["all_serialised"] = _time(
        "apply_all + state from_dict/to_dict", stream, stored_states, repeat, n
    )

    kept = [state for state in lead_states.values() if state is not None]
    documents = [state.to_dict() for state in kept]

    def write() -> Callable[[LeadState], int]:
        def step(state: LeadState) -> int:
            state.to_dict()
            return 0

        return step

    def read() -> Callable[[dict[str, object]], int]:
        def step(document: dict[str, object]) -> int:
            LeadState.from_dict(document, models)
            return 0

        return step

    results["to_dict"] = _time("LeadState.to_dict", kept, write, repeat, len(kept), unit="lead")
    results["from_dict"] = _time(
        "LeadState.from_dict", documents, read, repeat, len(documents), unit="lead"
    )

    sizes: dict[str, list[int]] = {model_id: [] for model_id in models.ids}
    ids: list[int] = []
    for state in lead_states.values():
        if state is None:
            continue
        data = state.to_dict()
        ids.append(len(data.get("i", "")))
        for model_id, model_state in data["m"].items():
            sizes[model_id].append(len(json.dumps(model_state, separators=(",", ":"))))
    print()
    for model_id, values in sizes.items():
        print(
            f"state bytes, model {model_id:9s} median {statistics.median(values):5.0f}  "
            f"p90 {statistics.quantiles(values, n=10)[-1]:5.0f}  (JSON, without event ids)"
        )
    print(f"event-id set per lead (shared)   median {statistics.median(ids):5.0f}")
    return results


def _output_text(output: object) -> str:
    """An output record as published (JSON) and as held (every field's exact value, and which
    fields were set)."""
    dump = getattr(output, "model_dump_json")  # noqa: B009 - every output is a contract model
    fields_set = sorted(getattr(output, "model_fields_set", ()))
    return f"{dump()}\n{output!r}\n{fields_set}"


def _state_text(state: LeadState | None) -> str:
    """A lead's state as stored, and its exact in-memory values the stored form rounds."""
    if state is None:
        return "None"
    parts = [json.dumps(state.to_dict(), sort_keys=True)]
    for model_id, st in sorted(state.models.items()):
        parts.append(
            f"{model_id} {st.as_of!r} {sorted(st.eng.items())!r} {sorted(st.fit.items())!r} "
            f"{st.fit_total!r} {st.caps!r} {st.window!r} {st.recent!r} {st.history!r} "
            f"{st.emitted!r} {st.hand_raise!r} {st.fact_at!r} {st.mail!r} {st.machine!r}"
        )
    return "\n".join(parts)


def digests(stream: list[EventBase], models: ModelSet, batch: int) -> dict[str, str]:
    """SHA-256 digests of what `apply_all` (event by event) and `apply_batch` (in batches of
    `batch` records, as timed) give on `stream`: their outputs, contributions and final states."""

    def one(state: LeadState | None, event: EventBase) -> Transition[LeadState]:
        return apply_all(state, event, models=models)

    def many(state: LeadState | None, events: list[EventBase]) -> Transition[LeadState]:
        return apply_batch(state, events, models=models)

    singles = [(event.lead_id or "", event) for event in stream]
    return {
        **_digest_run("apply_all", singles, one),
        **_digest_run("apply_batch", lead_batches(stream, batch), many),
    }


def _digest_run(
    name: str,
    items: Sequence[tuple[str, T]],
    step_of: Callable[[LeadState | None, T], Transition[LeadState]],
) -> dict[str, str]:
    """Digests of the outputs, contributions and final states of folding `items` (lead,
    what to apply) with `step_of`."""
    states: dict[str, LeadState | None] = {}
    outputs, scored = hashlib.sha256(), hashlib.sha256()
    for key, item in items:
        step = step_of(states.get(key), item)
        states[key] = step.state
        for output in step.outputs:
            outputs.update(_output_text(output).encode())
        scored.update(repr(step.scored).encode())
    return {
        f"{name} outputs": outputs.hexdigest(),
        f"{name} contributions": scored.hexdigest(),
        f"{name} states": _states_digest(states),
    }


def _states_digest(states: dict[str, LeadState | None]) -> str:
    digest = hashlib.sha256()
    for key in sorted(states):
        digest.update(f"{key}\n{_state_text(states[key])}\n".encode())
    return digest.hexdigest()


def _at_companies(stream: list[EventBase], size: int, seed: int) -> list[EventBase]:
    """`stream` with every profile address at one of `leads / size` companies (by lead)."""
    rnd = random.Random(seed)
    leads = sorted({e.lead_id or "" for e in stream})
    companies = max(1, len(leads) // size)
    company = {lead: rnd.randrange(companies) for lead in leads}
    out = []
    for event in stream:
        traits = getattr(event, "traits", None)
        if traits is None or traits.email is None:
            out.append(event)
            continue
        email = f"{event.lead_id}@company-{company[event.lead_id or '']}-corp.com"
        out.append(event.model_copy(update={"traits": traits.model_copy(update={"email": email})}))
    return out


def run_accounts(  # noqa: PLR0917 - the command's options, in order
    leads: int, events: int, seed: int, repeat: int, batch: int, size: int
) -> dict[str, object]:
    """The account path's cost on top of `apply_batch` (see the module docstring)."""
    from stream.scoring.accounts import (  # noqa: PLC0415
        AccountState,
        Member,
        MemberUpdate,
        apply_members,
        member_of,
        member_updates,
    )

    with_accounts = load_default_models()
    plain = ModelSet(format=with_accounts.format, models=with_accounts.models)
    stream = _at_companies(build_stream(leads, events, seed), size, seed)
    batches = [
        list(lead_batches(stream[i : i + batch], batch)) for i in range(0, len(stream), batch)
    ]
    n = len(stream)
    print(f"\n{n:,} events, companies of {size} people on average, batches of {batch}")
    results: dict[str, object] = {}

    def leads_only() -> Callable[[list[tuple[str, list[EventBase]]]], int]:
        states: dict[str, LeadState | None] = {}

        def step(groups: list[tuple[str, list[EventBase]]]) -> int:
            outputs = 0
            for key, lead_events in groups:
                result = apply_batch(states.get(key), lead_events, models=plain)
                states[key] = result.state
                outputs += len(result.outputs)
            return outputs

        return step

    results["leads_only"] = _time(
        "apply_batch, no accounts section", batches, leads_only, repeat, n
    )

    def with_account_path() -> Callable[[list[tuple[str, list[EventBase]]]], int]:
        states: dict[str, LeadState | None] = {}
        sent: dict[str, tuple[str, Member] | None] = {}
        stored: dict[str, dict[str, object]] = {}
        version = [0]

        def step(groups: list[tuple[str, list[EventBase]]]) -> int:
            outputs = 0
            pending: dict[str, list[MemberUpdate]] = {}
            for key, lead_events in groups:
                result = apply_batch(states.get(key), lead_events, models=with_accounts)
                states[key] = result.state
                outputs += len(result.outputs)
                now = member_of(result.state, with_accounts)
                if now == sent.get(key):
                    continue
                version[0] += 1
                at = lead_events[-1].occurred_at.timestamp()
                for account, update in member_updates(
                    key, sent.get(key), now, version=version[0], at=at
                ):
                    pending.setdefault(account, []).append(update)
                sent[key] = now
            for account, updates in pending.items():
                raw = stored.get(account)
                before = None if raw is None else AccountState.from_dict(raw)
                folded = apply_members(before, updates, account_id=account, models=with_accounts)
                if folded.state is not None and folded.state is not before:
                    stored[account] = folded.state.to_dict()
                outputs += len(folded.outputs)
            return outputs

        return step

    results["with_accounts"] = _time(
        "apply_batch + the account path", batches, with_account_path, repeat, n
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--accounts", action="store_true", help="only the account path's cost (see above)"
    )
    parser.add_argument("--account-size", type=int, default=3, help="people per company (3)")
    parser.add_argument(
        "--digest",
        action="store_true",
        help="time nothing; print digests of the outputs and states (to compare two builds)",
    )
    args = parser.parse_args(argv)
    if args.digest:
        stream = build_stream(args.leads, args.events, args.seed)
        print(f"{len(stream):,} events for {args.leads:,} leads (seed {args.seed})")
        for name, value in digests(stream, load_default_models(), args.batch).items():
            print(f"{name:26s} {value}")
        return 0
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    if args.accounts:
        results = run_accounts(
            args.leads, args.events, args.seed, args.repeat, args.batch, args.account_size
        )
    else:
        results = run(args.leads, args.events, args.seed, args.repeat, args.batch)
    if args.json:
        document = {
            "bench": "apply",
            "started_at": started_at,
            "args": vars(args) | {"json": None},
            "python": platform.python_version(),
            "machine": platform.machine(),
            "scoring_core": native.BUILD.describe(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
