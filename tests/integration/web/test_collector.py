"""The collector in a real worker process: HTTP in, events on the real broker's source topics.

One worker serves the whole module (its web server on a free port, tokens and webhook keys in its
environment, the Mailgun replay cache in the real Redis); each test sends real HTTP requests with
aiohttp's client and reads what arrived with aiokafka.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio
from aiohttp import ClientSession, ClientTimeout
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from webworker import WebWorker, read_topic, web_worker, with_ids

from stream.kafka import topics
from stream.web.auth import RedisReplayGuard
from stream.web.collector import COOKIE_NAME, PIXEL_GIF
from stream.web.links import LinkSigner

pytestmark = pytest.mark.integration

TOKEN = "tok-it-" + uuid.uuid4().hex
MAILGUN_KEY = "key-it-" + uuid.uuid4().hex
MAILCHIMP_KEY = "mc-it-" + uuid.uuid4().hex
LINK_KEY = "link-it-" + uuid.uuid4().hex


@dataclass
class CollectorWorker(WebWorker):
    sendgrid_key: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CollectorWorker]:
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        sendgrid_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    env = {
        "LEADSTREAM_AUTH_TOKENS": f"tok-other-one,{TOKEN}",
        "LEADSTREAM_SENDGRID_PUBLIC_KEY": public,
        "LEADSTREAM_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "LEADSTREAM_MAILCHIMP_WEBHOOK_KEY": MAILCHIMP_KEY,
        "LEADSTREAM_WEBHOOK_REPLAY_STORE": "redis",
        "LEADSTREAM_COLLECTOR_MAX_CALL_BYTES": "4096",
        "LEADSTREAM_LINK_SIGNING_KEY": LINK_KEY,
    }
    tmp = tmp_path_factory.mktemp("collector")
    with web_worker(kafka_bootstrap, redis_url, tmp, env) as served:
        yield CollectorWorker(served.settings, served.base_url, served.log, sendgrid_key)


_read = read_topic
_with_ids = with_ids


def _session() -> ClientSession:
    return ClientSession(timeout=ClientTimeout(total=30))


def _bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_pixel_hit_is_a_page_view_of_the_cookie_visitor(worker: CollectorWorker) -> None:
    async with _session() as session:
        async with session.get(
            worker.url("/collect/pixel.gif"),
            params={
                "url": "https://acme.example/pricing?utm_source=google",
                "ref": "https://www.google.com/",
                "title": "Pricing",
                "eid": "hit-1",
            },
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/gif"
            assert await response.read() == PIXEL_GIF
            aid = response.cookies[COOKIE_NAME].value
            first_id = response.headers["X-Leadstream-Event-Id"]
        # the browser sends the cookie back: the same visitor
        async with session.get(
            worker.url("/collect/pixel.gif"),
            params={"url": "https://acme.example/demo"},
            headers={"Cookie": f"{COOKIE_NAME}={aid}"},
        ) as response:
            second_id = response.headers["X-Leadstream-Event-Id"]
        async with session.get(worker.url("/collect/leadstream.js")) as response:
            assert response.status == 200
            assert "pixel.gif" in await response.text()

    records = await _read(worker, topics.CLICKSTREAM, _with_ids(first_id, second_id))
    by_id = {value["event_id"]: (key, value) for key, value in records}
    key, first = by_id[first_id]
    assert key == aid.encode()
    assert first["type"] == "page_viewed"
    assert first["anonymous_id"] == aid
    assert first["url"] == "https://acme.example/pricing?utm_source=google"
    assert first["referrer"] == "https://www.google.com/"
    assert first["title"] == "Pricing"
    assert first["utm"] == {"source": "google"}
    assert first["source"] == "web"
    assert by_id[second_id][1]["anonymous_id"] == aid


async def test_segment_track_with_without_and_with_a_wrong_token(worker: CollectorWorker) -> None:
    message_id = f"seg-{uuid.uuid4().hex}"
    event_id = f"segment:{message_id}"  # a client's messageId is scoped by the source
    call = {
        "userId": "lead-seg-1",
        "event": "Demo Requested",
        "messageId": message_id,
        "properties": {"product": "Acme Cloud"},
        "timestamp": "2025-03-14T09:26:53Z",
    }
    async with _session() as session:
        url = worker.url("/v1/track")
        async with session.post(url, json=call) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"] == "missing_token"
        async with session.post(url, json=call, headers=_bearer("tok-wrong")) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "invalid_token"
        async with session.post(url, json=call, headers=_bearer()) as response:
            assert response.status == 202
            assert await response.json() == {"accepted": [event_id], "rejected": []}
        # malformed and oversized bodies
        async with session.post(url, data=b'{"userId": ', headers=_bearer()) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "not_json"
        big = orjson.dumps({**call, "properties": {"pad": "x" * 5000}})
        async with session.post(url, data=big, headers=_bearer()) as response:
            assert response.status == 413
            assert (await response.json())["error"] == "too_large"

    records = await _read(worker, topics.CLICKSTREAM, _with_ids(event_id))
    (key, value), *more = [(k, v) for k, v in records if v["event_id"] == event_id]
    assert not more, "the refused requests wrote nothing"
    assert key == b"lead-seg-1"
    assert value["type"] == "demo_requested"
    assert value["product"] == "Acme Cloud"


def _sendgrid_request(
    worker: CollectorWorker, events: list[dict[str, Any]], *, key: ec.EllipticCurvePrivateKey
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(events)
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


async def test_sendgrid_signed_events_reach_the_email_topic(worker: CollectorWorker) -> None:
    sg_id = f"sg-{uuid.uuid4().hex}"
    events = [
        {
            "email": "Ada@Example.com",
            "event": "open",
            "sg_event_id": sg_id,
            "timestamp": int(time.time()),
            "sg_machine_open": False,
        },
        {"email": "ada@example.com", "event": "deferred", "timestamp": int(time.time())},
    ]
    body, headers = _sendgrid_request(worker, events, key=worker.sendgrid_key)
    wrong_body, wrong_headers = _sendgrid_request(
        worker,
        [{**events[0], "sg_event_id": "sg-forged"}],
        key=ec.generate_private_key(ec.SECP256R1()),
    )
    async with _session() as session:
        url = worker.url("/webhooks/sendgrid")
        async with session.post(url, data=wrong_body, headers=wrong_headers) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "invalid_signature"
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 202
            answer = await response.json()
    event_id = f"sendgrid:{sg_id}"
    assert answer["accepted"] == [event_id]
    assert [r["kind"] for r in answer["rejected"]] == ["deferred"]

    records = await _read(worker, topics.EMAIL, _with_ids(event_id))
    assert "sendgrid:sg-forged" not in {value["event_id"] for _, value in records}
    ((key, value),) = [(k, v) for k, v in records if v["event_id"] == event_id]
    assert key == b"email:ada@example.com"
    assert (value["type"], value["source"]) == ("email_opened", "sendgrid")


async def test_a_tracked_link_redirects_and_its_click_reaches_the_email_topic(
    worker: CollectorWorker,
) -> None:
    signer = LinkSigner([LINK_KEY], worker.base_url)
    message_id = f"msg-{uuid.uuid4().hex}"
    url = signer.click_url(
        "https://acme.example/pricing?plan=team",
        email="Ada@Example.com",
        message_id=message_id,
        campaign_id="spring",
    )
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko Firefox/125.0"}
    async with _session() as session:
        async with session.get(url, headers=browser, allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "https://acme.example/pricing?plan=team"
            assert "no-store" in response.headers["Cache-Control"]
            click_id = response.headers["X-Leadstream-Event-Id"]
        # a mail scanner's HEAD is redirected too, and its click kept, marked
        async with session.head(url, headers=browser, allow_redirects=False) as response:
            assert response.status == 302
            head_id = response.headers["X-Leadstream-Event-Id"]
        async with session.get(url + "x", allow_redirects=False) as response:
            assert response.status == 404
            assert "Location" not in response.headers
        pixel = signer.open_url(email="ada@example.com", message_id=message_id)
        async with session.get(pixel, headers=browser) as response:
            assert response.status == 200
            assert await response.read() == PIXEL_GIF
            open_id = response.headers["X-Leadstream-Event-Id"]

    records = await _read(worker, topics.EMAIL, _with_ids(click_id, head_id, open_id))
    by_id = {value["event_id"]: (key, value) for key, value in records}
    key, click = by_id[click_id]
    assert key == b"email:ada@example.com"
    assert (click["type"], click["source"], click["message_id"], click["campaign_id"]) == (
        "email_clicked",
        "leadstream",
        message_id,
        "spring",
    )
    assert click["url"] == "https://acme.example/pricing?plan=team"
    assert click.get("machine") is None
    assert by_id[head_id][1]["machine"] == "HEAD request"
    key, opened = by_id[open_id]
    assert key == b"email:ada@example.com"
    assert (opened["type"], opened["message_id"]) == ("email_opened", message_id)
    assert LINK_KEY not in worker.log.read_text(errors="replace")


def _mailgun_body(token: str, timestamp: int, *, key: str = MAILGUN_KEY) -> dict[str, Any]:
    ts = str(timestamp)
    signature = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": ts, "token": token, "signature": signature},
        "event-data": {
            "event": "clicked",
            "id": f"mg-{token}",
            "timestamp": timestamp,
            "recipient": "grace@example.com",
            "url": "https://acme.example/webinar",
        },
    }


async def test_mailgun_valid_wrong_stale_and_replayed(
    worker: CollectorWorker, redis_url: str
) -> None:
    now = int(time.time())
    token = uuid.uuid4().hex
    async with _session() as session:
        url = worker.url("/webhooks/mailgun")

        async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with session.post(url, json=body) as response:
                return response.status, await response.json()

        status, answer = await post(_mailgun_body(token, now, key="key-wrong"))
        assert (status, answer["error"]) == (401, "invalid_signature")
        status, answer = await post(_mailgun_body(uuid.uuid4().hex, now - 3600))
        assert (status, answer["error"]) == (401, "stale_timestamp")
        status, answer = await post(_mailgun_body(token, now))
        assert status == 202 and len(answer["accepted"]) == 1
        accepted_id = answer["accepted"][0]
        status, answer = await post(_mailgun_body(token, now))
        assert (status, answer["error"]) == (401, "replayed_token")
        status, answer = await post({"event-data": {"event": "opened"}})
        assert (status, answer["error"]) == (401, "missing_signature")

    # the replay cache is Redis, shared by every worker of the app
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        guard = RedisReplayGuard(client, prefix=f"{worker.settings.app_id}:mailgun-token:")
        assert not await guard.first_use(token, ttl_seconds=60)
        ttl = await client.ttl(f"{worker.settings.app_id}:mailgun-token:" + _sha(token))
        assert 0 < ttl <= 2 * 300 + 60
    finally:
        await client.aclose()

    records = await _read(worker, topics.EMAIL, _with_ids(accepted_id))
    ((key, value),) = [(k, v) for k, v in records if v["event_id"] == accepted_id]
    assert key == b"email:grace@example.com"
    assert value["type"] == "email_clicked"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_mailchimp_right_and_wrong_secret(worker: CollectorWorker) -> None:
    email = f"{uuid.uuid4().hex[:8]}@example.com"
    form = {
        "type": "subscribe",
        "fired_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "data[email]": email,
        "data[list_id]": "list-1",
        "data[merges][FNAME]": "Grace",
    }
    async with _session() as session:
        good = worker.url(f"/webhooks/mailchimp/{MAILCHIMP_KEY}")
        bad = worker.url("/webhooks/mailchimp/not-the-key")
        async with session.get(good) as response:  # Mailchimp's check when the URL is saved
            assert response.status == 200
        async with session.get(bad) as response:
            assert response.status == 401
        async with session.post(bad, data=form) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "wrong_secret"
        async with session.post(good, data=form) as response:
            assert response.status == 202
            accepted = (await response.json())["accepted"]
    assert len(accepted) == 2  # email_subscribed and profile_updated

    subscribed = await _read(worker, topics.EMAIL, _with_ids(accepted[0]))
    assert [v["type"] for _, v in subscribed if v["event_id"] == accepted[0]] == [
        "email_subscribed"
    ]
    profiles = await _read(worker, topics.PROFILES, _with_ids(accepted[1]))
    ((key, value),) = [(k, v) for k, v in profiles if v["event_id"] == accepted[1]]
    assert key == f"email:{email}".encode()
    assert value["traits"]["first_name"] == "Grace"


async def test_worker_log_masks_secrets_and_addresses(worker: CollectorWorker) -> None:
    # refusals are logged with the request path and the reason, both partly the caller's
    async with _session() as session:
        bad = worker.url(f"/webhooks/mailchimp/{MAILCHIMP_KEY}x")
        async with session.post(bad, data={}) as response:
            assert response.status == 401
        body = {"type": "ada.lovelace@example.com", "userId": "u"}
        async with session.post(worker.url("/v1/track"), json=body, headers=_bearer()) as r:
            assert r.status == 400
    deadline = time.monotonic() + 10
    while "***@example.com" not in worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.2)
    log = worker.log.read_text(errors="replace")
    assert "/webhooks/mailchimp/***" in log
    assert "ada.lovelace@example.com" not in log
    for secret in (TOKEN, MAILGUN_KEY, MAILCHIMP_KEY):
        assert secret not in log
