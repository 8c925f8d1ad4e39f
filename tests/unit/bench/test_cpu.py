"""CPU time from /proc, and the broker found from its listening port, on real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from stream.bench.cpu import SELF, CpuMeter, cpu_seconds, find_broker, listening_inodes

BURN = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def _burn(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_child_process_cpu_time_is_read_until_it_is_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BURN + "sys.stdin.read()\n"], stdin=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        used = cpu_seconds(child.pid)
        while (used or 0.0) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
            used = cpu_seconds(child.pid)
        assert used is not None and 0.3 <= used < 30
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert cpu_seconds(child.pid) is None


def test_the_meter_counts_the_cpu_used_between_start_and_stop() -> None:
    meter = CpuMeter(lambda: [SELF], broker=os.getpid())  # this process stands in for both
    _burn(0.05)
    meter.start()
    _burn(0.2)
    meter.stop()
    assert meter.worker_seconds is not None and 0.19 <= meter.worker_seconds < 5
    assert meter.broker_seconds is not None and meter.broker_seconds >= 0.15
    row = meter.row(1000)
    assert row["worker_cpu_s"] == round(meter.worker_seconds, 2)
    assert row["worker_cpu_us_per_record"] == round(1e6 * meter.worker_seconds / 1000, 1)
    assert row["broker_cpu_us_per_record"] is not None


def test_a_meter_without_a_broker_or_records_reports_none() -> None:
    meter = CpuMeter(lambda: [SELF], broker=None)
    meter.start()
    meter.stop()
    assert meter.broker_seconds is None
    assert meter.row(0) == {
        "worker_cpu_s": round(meter.worker_seconds or 0.0, 2),
        "worker_cpu_us_per_record": None,
        "broker_cpu_s": None,
        "broker_cpu_us_per_record": None,
    }


def test_the_broker_is_the_process_listening_on_the_bootstrap_port(listener: int) -> None:
    assert listening_inodes(listener)
    assert find_broker(f"127.0.0.1:{listener}").pid == os.getpid()
    assert find_broker(f"localhost:{listener},otherhost:9092").pid == os.getpid()


def test_no_broker_pid_and_a_reason_when_it_cannot_be_found() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]  # bound, never listening
        closed = find_broker(f"127.0.0.1:{free}")
    assert closed.pid is None and "no socket listens" in closed.reason
    remote = find_broker("192.0.2.10:9092")
    assert remote.pid is None and "not on this machine" in remote.reason
    assert "no port" in find_broker("kafka").reason
