"""`leadstream demo` (what `make demo` runs), bounded in time, against the real services."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.status, answer.read()


def test_demo_streams_the_simulation_through_a_worker_and_serves_the_dashboard(
    kafka_bootstrap: str, redis_url: str, unique: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LEADSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADSTREAM_REDIS_URL": redis_url,
        "LEADSTREAM_APP_ID": f"demo-{unique}",
        "LEADSTREAM_TOPIC_PREFIX": f"demo{unique}.",
        "LEADSTREAM_TOPIC_PARTITIONS": "2",
        "LEADSTREAM_RUN_DIR": str(tmp_path),
    }
    env.pop("LEADSTREAM_WEB_PORT", None)
    command = [sys.executable, "-m", "stream.cli", "demo", "--duration", "75"]
    command += ["--leads", "30", "--days", "3", "--speed", "4h", "--seed", "7"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    data: dict[str, Any] = {}
    try:
        url = None
        deadline = time.monotonic() + 150
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(
                r"Dashboard: (http://127\.0\.0\.1:\d+/dashboard#token=(\S+))", "".join(lines)
            )
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert found is not None and url is not None, "".join(lines)
        token = found.group(2)
        page = url.split("#", 1)[0]
        status, body = _get(page)
        assert status == 200 and b"<html" in body.lower()
        while time.monotonic() < deadline and proc.poll() is None:
            status, body = _get(page + "/data", token)
            assert status == 200
            data = json.loads(body)
            if sum(n for counts in data["funnel"].values() for n in counts.values()) > 0:
                break
            time.sleep(2)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert data["funnel"], out
    assert sum(n for counts in data["funnel"].values() for n in counts.values()) > 0, data
    done = re.search(r"the worker published (\d+) score and stage records \((\d+) stage", out)
    assert done is not None, out
    assert int(done.group(1)) > 0 and int(done.group(2)) > 0, out
    assert re.search(r"\] \w+ -> \w+: ", out), out  # stage changes printed as they happened
    assert "ev/s" in out and "top b2b:" in out
    assert (tmp_path / "demo-worker.log").exists()
