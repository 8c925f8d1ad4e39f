"""``leadstream bench connect --kind hubspot`` on a short backlog: a HubSpot connector on the real
broker delivers every change to HubSpot's contract server (its own process, run from
tests/crm_fakes with HubSpot's limit of 100 requests per 10 s) once and in each lead's order,
within the batch limit. The speed figures are printed, not asserted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_a_short_backlog_reaches_the_contract_server_once_and_in_order(
    bench_connect: Callable[..., tuple[str, dict[str, Any]]],
) -> None:
    table, figures = bench_connect("--kind", "hubspot", "--changes", "300", "--leads", "120")
    assert "| limit_used_pct |" in table

    # the contract server's own record: each change saved once, each lead's in order
    assert figures["saved_inputs"] == figures["saved_distinct_changes"] == 300
    assert figures["saved_duplicates"] == figures["missing_changes"] == 0
    assert figures["leads_out_of_order"] == 0
    assert figures["delivered_once_in_order"] is True
    # and the connector's: nothing dead-lettered, every call it made accepted
    assert figures["delivered"] == 300 and figures["dead_lettered"] == 0
    assert figures["requests_accepted"] == figures["calls"]
    assert figures["requests_429"] == figures["requests_other_refusals"] == 0
    assert figures["batch_min"] >= 1 and figures["batch_max"] <= 100
    assert figures["limit_requests_per_10s"] == 100
