"""Build: the scoring core compiled to C with mypyc, when it can be.

The modules of ``[tool.leadstream] compiled`` in ``pyproject.toml`` (the scoring core's hot path)
are compiled with mypyc into extension modules that Python imports in place of their sources.
They run the same code (the core's outputs are byte-identical: ``python -m stream.bench.apply
--digest``) at about 1.8 times the speed. The build is optional: with ``LEADSTREAM_PURE_PYTHON=1``
set, or when no C compiler is found or the compilation fails, the package installs as pure
Python and runs as before (``leadstream --version`` says which). Next to the extensions the build
writes ``stream/native.json``, the SHA-256 of each compiled module's source: a source edited
since is run as Python, never a stale extension (``stream.native``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
MANIFEST = "stream/native.json"
GROUP = "leadstream_core"
"""The name of the shared library holding every compiled module (mypyc's group)."""


def compiled_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules: list[str] = config["tool"]["leadstream"]["compiled"]
    return modules


def source_of(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def manifest() -> dict[str, Any]:
    return {
        "compiler": "mypyc",
        "modules": {
            module: hashlib.sha256(source_of(module).read_bytes()).hexdigest()
            for module in compiled_modules()
        },
    }


class OptionalBuildExt(build_ext):
    """Builds the extensions, and the manifest beside them; a failed build leaves pure Python."""

    def run(self) -> None:
        base = ROOT if self.inplace else Path(self.build_lib)
        try:
            super().run()
        except Exception as exc:  # any failure (no C compiler, ...): the pure-Python package
            print(
                f"leadstream: the scoring core was not compiled ({exc}); it runs as pure Python",
                file=sys.stderr,
            )
            remove_built(base)
            return
        (base / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        (base / MANIFEST).write_text(json.dumps(manifest(), indent=1) + "\n")


def remove_built(base: Path) -> None:
    """The manifest and the extensions of an earlier build under ``base``: without a manifest
    nothing tells Python to prefer the sources (``stream.native``)."""
    (base / MANIFEST).unlink(missing_ok=True)
    for module in compiled_modules():
        package, _, name = module.rpartition(".")
        for built in (base / package.replace(".", "/")).glob(f"{name}.*.so"):
            built.unlink()
    for built in base.glob(f"{GROUP}__mypyc.*.so"):
        built.unlink()


def extensions() -> list[Any]:
    if os.environ.get("LEADSTREAM_PURE_PYTHON") == "1":
        remove_built(ROOT)
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - optional at build
    except ImportError:
        print("leadstream: mypyc is missing; the scoring core runs as pure Python", file=sys.stderr)
        remove_built(ROOT)
        return []
    paths = [str(source_of(module).relative_to(ROOT)) for module in compiled_modules()]
    try:
        built: list[Any] = mypycify(paths, opt_level="3", group_name=GROUP)
    except Exception as exc:  # a type error in the build: pure Python
        print(
            f"leadstream: mypyc refused the core ({exc}); it runs as pure Python", file=sys.stderr
        )
        remove_built(ROOT)
        return []
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
