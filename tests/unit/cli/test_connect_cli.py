"""`leadstream connect`: help with examples, and clear exits for bad options or no broker."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream import logmask
from stream.cli import EXIT_CONFIG, EXIT_INFRA, build_parser, main, subcommands

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    logmask.uninstall()


@pytest.mark.parametrize(
    "argv",
    [["connect", "webhook"], ["connect", "redrive", "webhook"]],
    ids=" ".join,
)
def test_help_ends_with_an_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  leadstream " + " ".join(argv) in out


def test_connect_lists_its_kinds_and_redrive() -> None:
    connect = subcommands(build_parser())["connect"]
    kinds = {"webhook", "hubspot", "salesforce", "mautic"}
    assert set(subcommands(connect)) == {*kinds, "redrive"}
    assert set(subcommands(subcommands(connect)["redrive"])) == kinds


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "https://x.example/h", "--secret", "nope"], "starts with whsec_"),
        (["--url", "https://x.example/h"], "LEADSTREAM_CONNECT_WEBHOOK_SECRET"),
        (["--secret", SECRET], "give --url"),
        (["--url", "ftp://x.example/h", "--secret", SECRET], "not http"),
        (["--url", "https://x.example/h", "--secret", SECRET, "--stage", "hot"], "unknown stage"),
        (["--endpoints", "missing.yaml"], "cannot read missing.yaml"),
        (["--endpoints", "e.yaml", "--url", "https://x.example/h"], "either --endpoints or"),
    ],
)
def test_bad_webhook_options_exit_3_saying_why(
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSTREAM_CONNECT_WEBHOOK_SECRET", raising=False)
    assert main(["connect", "webhook", *argv]) == EXIT_CONFIG
    assert message in capsys.readouterr().err


def test_an_unreachable_broker_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("LEADSTREAM_CONNECT_METRICS_PORT", "0")  # no server left behind
    argv = ["connect", "webhook", "--url", "https://x.example/h", "--secret", SECRET]
    assert main(argv) == EXIT_INFRA
    err = capsys.readouterr().err
    assert "Kafka" in err and SECRET not in err


def test_a_metrics_port_in_use_exits_3_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("LEADSTREAM_CONNECT_METRICS_PORT", str(port))
        monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # checked before Kafka
        argv = ["connect", "webhook", "--url", "https://x.example/h", "--secret", SECRET]
        assert main(argv) == EXIT_CONFIG
    assert "LEADSTREAM_CONNECT_METRICS_PORT" in capsys.readouterr().err
