"""The deploy/local scripts: busy ports, stale pid files, already-formatted storage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.dev.infra import LOCAL_DIR

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _script(name: str, action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(LOCAL_DIR / f"{name}.sh"), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = {
        "LEADSTREAM_LOCAL_KAFKA_PORT": str(_free_port()),
        "LEADSTREAM_LOCAL_KAFKA_CTRL_PORT": str(_free_port()),
        "LEADSTREAM_LOCAL_REDIS_PORT": str(_free_port()),
    }
    environment = {
        **os.environ,
        "LEADSTREAM_RUN_DIR": str(tmp_path / "run"),
        "LEADSTREAM_KAFKA_HEAP": "256m",
        **ports,
    }
    yield environment
    for name in ("kafka", "redis"):
        _script(name, "stop", environment)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_redis_on_a_busy_port_is_a_clear_error(env: dict[str, str], listener: int) -> None:
    env["LEADSTREAM_LOCAL_REDIS_PORT"] = str(listener)
    result = _script("redis", "start", env)
    assert result.returncode != 0
    assert f"port {listener} (for Redis) is already in use" in result.stderr
    assert "LEADSTREAM_LOCAL_REDIS_PORT" in result.stderr


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
def test_redis_survives_a_stale_pid_file_and_stops_by_pid(env: dict[str, str]) -> None:
    state = Path(env["LEADSTREAM_RUN_DIR"]) / "redis"
    state.mkdir(parents=True)
    (state / "redis.pid").write_text(str(_dead_pid()))

    started = _script("redis", "start", env)
    assert started.returncode == 0, started.stderr
    assert "removing stale pid file" in started.stderr
    pid = int((state / "redis.pid").read_text())
    assert _script("redis", "status", env).returncode == 0

    again = _script("redis", "start", env)
    assert again.returncode == 0
    assert "already running" in again.stderr

    assert _script("redis", "stop", env).returncode == 0
    assert _script("redis", "status", env).returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_kafka_on_a_busy_port_is_a_clear_error(env: dict[str, str], listener: int) -> None:
    env["LEADSTREAM_LOCAL_KAFKA_PORT"] = str(listener)
    result = _script("kafka", "start", env)
    assert result.returncode != 0
    assert f"port {listener} (for Kafka) is already in use" in result.stderr


def test_kafka_restarts_over_a_killed_run(env: dict[str, str]) -> None:
    """A stale pid file and already-formatted storage, as a killed run leaves them."""
    first = _script("kafka", "start", env)
    assert first.returncode == 0, first.stderr
    state = Path(env["LEADSTREAM_RUN_DIR"]) / "kafka"
    pid = int((state / "kafka.pid").read_text())
    os.kill(pid, 9)
    for _ in range(100):  # not our child: poll until it is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    assert (state / "data" / "meta.properties").exists()

    second = _script("kafka", "start", env)
    assert second.returncode == 0, second.stderr
    assert "removing stale pid file" in second.stderr
    assert _script("kafka", "status", env).returncode == 0
    new_pid = int((state / "kafka.pid").read_text())
    assert _script("kafka", "stop", env).returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)
