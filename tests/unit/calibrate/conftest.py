"""Where the public datasets are (docs/DATASETS.md): `shared/datasets` beside the clone.

A git worktree kept in a folder beside the clone (`parent/worktrees/name`) finds the same folder
one level further up. Tests that read a table take the `datasets` fixture and skip, saying where
they looked, when it is absent; in CI (`CI=true`) they fail instead, as a missing broker does.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CANDIDATES = [REPO.parent / "shared" / "datasets", REPO.parent.parent / "shared" / "datasets"]


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The folder of public datasets (skips the test when there is none, fails in CI)."""
    for candidate in CANDIDATES:
        if candidate.is_dir():
            return candidate.resolve()
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail("CI=true and ../shared/datasets is absent (docs/DATASETS.md)", pytrace=False)
    pytest.skip("../shared/datasets is absent")
