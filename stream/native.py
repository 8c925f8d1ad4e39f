"""Which build of the scoring core runs: compiled with mypyc, or its Python source.

The install compiles the core's hot path (``[tool.leadstream] compiled`` in ``pyproject.toml``,
``setup.py``) into extension modules, which Python imports in place of the ``.py`` files beside
them, and writes ``stream/native.json``: the SHA-256 of each module's source as compiled.
``choose`` runs before any of them is imported (``stream/__init__.py``) and makes Python import
every one of them from its source when

- ``LEADSTREAM_PURE_PYTHON=1`` is set (to profile the core line by line, or to swap one of its
  functions for a measurement: a compiled module calls its own functions directly);
- any compiled module's source differs from the one compiled (an edited checkout whose
  extensions were not rebuilt; ``make`` rebuilds them): running the extensions would run code
  that is not the source's. All of them then, since compiled modules call each other's classes
  directly;
- or nothing was compiled (no ``native.json``: no C compiler at install, or a pure build).

``BUILD`` says which, and why, for ``leadstream --version``, the worker's start-up log and the
bench's figures.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["BUILD", "PURE_ENV", "Build", "FromSource", "choose", "edited", "run_from_source"]

PURE_ENV = "LEADSTREAM_PURE_PYTHON"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_MANIFEST = Path(__file__).resolve().parent / "native.json"


@dataclass(frozen=True, slots=True)
class Build:
    compiled: bool
    """Whether the core's compiled extensions run."""
    modules: tuple[str, ...]
    """The modules compiled at install (none: a pure-Python install)."""
    reason: str
    """Why the Python source runs, or which compiler built the extensions."""

    def describe(self) -> str:
        if self.compiled:
            return f"scoring core compiled ({self.reason}, {len(self.modules)} modules)"
        return f"scoring core in pure Python ({self.reason})"


class FromSource(importlib.abc.MetaPathFinder):
    """Imports the named modules from their ``.py`` files, ahead of the extensions."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names or not path:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            source = Path(entry) / leaf
            if source.is_file():
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def edited(modules: dict[str, str]) -> list[str]:
    """The compiled modules whose source is not the one compiled."""
    found_edited = []
    for module, digest in modules.items():
        source = _PACKAGE_ROOT / (module.replace(".", "/") + ".py")
        try:
            found = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            continue  # an install without sources: the extensions are all there is
        if found != digest:
            found_edited.append(module)
    return found_edited


def choose() -> Build:
    """Decide which build runs (before the core is imported), and set Python's imports so."""
    try:
        manifest = json.loads(_MANIFEST.read_text())
    except FileNotFoundError:
        return Build(False, (), "not compiled at install")
    modules: dict[str, str] = manifest["modules"]
    names = tuple(modules)
    if os.environ.get(PURE_ENV) == "1":
        build = Build(False, names, f"{PURE_ENV}=1")
    elif changed := edited(modules):
        build = Build(False, names, f"edited since compiled: {', '.join(changed)}; make rebuilds")
    else:
        return Build(True, names, str(manifest.get("compiler", "mypyc")))
    loaded = [name for name in names if name in sys.modules]
    if loaded:  # imported before the choice: too late to choose
        raise ImportError(f"the scoring core was imported before stream.native chose: {loaded}")
    sys.meta_path.insert(0, FromSource(names))
    return build


def run_from_source(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run this Python with ``args`` in a child process whose core runs from its source (to
    swap one of the core's functions, which a compiled module never sees); its output kept."""
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, PURE_ENV: "1"},
        capture_output=True,
        text=True,
        check=False,
    )


BUILD = choose()
