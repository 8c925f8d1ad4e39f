"""The scoring core reads no clock, no environment and no file.

The import-linter contracts in pyproject.toml prove which modules `stream.scoring` imports; a
call such as `datetime.now()` or `open()` needs no import, so the sources are read here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stream.scoring

PACKAGE = Path(stream.scoring.__file__).parent
SOURCES = sorted(PACKAGE.glob("*.py"))

CLOCKS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter", "process_time"}
FORBIDDEN_ATTRIBUTES = {
    **{name: "reads a clock" for name in CLOCKS},
    "environ": "reads the environment",
    "environb": "reads the environment",
    "getenv": "reads the environment",
    "read_text": "reads a file",
    "read_bytes": "reads a file",
    "write_text": "writes a file",
    "write_bytes": "writes a file",
    "files": "reads package data",
}
FORBIDDEN_CALLS = {
    "open": "opens a file",
    "print": "writes to stdout",
    "input": "reads stdin",
    "breakpoint": "stops the process",
    "exec": "runs arbitrary code",
    "eval": "runs arbitrary code",
    "__import__": "imports dynamically",
    "getenv": "reads the environment",
}


def _problems(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr} {FORBIDDEN_ATTRIBUTES[node.attr]}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in FORBIDDEN_CALLS:
                found.append(
                    f"line {node.lineno}: {node.func.id}() {FORBIDDEN_CALLS[node.func.id]}"
                )
        elif isinstance(node, ast.ImportFrom) and node.names:
            for alias in node.names:
                if alias.name in FORBIDDEN_ATTRIBUTES or alias.name in FORBIDDEN_CALLS:
                    found.append(f"line {node.lineno}: imports {alias.name}")
    return found


def test_the_package_has_sources() -> None:
    assert {p.name for p in SOURCES} >= {"engine.py", "spec.py", "state.py", "decay.py"}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_clock_environment_or_file_access(source: Path) -> None:
    problems = _problems(ast.parse(source.read_text(encoding="utf-8"), filename=str(source)))
    assert not problems, f"{source.name}: " + "; ".join(problems)


@pytest.mark.parametrize(
    "code",
    [
        "from datetime import datetime\nx = datetime.now()",
        "import time\nx = time.monotonic()",
        "import os\nx = os.environ['HOME']",
        "from os import getenv\nx = getenv('HOME')",
        "x = open('models.yaml').read()",
        "from pathlib import Path\nx = Path('m.yaml').read_text()",
        "from importlib import resources\nx = resources.files('stream')",
    ],
)
def test_the_check_catches_what_it_is_for(code: str) -> None:
    assert _problems(ast.parse(code))
