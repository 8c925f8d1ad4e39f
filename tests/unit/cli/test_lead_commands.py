"""`leadstream explain` and `leadstream forget`: exit codes a script can rely on, and the tables."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from stream import cli
from stream.cli.explain import render
from stream.cli.forget import erasure

LEAD: dict[str, Any] = {
    "lead_id": "lead-1",
    "as_of": "2026-01-02T03:04:05+00:00",
    "models": [
        {
            "model": "b2b",
            "model_version": "2025-06-01",
            "as_of": "2026-01-02T03:04:05+00:00",
            "fit": 26.0,
            "engagement": 39.5,
            "total": 65.5,
            "grade": "A2",
            "stage": "sql",
            "rules": [
                {"rule_id": "demo_request", "kind": "engagement", "group": "web", "points": 29.5},
                {"rule_id": "age", "kind": "fit", "group": None, "points": 16.0},
            ],
            "groups": {"web": 39.5},
            "recent": [],
            "history": [
                {
                    "from_stage": None,
                    "to_stage": "lead",
                    "at": "2026-01-01T00:00:00+00:00",
                    "reason": "new lead",
                },
                {
                    "from_stage": "lead",
                    "to_stage": "sql",
                    "at": "2026-01-01T00:05:00+00:00",
                    "reason": "hand-raise demo_request with fit 26 >= 5",
                },
            ],
            "flags": [],
        }
    ],
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer good":
            self._answer(403, {"error": "invalid_token", "detail": "token not accepted"})
        elif self.path == "/leads/lead-1":
            self._answer(200, LEAD)
        else:
            self._answer(404, {"error": "unknown_lead", "detail": "no lead"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def fake_worker() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_explain_prints_the_rules_and_the_history(
    fake_worker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["explain", "lead-1", "--url", fake_worker, "--token", "good"]) == 0
    out = capsys.readouterr().out
    assert "model b2b 2025-06-01: total 65.50 (fit 26.00, engagement 39.50), grade A2" in out
    assert "demo_request  engagement  web    +29.50" in out
    assert "stage history:" in out and "hand-raise demo_request with fit 26 >= 5" in out


def test_explain_takes_the_first_configured_token(
    fake_worker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADSTREAM_AUTH_TOKENS", "good,other")
    assert cli.main(["explain", "lead-1", "--url", fake_worker]) == cli.EXIT_OK


def test_explain_exit_codes(
    fake_worker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEADSTREAM_AUTH_TOKENS", raising=False)
    assert cli.main(["explain", "nobody", "--url", fake_worker, "--token", "good"]) == 5
    assert "no lead 'nobody'" in capsys.readouterr().err
    assert cli.main(["explain", "lead-1", "--url", fake_worker, "--token", "bad"]) == 3
    assert "403" in capsys.readouterr().err
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    assert cli.main(["explain", "lead-1", "--url", unreachable]) == 4
    assert "cannot reach the worker" in capsys.readouterr().err


def test_render_a_merged_lead() -> None:
    assert render({"lead_id": "a", "merged_into": "b"}) == "lead a was merged into b"


def test_an_erasure_is_a_fresh_lead_erased_event() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    one, two = erasure("lead-1", "GDPR", now=now), erasure("lead-1", None, now=now)
    assert one.type == "lead_erased" and one.lead_id == "lead-1" and one.reason == "GDPR"
    assert one.event_id != two.event_id


def test_forget_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", f"127.0.0.1:{_closed_port()}")
    assert cli.main(["forget", "lead 1"]) == cli.EXIT_USAGE
    assert "not a lead id" in capsys.readouterr().err
    assert cli.main(["forget", "lead-1", "--reason", "GDPR"]) == cli.EXIT_INFRA
    assert "cannot reach Kafka" in capsys.readouterr().err
