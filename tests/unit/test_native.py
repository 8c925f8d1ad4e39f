"""The compiled scoring core: installed where it can be, never stale, and the same as its source."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stream import native
from stream.bench import apply
from stream.model_files import load_default_models

ROOT = Path(__file__).resolve().parents[2]
WHICH_FILES = """
import importlib, json, sys
from stream import native
for module in native.BUILD.modules:
    importlib.import_module(module)
print(json.dumps({
    "compiled": native.BUILD.compiled,
    "reason": native.BUILD.reason,
    "files": [sys.modules[m].__file__ for m in native.BUILD.modules],
}))
"""


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def _compiled_only() -> None:
    if not native.BUILD.compiled:
        pytest.skip(f"the core runs from its source here ({native.BUILD.reason})")


def test_ci_runs_the_compiled_core() -> None:
    """CI installs as a new user does (``make test``): a core that failed to compile there is a
    failure, not a quietly slower worker."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI's install is required to compile the core")
    assert native.BUILD.compiled, native.BUILD.reason
    assert native.BUILD.modules


def test_the_compiled_modules_are_the_ones_pyproject_names() -> None:
    _compiled_only()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = config["tool"]["leadstream"]["compiled"]
    assert sorted(native.BUILD.modules) == sorted(listed)
    for module in native.BUILD.modules:
        assert sys.modules.get(module) is None or sys.modules[module].__file__.endswith(".so")


def test_the_extensions_run_and_the_switch_runs_the_sources() -> None:
    _compiled_only()
    compiled = _child(WHICH_FILES)
    assert compiled.returncode == 0, compiled.stderr
    seen = json.loads(compiled.stdout)
    assert seen["compiled"]
    assert all(path.endswith(".so") for path in seen["files"])

    source = native.run_from_source(["-c", WHICH_FILES])
    assert source.returncode == 0, source.stderr
    seen = json.loads(source.stdout)
    assert not seen["compiled"]
    assert seen["reason"] == f"{native.PURE_ENV}=1"
    assert all(path.endswith(".py") for path in seen["files"])


def test_a_source_edited_since_it_was_compiled_is_found() -> None:
    module = "stream.scoring.decay"
    source = (ROOT / "stream/scoring/decay.py").read_bytes()
    assert native.edited({module: hashlib.sha256(source).hexdigest()}) == []
    assert native.edited({module: hashlib.sha256(source + b"\n").hexdigest()}) == [module]


def test_the_finder_imports_sources_of_the_named_modules_only() -> None:
    finder = native.FromSource(["stream.scoring.decay"])
    path = [str(ROOT / "stream/scoring")]
    spec = finder.find_spec("stream.scoring.decay", path)
    assert spec is not None
    assert spec.origin == str(ROOT / "stream/scoring/decay.py")
    assert finder.find_spec("stream.scoring.engine", path) is None
    assert finder.find_spec("stream.scoring.decay", None) is None


def test_the_compiled_core_scores_byte_for_byte_as_its_source() -> None:
    """Every output, contribution and final state of ``apply_all`` and ``apply_batch`` on the
    scoring bench's stream, from this process's core and from the Python source's."""
    args = ["--digest", "--leads", "200", "--events", "4000"]
    here = apply.digests(apply.build_stream(200, 4000, 7), load_default_models(), 500)
    code = f"from stream.bench import apply; raise SystemExit(apply.main({args!r}))"
    source = native.run_from_source(["-c", code])
    assert source.returncode == 0, source.stderr
    printed = source.stdout.splitlines()[1:]
    assert {line[:26].strip(): line[26:].strip() for line in printed} == here
