"""Every exception class Leadstream defines derives from `LeadstreamError`."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTROL_FLOW = {("schemas/adapters/base.py", "_Skip")}
"""Private exceptions that never leave their module."""


def _builtin_exception(base: ast.expr) -> bool:
    value = getattr(builtins, base.id, None) if isinstance(base, ast.Name) else None
    return isinstance(value, type) and issubclass(value, BaseException)


def test_only_the_root_derives_from_a_builtin_exception() -> None:
    found = set()
    for package in ("schemas", "stream"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(map(_builtin_exception, node.bases)):
                    found.add((path.relative_to(ROOT).as_posix(), node.name))
    assert found == {("schemas/errors.py", "LeadstreamError"), *CONTROL_FLOW}
