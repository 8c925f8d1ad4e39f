"""The delivery core's arithmetic: full-jitter backoff, the token bucket, commit bookkeeping."""

from __future__ import annotations

import random

import pytest

from stream.connect.flow import Backoff, PartitionLedger, TokenBucket, retry_delay

# ----------------------------------------------------------------------------- backoff


def test_the_cap_doubles_from_the_initial_wait_up_to_the_maximum() -> None:
    backoff = Backoff(initial_s=0.5, max_s=10.0)
    assert [backoff.cap(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.cap(10_000) == 10.0  # no overflow however many attempts


def test_full_jitter_draws_across_the_whole_range_below_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, max_s=60.0)
    rng = random.Random(7)
    draws = [retry_delay(backoff, 4, None, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    # uniform on [0, 8]: both halves are used, the mean is near 4
    assert min(draws) < 0.5 and max(draws) > 7.5
    assert 3.6 < sum(draws) / len(draws) < 4.4


def test_retry_after_is_taken_exactly_instead_of_the_backoff() -> None:
    backoff = Backoff(initial_s=0.5, max_s=1.0)
    rng = random.Random(1)
    assert retry_delay(backoff, 1, 30.0, rng) == 30.0
    assert retry_delay(backoff, 9, 0.0, rng) == 0.0
    assert retry_delay(backoff, 1, -3.0, rng) == 0.0


# ----------------------------------------------------------------------------- token bucket


def test_a_full_bucket_lets_the_burst_go_at_once_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.reserve(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [bucket.reserve(1, 0.0) for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_come_back_with_time_but_never_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    bucket.reserve(2, 0.0)
    assert bucket.reserve(1, 0.05) == pytest.approx(0.05)  # half a token back after 50 ms
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    assert bucket.reserve(1, 100.0) == 0.0
    assert bucket.reserve(1, 100.0) == 0.0
    assert bucket.reserve(1, 100.0) == pytest.approx(0.1)  # a long idle time filled only 2


def test_a_refunded_token_goes_to_the_next_caller_but_never_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    bucket.reserve(2, 0.0)
    assert bucket.reserve(1, 0.0) == pytest.approx(0.1)  # queued behind the burst
    bucket.refund(1, 0.0)  # that caller found nothing to send
    assert bucket.reserve(1, 0.0) == pytest.approx(0.1)  # its place, not a later one
    bucket.refund(5, 0.0)
    assert bucket.tokens == 2.0  # given back, capped at the burst


def test_a_batch_costs_its_requests_and_the_long_run_rate_holds() -> None:
    bucket = TokenBucket(rate=100.0, burst=10, now=0.0)
    now, sent = 0.0, 0
    for _ in range(50):
        now += bucket.reserve(25, now)  # each call waits its turn, then goes
        sent += 25
    assert sent / now == pytest.approx(100.0, rel=0.02)


def test_retry_after_holds_every_call_until_it_has_passed() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100, now=0.0)
    bucket.hold(5.0, now=1.0)
    assert bucket.reserve(1, 2.0) == pytest.approx(4.0)
    assert bucket.reserve(1, 6.5) == 0.0
    bucket.hold(1.0, now=7.0)
    bucket.hold(0.5, now=7.0)  # a shorter hold does not shorten the longer one
    assert bucket.reserve(1, 7.0) == pytest.approx(1.0)


def test_a_bucket_refuses_a_rate_or_burst_it_cannot_work_with() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0.0, burst=1, now=0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1.0, burst=0, now=0.0)


# ----------------------------------------------------------------------------- commits


def test_nothing_is_committed_before_anything_is_read() -> None:
    assert PartitionLedger().committable() is None


def test_the_commit_stops_below_the_lowest_record_still_in_flight() -> None:
    ledger = PartitionLedger()
    for offset in range(10, 15):
        ledger.read(offset)
    assert ledger.committable() == 10
    for offset in (11, 12, 14):  # done out of order (other leads went faster)
        ledger.done(offset)
    assert ledger.committable() == 10  # 10 is not done: nothing past it may be committed
    ledger.done(10)
    assert ledger.committable() == 13
    ledger.done(13)
    assert ledger.committable() == 15
    assert ledger.in_flight == 0


def test_records_that_need_nothing_move_the_commit_only_past_done_ones() -> None:
    ledger = PartitionLedger()
    ledger.read(3)
    ledger.passed(4)  # e.g. a lead_erased record the destination does not take
    ledger.passed(5)
    assert ledger.committable() == 3
    ledger.done(3)
    assert ledger.committable() == 6


def test_done_twice_or_for_an_offset_never_read_changes_nothing() -> None:
    ledger = PartitionLedger()
    ledger.read(0)
    ledger.read(1)
    ledger.done(1)
    ledger.done(1)
    ledger.done(99)
    assert ledger.committable() == 0
    assert ledger.in_flight == 1


def test_gaps_in_offsets_commit_past_the_gap() -> None:
    ledger = PartitionLedger()
    for offset in (100, 104, 109):  # compaction or transaction markers leave gaps
        ledger.read(offset)
    for offset in (100, 104, 109):
        ledger.done(offset)
    assert ledger.committable() == 110
