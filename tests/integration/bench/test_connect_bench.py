"""``leadstream bench connect`` (the webhook) on a short backlog: the receiver process counts
every change once. The speed figures are printed, not asserted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_a_short_backlog_reaches_the_receiver_once(
    bench_connect: Callable[..., tuple[str, dict[str, Any]]],
) -> None:
    _, figures = bench_connect("--changes", "300", "--leads", "60", "--delay-ms", "5")
    assert figures["delivered"] == 300 and figures["dead_lettered"] == 0
    assert figures["receiver_requests"] == figures["receiver_distinct_ids"] == 300
    assert figures["delivered_per_s"] > 0
