"""How `leadstream bench connect --kind hubspot` reads the contract server's log, and what it
says when the contract server is not beside the installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.bench.hubspot import SOURCE_TESTS, analyse, busiest_window, contract_server_dir
from stream.errors import ConfigurationError

EXPECTED = {"a@x.io": ["a1", "a2"], "b@x.io": ["b1"]}


def test_the_busiest_window_counts_arrivals_less_than_ten_seconds_apart() -> None:
    assert busiest_window([]) == 0
    assert busiest_window([0.0, 9.99, 10.0, 10.5, 25.0]) == 3  # 9.99, 10.0, 10.5 (and not 0.0)
    assert busiest_window([5.0, 0.0, 1.0]) == 3  # any order


def test_a_clean_run_is_delivered_once_in_order_and_rated_against_the_limit() -> None:
    calls = [(0.0, 200, 2), (0.5, 429, 1), (1.0, 200, 1)]
    applied = [("a@x.io", "a1", False), ("b@x.io", "b1", False), ("a@x.io", "a2", False)]
    figures = analyse(calls, applied, EXPECTED, rate_per_10s=10)
    assert figures["requests_accepted"] == 2 and figures["requests_429"] == 1
    assert figures["requests_per_s"] == 1.0  # one interval of a second between two calls
    assert figures["limit_used_pct"] == 100.0  # 10 per 10 s is 1 per second
    assert (figures["batch_min"], figures["batch_max"], figures["batch_mean"]) == (1, 2, 1.5)
    assert figures["delivered_once_in_order"] is True
    assert figures["missing_changes"] == figures["saved_duplicates"] == 0


def test_duplicates_gaps_and_reordering_are_each_caught() -> None:
    calls = [(0.0, 200, 3)]
    a1, a2, b1 = ("a@x.io", "a1", False), ("a@x.io", "a2", False), ("b@x.io", "b1", False)
    twice = analyse(calls, [a1, a1, a2, b1], EXPECTED, 10)
    assert twice["saved_duplicates"] == 1 and twice["delivered_once_in_order"] is False
    gap = analyse(calls, [a1, b1], EXPECTED, 10)
    assert gap["missing_changes"] == 1 and gap["delivered_once_in_order"] is False
    swapped = analyse(calls, [a2, a1, b1], EXPECTED, 10)
    assert swapped["leads_out_of_order"] == 1 and swapped["delivered_once_in_order"] is False


def test_a_clearing_input_is_not_a_second_delivery() -> None:
    applied = [
        ("a@x.io", "a1", False),
        ("a@x.io", "a2", True),  # lifecyclestage cleared before a backwards move
        ("a@x.io", "a2", False),
        ("b@x.io", "b1", False),
    ]
    figures = analyse([(0.0, 200, 2), (0.2, 200, 2)], applied, EXPECTED, 100)
    assert figures["delivered_once_in_order"] is True and figures["saved_inputs"] == 3


def test_without_the_contract_server_the_bench_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="source checkout") as raised:
        contract_server_dir(tmp_path)
    assert str(tmp_path / "crm_fakes") in str(raised.value)
    assert contract_server_dir(SOURCE_TESTS) == SOURCE_TESTS  # this checkout has it
