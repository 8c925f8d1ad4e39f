from __future__ import annotations

import subprocess
import sys

import pytest

from stream.cli import build_parser, main, subcommands


@pytest.mark.parametrize("argv", [["--help"], ["worker", "--help"], ["infra", "--help"]])
def test_help_works(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: leadstream" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("leadstream ")


def test_invalid_settings_exit_with_the_config_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", "no-port")
    assert main(["topics", "describe"]) == 3


def test_every_command_has_help() -> None:
    parser = build_parser()
    commands = subcommands(parser)
    assert {"worker", "infra", "topics", "demo"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"


def test_infra_run_takes_its_options_and_the_command_after_the_separator() -> None:
    args = build_parser().parse_args(
        ["infra", "run", "--for-tests", "--fresh", "--", "pytest", "-x", "--", "a"]
    )
    assert (args.action, args.for_tests, args.fresh) == ("run", True, True)
    assert args.run_command == ["--", "pytest", "-x", "--", "a"]
