"""What the Faust-guard tests share: the source of the Faust code a guard follows, to pin it."""

from __future__ import annotations

import ast
import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType

import pytest

Source = Callable[[ModuleType, str, str], str]


def _faust_source(module: ModuleType, owner: str, name: str) -> str:
    """``owner.name`` as ``module``'s source defines it, through ``ast.unparse`` (a guard
    installed meanwhile does not change it; comments and layout do not count)."""
    tree = ast.parse(inspect.getsource(module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner)
    node = next(n for n in cls.body if getattr(n, "name", None) == name)
    return ast.unparse(node)


@pytest.fixture
def faust_source() -> Source:
    return _faust_source


@pytest.fixture
def faust_sha256() -> Source:
    """SHA-256 of ``faust_source``: what the guards pin."""

    def sha256(module: ModuleType, owner: str, name: str) -> str:
        return hashlib.sha256(_faust_source(module, owner, name).encode()).hexdigest()

    return sha256
