"""The crossing-search bench collects the worker's searches and finds both searches agree.

The searches are collected from the core's Python source (the bench swaps one of its functions):
with the compiled core installed, the tests of the collection run in a child process with
``LEADSTREAM_PURE_PYTHON=1``, as the bench's ``main`` does.
"""

from __future__ import annotations

import pytest

from stream import native
from stream.bench import crossing

LEAD_SEARCHES = """
from stream.bench import crossing
from stream.scoring import decay
items = crossing.searches(30, 600, 7)
assert items, "the bench's stream makes leads cross thresholds"
for terms, constant, threshold, after in items:
    assert all(k > 0.0 for _, _, k in terms)  # groups that never decay are in the constant
    expected = crossing.rounded_up(terms, constant, threshold, after)
    assert decay.first_second_below(terms, constant, threshold, after) == expected
print(len(items))
"""

ACCOUNT_SEARCHES = """
from stream.bench import crossing
from stream.scoring import decay
items = crossing.account_searches(60, 1_500, 7)
assert items, "the bench's stream makes accounts reach a scored stage"
for terms, constant, threshold, after in items:
    assert all(s > 0.0 for s, _, _ in terms)  # negative terms are in the constant
    expected = crossing.rounded_up(terms, constant, threshold, after)
    assert decay.first_second_below(terms, constant, threshold, after) == expected
print(len(items))
"""


def _from_source(code: str) -> int:
    """Run ``code`` with the core from its Python source; the count it prints."""
    child = native.run_from_source(["-c", code])
    assert child.returncode == 0, child.stderr
    return int(child.stdout)


def test_the_searches_are_those_of_the_stream_and_both_give_the_same_seconds() -> None:
    assert _from_source(LEAD_SEARCHES) > 0


def test_a_compiled_core_refuses_to_collect_searches_it_would_miss() -> None:
    if not native.BUILD.compiled:
        pytest.skip(f"the core runs from its source here ({native.BUILD.reason})")
    with pytest.raises(RuntimeError, match=native.PURE_ENV):
        crossing.searches(30, 600, 7)


def test_a_small_run_prints_both_searches(capsys: pytest.CaptureFixture[str]) -> None:
    assert crossing.main(["--leads", "30", "--events", "600", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "results that differ: 0" in lines[0]
    assert [line.split("  ")[0].strip() for line in lines[1:]] == [
        "first_below, rounded up",
        "first_second_below",
    ]


def test_the_account_searches_are_those_of_the_accounts_after_each_update() -> None:
    assert _from_source(ACCOUNT_SEARCHES) > 0


def test_a_small_accounts_run_prints_both_searches(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--leads", "60", "--events", "1500", "--repeat", "1", "--accounts"]
    assert crossing.main(args) == 0
    assert "account crossing searches" in capsys.readouterr().out.splitlines()[0]
