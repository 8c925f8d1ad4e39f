"""`leadstream demo` (what `make demo` runs), bounded in time, against the real services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_streams_events_through_a_worker(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADSTREAM_REDIS_URL": redis_url,
        "LEADSTREAM_APP_ID": f"demo-{unique}",
        "LEADSTREAM_TOPIC_PREFIX": f"demo{unique}.",
        "LEADSTREAM_RUN_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--duration", "25", "--events", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    done = re.search(r"the worker published (\d+) score and stage records", result.stdout)
    assert done is not None, result.stdout
    assert int(done.group(1)) > 0
    assert "Redis answering" in result.stdout
    assert "stage change" in result.stdout
    assert (tmp_path / "demo-worker.log").exists()
