"""Exit codes a script can rely on: 4 when Kafka or Redis cannot be reached, 3 for an invalid
model file, 5 for an unknown lead (see also test_lead_commands, test_replay_cli and
test_rules_cli)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli import EXIT_CONFIG, EXIT_ERROR, EXIT_INFRA, main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [
        ["topics", "describe"],
        ["topics", "create"],
        ["redis", "rebuild"],
        ["forget", "lead-1"],
        ["simulate", "--kafka", "--leads", "2", "--days", "1"],
    ],
)
def test_an_unreachable_broker_exits_4(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("LEADSTREAM_REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    assert main(argv) == EXIT_INFRA
    err = capsys.readouterr().err
    assert "leadstream: " in err and "Kafka" in err


def test_an_invalid_model_file_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("format: 1\nmodels: [{id: b2b}]\n")
    for argv in (["rules", "validate", str(path)], ["rules", "explain", str(path)]):
        assert main(argv) == EXIT_CONFIG


def test_a_reader_that_goes_away_ends_the_command_quietly_with_1() -> None:
    # The read end is closed before the command has finished importing, so its first write
    # meets a closed pipe, as it does under `leadstream rules explain --full | head -1`.
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "rules", "explain", "--full"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_ERROR
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("rates", ["fast", "500,0", "500,,1000", "-5"])
def test_bench_refuses_latency_rates_that_are_not_positive_numbers(
    rates: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--quick", "--latency-rates", rates]) == EXIT_CONFIG
    assert "--latency-rates" in capsys.readouterr().err


def test_bench_refuses_a_latency_phase_of_no_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--latency-seconds", "0"]) == EXIT_CONFIG
    assert "--latency-seconds must be above 0" in capsys.readouterr().err
