"""Running `leadstream bench` as a user does, on the run's broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def bench_connect(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[str, dict[str, Any]]]:
    """``bench_connect(*args)``: runs ``leadstream bench connect ARGS``, shows its table in the
    log, asserts it succeeded, and returns its output and the figures of its JSON file."""

    def run(*args: str) -> tuple[str, dict[str, Any]]:
        out = tmp_path / "bench-connect.json"
        command = [sys.executable, "-m", "stream.cli", "bench", "connect", *args]
        done = subprocess.run(
            [*command, "--json", str(out)],
            env={**os.environ, "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        with capsys.disabled():
            print("\n" + done.stdout)
        assert done.returncode == 0, done.stderr[-4000:]
        (figures,) = json.loads(out.read_text()).values()
        return done.stdout, figures

    return run
