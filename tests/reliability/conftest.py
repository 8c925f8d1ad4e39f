"""The reliability suite's harness, importable by its test modules as ``reliability_harness``.

Sizes: short by default (CI); ``LEADSTREAM_RELIABILITY=full`` for the sizes of RELIABILITY.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "reliability_harness", Path(__file__).with_name("harness.py")
)
assert _spec is not None and _spec.loader is not None
_harness = importlib.util.module_from_spec(_spec)
sys.modules["reliability_harness"] = _harness
_spec.loader.exec_module(_harness)
