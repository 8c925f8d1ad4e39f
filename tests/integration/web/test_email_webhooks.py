"""The email-platform webhooks in a real worker process: vendor payloads in, events on the real
broker's email topic.

One worker serves the module, with the Postmark, Brevo and Mailjet webhook passwords and an SES
topic in its environment. The bodies are the vendors' documented payloads
(tests/fixtures/<vendor>/). The SES webhook is checked as production runs it: a message whose
certificate URL is not an SNS host, or whose topic is not allowed, is refused without any
request leaving the machine (signed messages are tested in tests/unit/web/test_sns.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout
from aiokafka import AIOKafkaConsumer
from webworker import WebWorker, web_worker

from stream.kafka import topics

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PASSWORDS = {
    vendor: f"{vendor}-it-{uuid.uuid4().hex}" for vendor in ("postmark", "brevo", "mailjet")
}
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorker]:
    env = {
        "LEADSTREAM_POSTMARK_WEBHOOK_PASSWORD": PASSWORDS["postmark"],
        "LEADSTREAM_BREVO_WEBHOOK_PASSWORD": PASSWORDS["brevo"],
        "LEADSTREAM_MAILJET_WEBHOOK_PASSWORD": PASSWORDS["mailjet"],
        "LEADSTREAM_SES_SNS_TOPIC_ARNS": TOPIC,
        "LEADSTREAM_WEBHOOK_REPLAY_STORE": "memory",
    }
    tmp = tmp_path_factory.mktemp("email-webhooks")
    with web_worker(kafka_bootstrap, redis_url, tmp, env) as served:
        yield served


def _basic(vendor: str, password: str | None = None) -> dict[str, str]:
    secret = PASSWORDS[vendor] if password is None else password
    token = base64.b64encode(f"{vendor}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _post(
    worker: WebWorker, vendor: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with (
        ClientSession(timeout=ClientTimeout(total=30)) as session,
        session.post(worker.url(f"/webhooks/{vendor}"), data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def _email_events(worker: WebWorker, ids: set[str]) -> dict[str, tuple[bytes, Any]]:
    """The email topic's records by event id, read from the start until all of `ids` arrived."""
    consumer = AIOKafkaConsumer(
        worker.settings.topic(topics.EMAIL.name),
        bootstrap_servers=worker.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: dict[str, tuple[bytes, Any]] = {}
    try:
        async with asyncio.timeout(30):
            while not ids <= set(seen):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        value = orjson.loads(record.value)
                        seen[value["event_id"]] = (record.key, value)
    except TimeoutError:
        pytest.fail(f"timed out: got {sorted(seen)}\n{worker.log_text()[-4000:]}")
    finally:
        await consumer.stop()
    return seen


async def test_vendor_payloads_reach_the_email_topic(worker: WebWorker) -> None:
    status, answer = await _post(
        worker, "postmark", (FIXTURES / "postmark/bounce.json").read_bytes(), _basic("postmark")
    )
    assert (status, answer["accepted"]) == (202, ["postmark:bounce-4323372036854775807"])
    status, proxy = await _post(
        worker, "brevo", (FIXTURES / "brevo/proxy_open.json").read_bytes(), _basic("brevo")
    )
    assert status == 202
    status, grouped = await _post(
        worker, "mailjet", (FIXTURES / "mailjet/grouped-sent.json").read_bytes(), _basic("mailjet")
    )
    assert status == 202 and len(grouped["accepted"]) == 2
    wanted = {*answer["accepted"], *proxy["accepted"], *grouped["accepted"]}
    seen = await _email_events(worker, wanted)
    key, bounce = seen["postmark:bounce-4323372036854775807"]
    assert key == b"email:john@example.com"
    assert (bounce["type"], bounce["bounce"], bounce["source"]) == (
        "email_bounced",
        "hard",
        "postmark",
    )
    _, opened = seen[proxy["accepted"][0]]
    assert (opened["machine_open"], opened["machine"]) == (True, "vendor flag: proxy_open")
    assert {seen[i][1]["type"] for i in grouped["accepted"]} == {"email_delivered"}


async def test_refusals_and_masked_passwords(worker: WebWorker) -> None:
    delivery = (FIXTURES / "postmark/delivery.json").read_bytes()
    status, answer = await _post(worker, "postmark", delivery, {})
    assert (status, answer["error"]) == (401, "missing_credentials")
    wrong = _basic("mailjet", PASSWORDS["brevo"])
    status, answer = await _post(worker, "mailjet", b"[]", wrong)
    assert (status, answer["error"]) == (401, "wrong_secret")

    notification = json.loads((FIXTURES / "ses/sns-notification.json").read_text())
    notification["Message"] = (FIXTURES / "ses/event-send.json").read_text()
    local_cert = {**notification, "SigningCertURL": "https://127.0.0.1:1/cert.pem"}
    status, answer = await _post(worker, "ses", orjson.dumps(local_cert), {})
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert "SNS host" in answer["detail"]
    other_topic = {**notification, "TopicArn": "arn:aws:sns:us-west-2:123456789012:Other"}
    status, answer = await _post(worker, "ses", orjson.dumps(other_topic), {})
    assert (status, answer["error"]) == (401, "unexpected_topic")

    log = worker.log_text()
    assert "refused 401 unexpected_topic" in log
    for password in PASSWORDS.values():
        assert password not in log
