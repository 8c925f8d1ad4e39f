from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.worker.schedule import COMPACT_SLACK, DueSchedule


def test_pops_only_what_is_due_across_partitions() -> None:
    schedule = DueSchedule()
    schedule.set(0, "a", 10.0)
    schedule.set(1, "b", 5.0)
    schedule.set(1, "c", 20.0)
    assert schedule.pop_due(4.0) == []
    assert sorted(schedule.pop_due(10.0)) == [(0, "a"), (1, "b")]
    assert schedule.pop_due(10.0) == []
    assert len(schedule) == 1
    assert schedule.due_time(1, "c") == 20.0


def test_set_replaces_and_none_unschedules() -> None:
    schedule = DueSchedule()
    schedule.set(0, "a", 10.0)
    schedule.set(0, "a", 30.0)  # moved later: not due at 10
    assert schedule.pop_due(10.0) == []
    schedule.set(0, "a", None)
    assert schedule.pop_due(100.0) == []
    assert len(schedule) == 0


def test_dropped_partitions_are_forgotten() -> None:
    schedule = DueSchedule()
    schedule.set(0, "a", 1.0)
    schedule.set(1, "b", 1.0)
    schedule.drop_partitions([0])
    assert schedule.pop_due(2.0) == [(1, "b")]


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from("abcdef"), st.floats(0, 100))))
def test_pop_due_matches_the_latest_due_time_of_each_key(
    sets: list[tuple[int, str, float]],
) -> None:
    schedule = DueSchedule()
    latest: dict[tuple[int, str], float] = {}
    for partition, key, due in sets:
        schedule.set(partition, key, due)
        latest[(partition, key)] = due
    expected = sorted(k for k, due in latest.items() if due <= 50)
    assert sorted(schedule.pop_due(50.0)) == expected
    assert len(schedule) == len(latest) - len(expected)


def test_replaced_due_times_do_not_pile_up() -> None:
    """A lead's due time moves with most of its events; the heap stays bounded by the keys."""
    schedule = DueSchedule()
    for n in range(20_000):
        schedule.set(0, f"l:lead-{n % 10}", 1_000_000.0 + n)
    assert len(schedule) == 10
    assert schedule.entries() <= 2 * 10 + COMPACT_SLACK + 1
    due = schedule.pop_due(1_000_000.0 + 20_000)
    assert sorted(key for _, key in due) == [f"l:lead-{n}" for n in range(10)]
    assert schedule.pop_due(2_000_000.0) == []


def test_set_if_absent_keeps_a_time_set_before() -> None:
    schedule = DueSchedule()
    schedule.set(0, "l:a", 10.0)
    schedule.set_if_absent(0, "l:a", 99.0)
    schedule.set_if_absent(0, "l:b", 20.0)
    assert schedule.due_time(0, "l:a") == 10.0
    assert schedule.due_time(0, "l:b") == 20.0
    assert schedule.pop_due(50.0) == [(0, "l:a"), (0, "l:b")]
