"""The README's webhook section: its receiver code verifies what the connector signs, and its
example body is what the connector sends."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.examples import OUTPUT_EXAMPLES
from schemas.outputs import AccountStageChanged
from schemas.stages import AccountStage
from stream.connect.webhook import parse_secret, payload, sign

README = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Connecting your CRM", 1)[1].split("\n## ", 1)[0]
SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()


def _block(language: str, marker: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)\n```", SECTION, flags=re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    return block


@pytest.fixture(scope="module")
def verify() -> Any:
    namespace: dict[str, Any] = {}
    exec(_block("python", "def verify("), namespace)  # the README's own code
    return namespace["verify"]


def _signed(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    msg_id = "a88e5885-db91-5e9a-810a-92a7be59ce7a"
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": "v1,bm90IGl0 " + sign(parse_secret(secret), msg_id, timestamp, body),
    }


def test_the_readme_receiver_accepts_what_the_connector_signs(verify: Any) -> None:
    body = payload("lead.stage_changed", OUTPUT_EXAMPLES["stage_changed"])  # type: ignore[arg-type]
    event = verify(SECRET, _signed(body, int(time.time())), body)
    assert event["data"]["lead_id"] == "lead-7f3a9c"


@pytest.mark.parametrize("forgery", ["body", "secret", "old"])
def test_the_readme_receiver_refuses_a_forgery(verify: Any, forgery: str) -> None:
    body = payload("lead.stage_changed", OUTPUT_EXAMPLES["stage_changed"])  # type: ignore[arg-type]
    now = int(time.time())
    headers = _signed(body, now - 3600 if forgery == "old" else now)
    if forgery == "secret":
        headers = _signed(body, now, "whsec_" + base64.b64encode(b"x" * 32).decode())
    sent = body.replace(b"mql", b"sql") if forgery == "body" else body
    with pytest.raises(ValueError):
        verify(SECRET, headers, sent)


def test_the_readme_example_body_is_what_the_connector_sends() -> None:
    shown = json.loads(_block("json", '"lead.stage_changed"'))
    sent = json.loads(payload("lead.stage_changed", OUTPUT_EXAMPLES["stage_changed"]))  # type: ignore[arg-type]
    assert shown == sent


def test_the_readme_account_example_is_what_the_connector_sends() -> None:
    shown = json.loads(_block("json", '"account.stage_changed"'))
    data = shown["data"]
    record = AccountStageChanged.build(
        account_id=data["account_id"],
        model=data["model"],
        from_stage=AccountStage(data["from_stage"]),
        to_stage=AccountStage(data["to_stage"]),
        reason=data["reason"],
        triggering_lead_id=data["triggering_lead_id"],
        score=data["score"],
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
    )
    assert shown == json.loads(payload("account.stage_changed", record))
