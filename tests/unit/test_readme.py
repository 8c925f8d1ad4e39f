"""The README's quickstart and commands, checked so they cannot rot.

The quickstart is exactly `make demo` and `make test`; those Makefile targets run `leadstream
demo` (exercised against the real services by tests/integration/dev/test_demo.py) and the test suite
(what `.ci/run` runs). Every `leadstream ...` command the README shows exists (its `--help`
answers), and the "Command line" section lists every command. Every file the README and the
documents in docs/ link to or name by its repository path exists, and none but docs/DATASETS.md
points outside the clone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream.cli import build_parser, main, subcommands

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, flags=re.DOTALL)
WORD = re.compile(r"^[a-z][a-z-]*$")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
REPO_PATH = re.compile(r"`((?:stream|schemas|tests|deploy)/[^`\s*]*)`")
OUTSIDE = re.compile(r"[`(]((?:\.\./)?shared/[^`)\s]*)")


def _commands(block: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def _recipe(target: str) -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert found is not None, f"no `{target}` target in the Makefile"
    return [line.strip() for line in found.group(1).splitlines()]


def _leadstream_commands() -> list[list[str]]:
    """The command words of every `leadstream ...` line in a code block: `rules diff`, ..."""
    out: list[list[str]] = []
    for language, block in BLOCKS:
        if language != "bash":
            continue
        for line in block.splitlines():
            for found in re.finditer(r"(?:^|[\s/(])leadstream((?:\s+\S+)*)", line.split(" #")[0]):
                words = []
                for token in found.group(1).split():
                    if not WORD.match(token):
                        break
                    words.append(token)
                if words and words not in out:
                    out.append(words)
    return out


def test_the_quickstart_is_make_demo_and_make_test() -> None:
    language, block = BLOCKS[0]
    assert language == "bash"
    assert _commands(block) == ["make demo", "make test"]
    assert _recipe("demo") == ["$(BIN)/leadstream demo"]
    (test_recipe,) = _recipe("test")
    assert "leadstream infra run --for-tests" in test_recipe and "$(BIN)/pytest" in test_recipe
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert (ROOT / "tests" / "integration" / "dev" / "test_demo.py").exists()


@pytest.mark.parametrize("words", _leadstream_commands(), ids=" ".join)
def test_every_command_the_readme_shows_exists(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: leadstream")


def test_the_command_line_section_lists_every_command() -> None:
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^leadstream ([a-z]+)", section, flags=re.MULTILINE))
    commands = set(subcommands(build_parser()))
    assert commands == listed
    assert "| 5 | not found" in section and "| 4 | Kafka or Redis unreachable" in section


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_path_a_document_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [
        target
        for target in LINK.findall(text)
        if not target.startswith(("http://", "https://", "#"))
        and not (doc.parent / target.split("#", 1)[0]).exists()
    ]
    missing += [path for path in REPO_PATH.findall(text) if not (ROOT / path).exists()]
    if doc.name != "DATASETS.md":  # the one document about the data read from beside the clone
        missing += OUTSIDE.findall(text)
    assert missing == []


def test_the_champion_challenger_walkthrough_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file command of "From calibration to promotion" runs in order and succeeds; the
    worker and `models evaluate` (Kafka and Redis) are run by
    tests/integration/worker/test_shadow_models.py."""
    import shlex

    from stream.model_files import load_model_file

    section = README.split("**From calibration to promotion:**", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    lines = _commands(block.group(1))
    live = [line for line in lines if line.startswith("LEADSTREAM_MODELS_PATH=")]
    assert [line.split()[-1] for line in live] == ["worker", "worker"]
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in lines:
        words = shlex.split(line)
        if words[0] != "leadstream" or words[1:3] == ["models", "evaluate"]:
            continue
        assert main(words[1:]) == 0, line
        ran.append(words[1])
    capsys.readouterr()
    assert ran == ["simulate", "calibrate", "score", "rules", "models"]
    promoted = load_model_file(tmp_path / "models.yaml")
    assert not promoted.get("b2b-next").shadow and promoted.get("b2b").shadow
