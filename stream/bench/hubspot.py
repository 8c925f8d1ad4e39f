"""`leadstream bench connect --kind hubspot`: how much of HubSpot's rate limit a HubSpot connector
uses on a large backlog, and whether every change arrived once and in order.

A backlog of stage changes (leads with email addresses, each walking subscriber → lead → MQL →
..., and optionally a share of them recycled at the end) is loaded into a fresh stage-changes
topic; HubSpot's contract server (the stand-in of the CRM v3 contacts API in the repository's
``tests/crm_fakes``, enforcing the documented batch upsert, its 100 inputs per call and its rate
limit of 100 requests per 10 seconds with 429 and ``Retry-After``) runs as a process of its own;
a HubSpot connector (the delivery core in this process, with its default rate and batching)
delivers the backlog from the beginning.

The figures come from the contract server's own log: requests it accepted per second over the
span from the first to the last (and as a share of its limit), the busiest 10 seconds, the 429s
it answered and the batch sizes; changes delivered per second (from the connector's first
delivery to its last); and, from the inputs the server saved, whether each change arrived
exactly once and each lead's changes in order. The topics are deleted at the end.

The contract server is part of the source repository, not of the installed package: the bench
runs it from ``tests/`` beside the ``stream`` package, and says so when it is not there.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from schemas.outputs import StageChanged
from schemas.stages import Stage
from stream.bench.connect import (
    bench_topics,
    deliver_backlog,
    free_port,
    get_json,
    produce_changes,
    sample_changes,
    serving,
)
from stream.connect.core import Connector, DeliveryPolicy
from stream.connect.hubspot import MAX_BATCH, HubspotDestination
from stream.connect.mapping import parse_mapping
from stream.errors import ConfigurationError
from stream.settings import Settings

__all__ = [
    "HubspotBenchConfig",
    "analyse",
    "backlog",
    "busiest_window",
    "contract_server_dir",
    "run",
]

SOURCE_TESTS = Path(__file__).resolve().parents[2] / "tests"
"""Where a source checkout keeps the contract servers (``tests/crm_fakes``)."""
WINDOW_S = 10.0
"""HubSpot's rate-limit window: requests per 10 seconds."""


@dataclass(frozen=True)
class HubspotBenchConfig:
    changes: int = 50_000
    leads: int = 10_000
    rate_per_10s: int = 100
    """The contract server's limit (HubSpot: 100 for a private app on Free and Starter)."""
    recycled_pct: int = 0
    """Percent of the leads moved back to `recycled` after their walk: HubSpot takes such a
    move only after the contact's stage is cleared, a request of its own."""
    concurrency: int | None = None
    """Calls in flight at once; `None`: the settings' (`LEADSTREAM_CONNECT_CONCURRENCY`)."""
    tests_dir: Path = SOURCE_TESTS

    @classmethod
    def quick_mode(cls) -> HubspotBenchConfig:
        return cls(changes=10_000, leads=2_500)


def contract_server_dir(tests_dir: Path) -> Path:
    """`tests_dir` when it holds HubSpot's contract server; else a `ConfigurationError` saying
    where the bench looked and what to do."""
    if (tests_dir / "crm_fakes" / "hubspot.py").is_file():
        return tests_dir
    raise ConfigurationError(
        f"HubSpot's contract server is not here: {tests_dir / 'crm_fakes'} does not exist. It is "
        "part of Leadstream's source repository (tests/crm_fakes), not of the installed "
        "package: run `leadstream bench connect --kind hubspot` from a source checkout "
        "installed with `pip install -e .`"
    )


def busiest_window(times: Iterable[float], window_s: float = WINDOW_S) -> int:
    """The most of `times` (seconds) that fall within any `window_s` seconds."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def analyse(
    calls: Sequence[Sequence[Any]],
    applied: Sequence[Sequence[Any]],
    expected: dict[str, list[str]],
    rate_per_10s: int,
) -> dict[str, Any]:
    """The contract server's log read against the backlog.

    `calls`: ``(arrival_s, status, inputs)`` per upsert call; `applied`: ``(contact, trace id,
    only_clears)`` per saved input, in order; `expected`: each lead's change ids in order."""
    accepted = [(at, inputs) for at, status, inputs in calls if 200 <= status < 300]
    times = [at for at, _ in accepted]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    per_s = (len(times) - 1) / span if span else None
    # past the first window the initial burst no longer counts: the rate a long backlog keeps
    later = [at for at in times if at >= min(times, default=0.0) + WINDOW_S]
    later_span = max(later) - min(later) if len(later) > 1 else 0.0
    limit_per_s = rate_per_10s / WINDOW_S
    sizes = [inputs for _, inputs in accepted]
    saved: dict[str, list[str]] = defaultdict(list)
    for contact, trace, only_clears in applied:
        if not only_clears:
            saved[contact].append(trace)
    wanted = {trace for traces in expected.values() for trace in traces}
    got = [trace for traces in saved.values() for trace in traces]
    distinct = set(got)
    out_of_order = sum(
        1 for lead, traces in expected.items() if list(dict.fromkeys(saved.get(lead, []))) != traces
    )
    return {
        "limit_requests_per_10s": rate_per_10s,
        "requests_accepted": len(times),
        "requests_429": sum(1 for _, status, _ in calls if status == 429),
        "requests_other_refusals": sum(
            1 for _, status, _ in calls if not 200 <= status < 300 and status != 429
        ),
        "requests_span_s": round(span, 3),
        "requests_per_s": round(per_s, 3) if per_s is not None else None,
        "limit_used_pct": round(100 * per_s / limit_per_s, 1) if per_s is not None else None,
        "requests_per_s_after_10s": round((len(later) - 1) / later_span, 3) if later_span else None,
        "busiest_10s_requests": busiest_window(times),
        "batch_mean": round(statistics.fmean(sizes), 1) if sizes else None,
        "batch_min": min(sizes, default=None),
        "batch_max": max(sizes, default=None),
        "batches_full_pct": round(100 * sum(1 for n in sizes if n >= MAX_BATCH) / len(sizes), 1)
        if sizes
        else None,
        "saved_inputs": len(got),
        "saved_clears": sum(1 for _, _, only_clears in applied if only_clears),
        "saved_distinct_changes": len(distinct & wanted),
        "saved_duplicates": len(got) - len(distinct),
        "missing_changes": len(wanted - distinct),
        "unexpected_changes": len(distinct - wanted),
        "leads_out_of_order": out_of_order,
        "delivered_once_in_order": len(got) == len(wanted) == len(distinct & wanted)
        and out_of_order == 0,
    }


def backlog(config: HubspotBenchConfig) -> list[StageChanged]:
    """The changes to deliver: `sample_changes` over leads with email addresses, then, for
    `recycled_pct` percent of the leads, a move back to `recycled` once their walk is over."""
    records = sample_changes(config.changes, config.leads, domain="example.com")
    last = {record.lead_id: record for record in records}
    back = [
        StageChanged.build(
            lead_id=record.lead_id,
            model=record.model,
            model_version=record.model_version,
            from_stage=record.to_stage,
            to_stage=Stage.RECYCLED,
            reason="sales rejected the lead",
            triggering_event_id=f"{record.triggering_event_id}-recycled",
            score=record.score,
            occurred_at=record.occurred_at + timedelta(seconds=1),
        )
        for n, record in enumerate(last.values())
        if n % 100 < config.recycled_pct
    ]
    return records + back


def _expected(records: Sequence[StageChanged]) -> dict[str, list[str]]:
    by_lead: dict[str, list[str]] = defaultdict(list)
    for record in records:
        by_lead[record.lead_id].append(str(record.event_id))
    return dict(by_lead)


async def run(
    config: HubspotBenchConfig, base: Settings, log: Callable[[str], None]
) -> dict[str, Any]:
    """Load the backlog, deliver it to the contract server, return the figures."""
    tests_dir = contract_server_dir(config.tests_dir)
    port = free_port()
    token = f"pat-na1-bench-{secrets.token_hex(8)}"
    url = f"http://127.0.0.1:{port}"
    server = [sys.executable, "-m", "crm_fakes", "hubspot", "--port", str(port)]
    server += ["--rate-per-10s", str(config.rate_per_10s), "--token", token]
    path = os.pathsep.join(filter(None, [str(tests_dir), os.environ.get("PYTHONPATH")]))
    async with (
        bench_topics(base, "hubspot") as settings,
        serving(server, f"{url}/_fake/stats", env={**os.environ, "PYTHONPATH": path}),
    ):
        records = backlog(config)
        log(f"loading {len(records):,} stage changes over {config.leads:,} leads")
        await produce_changes(settings, records)
        destination = HubspotDestination(
            access_token=token,
            mapping=parse_mapping("", where="the built-in mapping").hubspot,
            api_url=url,
            timeout=settings.connect_timeout_s,
        )
        policy = DeliveryPolicy.from_settings(settings)
        if config.concurrency is not None:
            policy = replace(policy, concurrency=config.concurrency)
        connector = Connector(settings, destination, policy)
        log(
            f"delivering to HubSpot's contract server at {url} "
            f"(limit {config.rate_per_10s} requests per 10 s)"
        )
        try:
            done = await deliver_backlog(connector, len(records))
        finally:
            await destination.aclose()
        stats = await asyncio.to_thread(get_json, f"{url}/_fake/stats")
    report, seconds = done.report, done.seconds
    figures = analyse(stats["calls"], stats["applied"], _expected(records), config.rate_per_10s)
    return {
        "changes": len(records),
        "leads": config.leads,
        "recycled_leads": len(records) - config.changes,
        "connector_rate_per_s": policy.rate_per_s or destination.rate_per_s,
        "connector_burst": policy.burst or destination.burst,
        "concurrency": policy.concurrency,
        "max_in_flight": policy.max_in_flight,
        "delivered": report.delivered,
        "dead_lettered": report.dead_lettered,
        "retried": report.retried,
        "calls": report.calls,
        "seconds": round(seconds, 3),
        "delivered_per_s": round(report.delivered / seconds, 1) if seconds else None,
        **figures,
        "connector_cpu_us_per_change": round(1e6 * done.cpu_s / max(report.delivered, 1), 1),
    }
