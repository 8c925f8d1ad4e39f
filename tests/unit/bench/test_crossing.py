"""The crossing-search bench collects the worker's searches and finds both searches agree."""

from __future__ import annotations

import pytest

from stream.bench import crossing
from stream.scoring import decay


def test_the_searches_are_those_of_the_stream_and_both_give_the_same_seconds() -> None:
    items = crossing.searches(30, 600, 7)
    assert items, "the bench's stream makes leads cross thresholds"
    for terms, constant, threshold, after in items:
        assert all(k > 0.0 for _, _, k in terms)  # groups that never decay are in the constant
        expected = crossing.rounded_up(terms, constant, threshold, after)
        assert decay.first_second_below(terms, constant, threshold, after) == expected


def test_a_small_run_prints_both_searches(capsys: pytest.CaptureFixture[str]) -> None:
    assert crossing.main(["--leads", "30", "--events", "600", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "results that differ: 0" in lines[0]
    assert [line.split("  ")[0].strip() for line in lines[1:]] == [
        "first_below, rounded up",
        "first_second_below",
    ]


def test_the_account_searches_are_those_of_the_accounts_after_each_update() -> None:
    items = crossing.account_searches(60, 1_500, 7)
    assert items, "the bench's stream makes accounts reach a scored stage"
    for terms, constant, threshold, after in items:
        assert all(s > 0.0 for s, _, _ in terms)  # negative terms are in the constant
        expected = crossing.rounded_up(terms, constant, threshold, after)
        assert decay.first_second_below(terms, constant, threshold, after) == expected


def test_a_small_accounts_run_prints_both_searches(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--leads", "60", "--events", "1500", "--repeat", "1", "--accounts"]
    assert crossing.main(args) == 0
    assert "account crossing searches" in capsys.readouterr().out.splitlines()[0]
