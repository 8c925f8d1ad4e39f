"""``leadstream bench connect`` (the webhook) on a short backlog: the receiver process counts
every change once. The speed figures are printed, not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_short_backlog_reaches_the_receiver_once(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "connect.json"
    command = [sys.executable, "-m", "stream.cli", "bench", "connect", "--changes", "300"]
    command += ["--leads", "60", "--delay-ms", "5", "--json", str(out)]
    done = subprocess.run(
        command,
        env={**os.environ, "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    with capsys.disabled():
        print("\n" + done.stdout)
    assert done.returncode == 0, done.stderr[-4000:]
    figures = json.loads(out.read_text())["connect"]
    assert figures["delivered"] == 300 and figures["dead_lettered"] == 0
    assert figures["receiver_requests"] == figures["receiver_distinct_ids"] == 300
    assert figures["delivered_per_s"] > 0
