"""Security: refused callers, refused webhooks, `leadstream forget`, and logs free of secrets.

One served worker with every webhook configured. Unauthenticated and wrong-token calls are
refused on every protected endpoint; webhooks signed with a wrong key, with a stale timestamp or
with a replayed nonce are refused; `leadstream forget` removes a lead from both tables (their
changelogs end in a tombstone), from the Redis read model and from the API. The last test scans
every log written during the session (every worker of every test of the suite) for email
addresses and for the tokens and keys the tests used.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio
import reliability_harness as h
from aiohttp import ClientSession, ClientTimeout
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from schemas import codec
from schemas.events import Traits
from schemas.examples import make_event
from stream.kafka import topics
from stream.readmodel.model import prefix_for

pytestmark = pytest.mark.integration

MAILGUN_KEY = "mg-rel-" + uuid.uuid4().hex
MAILCHIMP_KEY = "mc-rel-" + uuid.uuid4().hex
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SECRETS: set[str] = {MAILGUN_KEY, MAILCHIMP_KEY}


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("security")
    served = h.root.launch_worker(kafka_bootstrap, redis_url, tmp)
    public = base64.b64encode(
        SENDGRID_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    served.env |= {
        "LEADSTREAM_SENDGRID_PUBLIC_KEY": public,
        "LEADSTREAM_MAILGUN_SIGNING_KEY": MAILGUN_KEY,
        "LEADSTREAM_MAILCHIMP_WEBHOOK_KEY": MAILCHIMP_KEY,
        "LEADSTREAM_WEBHOOK_REPLAY_STORE": "redis",
    }
    SECRETS.add(served.token)
    served.start()
    yield served
    served.stop()


def _session() -> ClientSession:
    return ClientSession(timeout=ClientTimeout(total=20))


PROTECTED = [
    ("POST", "/v1/track", {"userId": "u-1", "event": "Signed Up"}),
    ("POST", "/v1/identify", {"userId": "u-1", "traits": {"email": "x@example.com"}}),
    ("POST", "/v1/page", {"anonymousId": "a-1", "name": "Home"}),
    ("POST", "/v1/batch", {"batch": [{"type": "track", "userId": "u", "event": "e"}]}),
    ("GET", "/leaderboard?model=b2b", None),
    ("GET", "/dashboard/data", None),
    ("GET", "/leads/lead-x", None),
]


async def test_unauthenticated_and_wrong_token_calls_are_refused(worker: Any) -> None:
    wrong = [
        {},
        {"Authorization": "Bearer " + uuid.uuid4().hex},
        {"Authorization": f"Bearer {worker.token}x"},
        {"Authorization": f"Bearer {worker.token[:-1]}"},
        {"Authorization": f"Basic {base64.b64encode(b'wrong:' + worker.token.encode()).decode()}"},
        {"Authorization": f"Basic {base64.b64encode(b':' + worker.token.encode()).decode()}"},
        {"Authorization": worker.token},
        {"X-Api-Key": worker.token},
    ]
    async with _session() as session:
        for method, path, body in PROTECTED:
            for headers in wrong:
                async with session.request(
                    method, worker.base + path, json=body, headers=headers
                ) as response:
                    assert response.status in {401, 403}, (path, headers, response.status)
                    assert "error" in await response.json()
            # the token in the query string is no token either
            async with session.request(
                method,
                f"{worker.base}{path}{'&' if '?' in path else '?'}token={worker.token}",
                json=body,
            ) as response:
                assert response.status in {401, 403}, (path, "query token")
            right = {"Authorization": f"Bearer {worker.token}"}
            async with session.request(
                method, worker.base + path, json=body, headers=right
            ) as response:
                assert response.status not in {401, 403}, (path, await response.text())


def _sendgrid(body: bytes, timestamp: int, key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    signature = key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }


def _mailgun(token: str, timestamp: int, key: str) -> dict[str, Any]:
    signature = hmac.new(
        key.encode(), (str(timestamp) + token).encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
        "event-data": {
            "event": "opened",
            "id": f"mg-{token}",
            "timestamp": timestamp,
            "recipient": "grace@example.com",
        },
    }


async def test_webhooks_with_a_wrong_key_a_stale_timestamp_or_a_replayed_nonce_are_refused(
    worker: Any,
) -> None:
    now = int(time.time())
    events = orjson.dumps(
        [{"email": "ada@example.com", "event": "open", "sg_event_id": "sg-1", "timestamp": now}]
    )
    other = ec.generate_private_key(ec.SECP256R1())
    async with _session() as session:
        sendgrid = worker.base + "/webhooks/sendgrid"
        for headers, error in [
            (_sendgrid(events, now, other), "invalid_signature"),
            (_sendgrid(events, now - 3600, SENDGRID_KEY), "stale_timestamp"),
            (_sendgrid(events, now + 3600, SENDGRID_KEY), "stale_timestamp"),
            ({"Content-Type": "application/json"}, "missing_signature"),
        ]:
            async with session.post(sendgrid, data=events, headers=headers) as response:
                assert response.status == 401, error
                assert (await response.json())["error"] == error
        # a body changed after signing
        headers = _sendgrid(events, now, SENDGRID_KEY)
        async with session.post(sendgrid, data=events + b" ", headers=headers) as response:
            assert response.status == 401
        async with session.post(sendgrid, data=events, headers=headers) as response:
            assert response.status == 202

        mailgun = worker.base + "/webhooks/mailgun"
        nonce = uuid.uuid4().hex
        for body, error in [
            (_mailgun(nonce, now, "key-wrong"), "invalid_signature"),
            (_mailgun(uuid.uuid4().hex, now - 3600, MAILGUN_KEY), "stale_timestamp"),
        ]:
            async with session.post(mailgun, json=body) as response:
                assert response.status == 401
                assert (await response.json())["error"] == error
        async with session.post(mailgun, json=_mailgun(nonce, now, MAILGUN_KEY)) as response:
            assert response.status == 202
        async with session.post(mailgun, json=_mailgun(nonce, now, MAILGUN_KEY)) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "replayed_token"

        form = {"type": "subscribe", "data[email]": "ada@example.com", "data[list_id]": "l"}
        for secret in ("wrong", MAILCHIMP_KEY[:-1], MAILCHIMP_KEY + "x", ""):
            async with session.post(
                f"{worker.base}/webhooks/mailchimp/{secret}", data=form
            ) as response:
                assert response.status in {401, 404, 405}, secret


# ----------------------------------------------------------------------------- forget


async def _references(client: Any, prefix: str, needles: list[str]) -> list[str]:
    """Every read-model key, member or field that mentions one of `needles`."""
    found = []
    async for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode()
        if any(n in key for n in needles):
            found.append(key)
            continue
        kind = (await client.type(raw)).decode()
        if kind == "zset":
            members = [m.decode() for m in await client.zrange(raw, 0, -1)]
        elif kind == "hash":
            members = [f.decode() for f in await client.hkeys(raw)]
        elif kind == "set":
            members = [m.decode() for m in await client.smembers(raw)]
        else:
            continue
        found += [f"{key} {m}" for m in members if any(n in m for n in needles)]
    return found


async def _last_values(bootstrap: str, topic: str, keys: set[bytes]) -> dict[bytes, bytes | None]:
    """The last value of each of `keys` on `topic` (a changelog or a compacted topic)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics()}  # none created
    finally:
        await admin.close()
    found = described.get(topic, {}).get("partitions", ())
    partitions = [TopicPartition(topic, p["partition"]) for p in found]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        last: dict[bytes, bytes | None] = {}
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    if record.key in keys:
                        last[record.key] = record.value
    finally:
        await consumer.stop()
    return last


async def test_forget_removes_a_lead_from_every_table_the_read_model_and_the_api(
    worker: Any, produce_events: Any, redis_url: str, unique: str
) -> None:
    lead, anon = f"lead-forget-{unique}", f"anon-forget-{unique}"
    now = datetime.now(UTC)
    events = [
        make_event(
            "page_viewed",
            event_id=f"{unique}-1",
            occurred_at=now - timedelta(minutes=9),
            lead_id=None,
            anonymous_id=anon,
        ),
        make_event(
            "identify",
            event_id=f"{unique}-2",
            occurred_at=now - timedelta(minutes=8),
            lead_id=lead,
            anonymous_id=anon,
            traits=Traits(email=f"{unique}@example.com", first_name="Ada"),
        ),
        make_event(
            "profile_updated",
            event_id=f"{unique}-3",
            occurred_at=now - timedelta(minutes=7),
            lead_id=lead,
            anonymous_id=None,
            traits=Traits(industry="software", company_size=400, job_title="CTO"),
        ),
        make_event(
            "demo_requested",
            event_id=f"{unique}-4",
            occurred_at=now - timedelta(minutes=6),
            lead_id=lead,
            anonymous_id=None,
        ),
    ]
    await produce_events(worker.settings, events)
    auth = {"Authorization": f"Bearer {worker.token}"}
    client = redis.asyncio.Redis.from_url(redis_url)
    prefix = prefix_for(worker.settings)
    try:
        async with _session() as session:

            async def api_status() -> int:
                async with session.get(f"{worker.base}/leads/{lead}", headers=auth) as response:
                    await response.read()
                    return response.status

            async def board() -> set[str]:
                async with session.get(
                    f"{worker.base}/leaderboard?model=b2b&limit=1000", headers=auth
                ) as response:
                    if response.status != 200:
                        return set()
                    return {row["lead_id"] for row in (await response.json())["leads"]}

            async def known() -> bool:
                return (
                    await api_status() == 200
                    and lead in await board()
                    and bool(await _references(client, prefix, [lead]))
                )

            await _eventually(known, "the lead reached the API and the read model")
            forgot = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "stream.cli", "forget", lead, "--reason", "test"],
                env={**os.environ, **worker.env},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert forgot.returncode == 0, forgot.stderr

            async def gone() -> bool:
                return (
                    await api_status() == 404
                    and lead not in await board()
                    and not await _references(client, prefix, [lead, anon])
                )

            await _eventually(gone, "the lead was erased everywhere")
    finally:
        await client.aclose()
    app_id = worker.settings.app_id
    bootstrap = worker.settings.kafka_bootstrap
    leads = await _last_values(bootstrap, f"{app_id}-leads-changelog", {lead.encode()})
    assert leads == {lead.encode(): None}, "the leads table still holds the lead"
    ids = await _last_values(bootstrap, f"{app_id}-identities-changelog", {anon.encode()})
    assert ids.get(anon.encode()) is None, "the identities table still links the visitor"
    scores = await _last_values(
        bootstrap,
        worker.settings.topic(topics.SCORES.name),
        {codec.score_key(lead, m) for m in ("b2b", "consumer")},
    )
    assert all(value is None for value in scores.values()), "a score survives compaction"


async def _eventually(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


# ----------------------------------------------------------------------------- logs

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
"""An address with a domain name (not ``node@127.0.0.1:port`` of a broker's own log)."""


def test_no_log_line_of_the_suite_holds_an_email_address_or_a_token(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Runs last in the suite (file order): every log of the session's workers is scanned."""
    # the workers' logs (a test broker's data segments are *.log files too: not logs)
    logs = sorted(
        log for log in tmp_path_factory.getbasetemp().rglob("*.log") if not log.stem.isdigit()
    )
    assert logs, "no worker log to scan"
    secrets = SECRETS | h.SECRETS
    lines = 0
    leaks: list[str] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            lines += 1
            emails = [m for m in EMAIL.findall(line) if not m.startswith("***@")]
            if emails or any(secret in line for secret in secrets):
                leaks.append(f"{log.name}: {line[:300]}")
    h.record(h.Tally("log scan", notes={"logs": len(logs), "lines": lines, "leaks": len(leaks)}))
    assert not leaks, leaks[:20]
