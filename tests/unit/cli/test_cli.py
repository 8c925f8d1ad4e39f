from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli import COMMANDS, build_parser, main, subcommands

DEFAULT_MODELS = Path(__file__).resolve().parents[3] / "stream" / "scoring" / "default_models.yaml"


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


def _every_command(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for name, child in subcommands(parser).items():
        yield from _every_command(child, (*path, name))


def test_every_command_s_help_ends_with_examples_of_that_command() -> None:
    commands = list(_every_command(build_parser()))
    assert len(commands) > len(COMMANDS)  # the top level, every command and their actions
    for path, parser in commands:
        text = parser.format_help()
        assert "\nexamples:\n" in text, f"leadstream {' '.join(path)} --help has no examples"
        shown = text.split("\nexamples:\n", 1)[1].splitlines()
        prefix = " ".join(("leadstream", *path))
        assert shown, path
        assert any(line.strip().startswith(prefix) for line in shown), (path, shown)
        for line in shown:  # every example parses (a comment or a redirection left out)
            words = shlex.split(re.split(r"\s(?:#|>|\|)\s", line)[0])
            if words[0] != "leadstream" or "COMMAND" in words:
                continue
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:
                raise AssertionError(f"the example {line.strip()!r} does not parse") from exc


def test_a_misspelt_model_id_is_named_with_the_one_it_may_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = str(DEFAULT_MODELS)
    models = tmp_path / "models.yaml"
    models.write_text(DEFAULT_MODELS.read_text(encoding="utf-8"), encoding="utf-8")
    table, outcomes = tmp_path / "t.csv", tmp_path / "o.csv"
    events = tmp_path / "absent.jsonl"  # --base-model is checked before the history is read
    table.write_text("industry\nsoftware\n", encoding="utf-8")
    outcomes.write_text("lead_id,converted\nlead-1,1\n", encoding="utf-8")
    commands = [
        ["rules", "explain", shipped, "--model", "b2c"],
        ["rules", "diff", shipped, str(models), "--model", "b2c"],
        ["score", str(table), "--models", shipped, "--model", "b2c"],
        ["calibrate", "--events", str(events), "--outcomes", str(outcomes),
         "--target", "converted", "--base-model", "b2c"],
        ["models", "promote", str(models), "b2c", "--version", "2"],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) in (2, 3), argv
        err = capsys.readouterr().err
        assert "no model 'b2c' (did you mean 'b2b'?)" in err, (argv, err)
        assert "b2b, consumer" in err, (argv, err)
    assert models.read_text(encoding="utf-8") == DEFAULT_MODELS.read_text(encoding="utf-8")
