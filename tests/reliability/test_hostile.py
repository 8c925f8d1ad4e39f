"""Hostile input: malformed messages among good ones, and abusive HTTP requests.

Thousands of bad messages (random bytes, truncated JSON, wrong types, unknown event types,
oversized payloads, timestamps far in the future or the past, missing ids, huge strings, deeply
nested JSON, empty values and tombstones) are interleaved with a simulated stream on the source
topics of a served worker. Every bad one must land in the dead-letter topic at its coordinates,
with its reason and its original bytes; every good one is scored exactly as the offline
reference scores it; the worker never stops. Then its HTTP endpoints get the same treatment,
plus header and query abuse: every answer is a 4xx (or, for a Segment call that wrote nothing, a
202 naming the reason of every rejected part), never a 5xx, and none hangs.
"""

from __future__ import annotations

import asyncio
import random
import socket
import string
from pathlib import Path
from typing import Any

import orjson
import pytest
import reliability_harness as h
from aiohttp import ClientSession, ClientTimeout
from aiokafka import AIOKafkaProducer

from schemas import codec
from schemas.errors import ErrorKind
from schemas.topics import EVENT_TOPIC, topic_for
from stream.kafka.admin import ensure_topics

pytestmark = pytest.mark.integration

BAD_KINDS: dict[str, set[ErrorKind]] = {
    "random_bytes": {ErrorKind.NOT_JSON},
    "truncated": {ErrorKind.NOT_JSON},
    "empty": {ErrorKind.NOT_JSON},
    "tombstone": {ErrorKind.NOT_JSON},
    "not_object": {ErrorKind.NOT_OBJECT},
    "wrong_type": {ErrorKind.SCHEMA_VIOLATION},
    "missing_id": {ErrorKind.SCHEMA_VIOLATION},
    "huge_string": {ErrorKind.SCHEMA_VIOLATION},
    "unknown_type": {ErrorKind.UNKNOWN_TYPE},
    "wrong_topic": {ErrorKind.UNKNOWN_TYPE},
    "oversized": {ErrorKind.TOO_LARGE},
    "far_future": {ErrorKind.TIMESTAMP_IN_FUTURE},
    "far_past": {ErrorKind.TIMESTAMP_TOO_OLD},
    "deeply_nested": {ErrorKind.NOT_JSON, ErrorKind.TOO_LARGE},
}


def _bad(kind: str, good: dict[str, Any], rng: random.Random) -> bytes | None:  # noqa: PLR0911, PLR0912
    """A hostile value made from a good event document."""
    doc = {**good, "event_id": f"bad-{rng.getrandbits(64):x}"}
    if kind == "random_bytes":
        return b"\xfe" + rng.randbytes(rng.randint(1, 3000))
    if kind == "truncated":
        raw = orjson.dumps(doc)
        return raw[: rng.randint(1, len(raw) - 1)]
    if kind == "empty":
        return b""
    if kind == "tombstone":
        return None
    if kind == "not_object":
        return rng.choice([b"[1, 2, 3]", b'"page_viewed"', b"42", b"null", b"true"])
    if kind == "wrong_type":
        field, value = rng.choice(
            [
                ("event_id", rng.randint(1, 10**9)),
                ("occurred_at", rng.randint(1_600_000_000, 1_800_000_000)),
                ("lead_id", [doc.get("lead_id")]),
                ("source", {"web": True}),
                ("occurred_at", "yesterday"),
            ]
        )
        return orjson.dumps({**doc, field: value})
    if kind == "missing_id":
        return orjson.dumps({k: v for k, v in doc.items() if k != "event_id"})
    if kind == "huge_string":
        return orjson.dumps({**doc, "source": "x" * rng.randint(5_000, 60_000)})
    if kind == "unknown_type":
        name = rng.choice(["lead_teleported", "PAGE_VIEWED", "", "ada@example.com", "💥" * 40])
        return orjson.dumps({**doc, "type": name})
    if kind == "wrong_topic":
        home = EVENT_TOPIC[doc["type"]]
        other = "closed_won" if EVENT_TOPIC["closed_won"] != home else "page_viewed"
        return orjson.dumps({**doc, "type": other})
    if kind == "oversized":
        return orjson.dumps({**doc, "padding": "y" * rng.randint(70_000, 500_000)})
    if kind == "far_future":
        year = rng.choice([2999, 9999, 2200])
        return orjson.dumps({**doc, "occurred_at": f"{year}-06-01T00:00:00Z"})
    if kind == "far_past":
        year = rng.choice(["0001", "1000", "1900", "1970"])
        return orjson.dumps({**doc, "occurred_at": f"{year}-01-01T00:00:00Z"})
    assert kind == "deeply_nested"
    depth = rng.randint(300, 50_000)
    return orjson.dumps(doc)[:-1] + b',"utm":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


async def _produce_interleaved(
    settings: Any, sim: Any, count: int, rng: random.Random
) -> dict[tuple[str, int, int], tuple[str, bytes | None]]:
    """The simulation's deliveries with `count` hostile values among them; the hostile ones'
    coordinates -> (kind, value)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    sent: list[tuple[asyncio.Future[Any], str, bytes | None]] = []
    try:
        goods = sim.deliveries
        every = max(len(goods) // max(count, 1), 1)
        kinds = sorted(BAD_KINDS)
        made = 0
        for n, delivery in enumerate(goods):
            await producer.send(
                settings.topic(delivery.topic), key=delivery.key, value=delivery.value
            )
            while made < count and (n % every == 0 or n == len(goods) - 1):
                event = sim.events[rng.randrange(len(sim.events))]
                kind = kinds[made % len(kinds)]
                value = _bad(kind, orjson.loads(codec.encode(event)), rng)
                topic = settings.topic(topic_for(event))
                key = rng.choice([codec.event_key(event), None, rng.randbytes(16)])
                if value is None:  # a tombstone needs a key
                    key = codec.event_key(event)
                future = await producer.send(topic, key=key, value=value)
                sent.append((future, kind, value))
                made += 1
                if n != len(goods) - 1:
                    break
        await producer.flush()
        metas = await asyncio.gather(*(f for f, _, _ in sent))
    finally:
        await producer.stop()
    return {
        (meta.topic, meta.partition, meta.offset): (kind, value)
        for meta, (_, kind, value) in zip(metas, sent, strict=True)
    }


async def test_malformed_messages_are_dead_lettered_and_good_ones_scored(
    worker_launcher: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    rng = random.Random(41)
    worker = worker_launcher()
    h.SECRETS.add(worker.token)
    models = tmp_path / "models.yaml"
    models.write_text(h.pipeline.model_text())
    worker.env["LEADSTREAM_MODELS_PATH"] = str(models)
    worker.env["LEADSTREAM_TIMER_INTERVAL_S"] = "3600"
    settings = worker.settings.model_copy(update={"models_path": models})
    await ensure_topics(settings)
    sim = h.scenario(seed=41, leads=h.SIZES.hostile_leads)
    out = h.Outputs()
    stop = asyncio.Event()
    reader = asyncio.create_task(h.read_outputs(settings, out, stop))
    worker.start()
    try:
        bad = await _produce_interleaved(settings, sim, h.SIZES.hostile_bad, rng)
        await h.settle(settings, out, worker.log)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker stopped"
    finally:
        stop.set()
        await reader
    result = await h.tally("hostile input", sim, settings, out, bad=len(bad))
    result.notes["hostile"] = len(bad)
    result.notes["simulated_malformed"] = h.malformed_coordinates(sim)
    h.record(result)

    letters = {(d.source_topic, d.partition, d.offset): d for d in out.letters}
    missing = [(c, kind) for c, (kind, _) in bad.items() if c not in letters]
    assert not missing, f"{len(missing)} hostile messages never dead-lettered: {missing[:10]}"
    for coordinates, (kind, value) in bad.items():
        letter = letters[coordinates]
        assert letter.error_kind in BAD_KINDS[kind], (kind, letter.error_kind, letter.message)
        assert letter.message, coordinates
        if value is not None and len(value) <= 256 * 1024:
            assert letter.original == value, coordinates
    assert len(letters) == len(bad) + h.malformed_coordinates(sim)
    await h.check_reference(sim, settings, out)
    # the same worker's HTTP endpoints (after the comparison: valid calls among them add leads)
    await _abuse_http(worker)
    assert worker.proc.poll() is None, "the worker stopped"


# ----------------------------------------------------------------------------- HTTP abuse


def _requests(token: str, rng: random.Random) -> list[tuple[str, str, dict[str, str], Any]]:
    """(method, path, headers, body) of requests every one of which must get a 4xx."""
    auth = {"Authorization": f"Bearer {token}"}
    js = {**auth, "Content-Type": "application/json"}
    out: list[tuple[str, str, dict[str, str], Any]] = []
    bodies: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b"42",
        b'"x"',
        b"{",
        b'{"type": "track"',
        b'{"event": 42, "userId": ["u"]}',
        b'{"event": "Signed Up"}',  # no userId / anonymousId
        b'{"userId": "u", "event": "' + b"e" * 5000 + b'"}',
        b'{"userId": "u", "event": "x", "timestamp": "9999-01-01T00:00:00Z"}',
        b'{"userId": "u", "event": "x", "timestamp": "0001-01-01T00:00:00Z"}',
        b'{"userId": "u", "event": "x", "timestamp": 1e308}',
        b'{"userId": "u", "event": "x", "properties": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
        b'{"userId": "' + b"u" * 300 + b'", "event": "x"}',
        b'{"userId": "u\\u0000", "event": "x"}',
        b'{"batch": 7}',
        b'{"batch": [1, "two", null]}',
        b'{"userId": "u", "event": "x", "properties": {"revenue": 1e999}}',
        "\ud83d".encode("utf-8", "surrogatepass"),
        b"\xff\xfe" + bytes(range(256)),
        b"x" * 70_000,  # over the call limit: 413
    ]
    bodies += [rng.randbytes(rng.randint(1, 2000)) for _ in range(20)]
    for kind in ("track", "identify", "page", "batch"):
        for body in bodies:
            out.append(("POST", f"/v1/{kind}", js, body))
        out.append(("POST", f"/v1/{kind}", {}, b'{"userId": "u", "event": "x"}'))
        out.append(("POST", f"/v1/{kind}", {"Authorization": "Bearer nope"}, b"{}"))
        out.append(("POST", f"/v1/{kind}", {"Authorization": "Basic dTpw"}, b"{}"))
        out.append(("POST", f"/v1/{kind}", {"Authorization": "Bearer " + "t" * 6000}, b"{}"))
        out.append(("POST", f"/v1/{kind}", {"Authorization": "Bearer"}, b"{}"))
        out.append(("POST", f"/v1/{kind}", {**js, "Content-Encoding": "gzip"}, b"not gzip"))
        out.append(("PUT", f"/v1/{kind}", js, b"{}"))
        out.append(("DELETE", f"/v1/{kind}", js, b""))
    for path in ("/webhooks/sendgrid", "/webhooks/mailgun", "/webhooks/mailchimp/wrong"):
        for body in bodies[:12]:
            out.append(("POST", path, {"Content-Type": "application/json"}, body))
        out.append(
            (
                "POST",
                path,
                {
                    "X-Twilio-Email-Event-Webhook-Signature": "!!!not base64",
                    "X-Twilio-Email-Event-Webhook-Timestamp": "-1e99",
                },
                b"[]",
            )
        )
        out.append(("POST", path, {"Content-Type": "application/x-www-form-urlencoded"}, b"%%"))
    queries = [
        "",
        "model=",
        "model=b2b&limit=abc",
        "model=b2b&limit=-5",
        "model=b2b&limit=0",
        "model=b2b&limit=" + "9" * 5000,
        "model=b2b&limit=%C2%B2",  # a superscript two: a digit to str.isdigit, not to int()
        "model=b2b&limit=%D9%A3",  # an Arabic-Indic three
        "model=b2b&stage=nonsense",
        "model=%00",
        "model=" + "m" * 5000,
        "model=no-such-model",
        "model=%ZZ",
        "model=b2b&stage=" + "%F0%9F%92%A5" * 100,
    ]
    for query in queries:
        out.append(("GET", f"/leaderboard?{query}", auth, None))
    out.append(("GET", "/leaderboard?model=b2b", {}, None))
    out.append(("GET", "/leaderboard?model=b2b", {"Authorization": "Bearer wrong"}, None))
    out.append(("GET", "/dashboard/data", {}, None))
    out.append(("GET", "/dashboard/data", {"Authorization": "Bearer wrong"}, None))
    for lead in ("%00", "x" * 300, "a%20b", "no-such-lead", "..%2F..%2Fetc", "💥"):
        out.append(("GET", f"/leads/{lead}", auth, None))
    out.append(("GET", "/leads/some-lead", {}, None))
    out.append(("GET", "/leads/some-lead", {"Authorization": "Bearer wrong"}, None))
    out.append(("GET", "/webhooks/mailchimp/" + "k" * 5000, {}, None))
    out.append(("GET", "/no/such/path", {}, None))
    out.append(("GET", "/collect/" + "%2e%2e/" * 20 + "etc/passwd", {}, None))
    return out


def _raw_http(port: int, data: bytes) -> bytes:
    """Send raw bytes to the web server and read its answer (shut the write side first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


RAW_REQUESTS = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /leaderboard HTTP/1.1\r\nHost: x\r\nNoColonHeader\r\n\r\n",
    b"GET /leaderboard HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n",
    b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n",
    b"POST /v1/track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b'POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{"short":',
    b"GET /" + b"p" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /leaderboard?" + b"a=1&" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
]


async def _abuse_http(worker: Any) -> None:
    rng = random.Random(43)
    timeout = ClientTimeout(total=20)
    answers: list[tuple[int, str, str]] = []
    async with ClientSession(timeout=timeout) as session:
        for method, path, headers, body in _requests(worker.token, rng):
            async with session.request(
                method, worker.base + path, headers=headers, data=body
            ) as response:
                content = await response.read()
                status = response.status
                if status == 202:  # a call that wrote nothing is answered with the reasons
                    answer = orjson.loads(content)
                    if not answer["accepted"] and answer["rejected"]:
                        status = 422
                answers.append((status, method, path[:80]))
        # random query strings and headers on every GET endpoint
        for _ in range(200):
            path = rng.choice(["/leaderboard", "/dashboard/data", "/leads/x"])
            junk = "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 300)))
            header = "".join(c for c in junk if c.isprintable())[:200]  # the client refuses CR/LF
            headers = {"Authorization": f"Bearer {worker.token}", "X-Junk": header}
            async with session.get(
                worker.base + path, params={"model": junk, "limit": junk}, headers=headers
            ) as response:
                await response.read()
                answers.append((response.status, "GET", path))
    server_errors = [a for a in answers if a[0] >= 500]
    assert not server_errors, server_errors[:20]
    # the bodies are track calls: `identify` and `page` ignore `event`, so some are valid there
    lenient = {"/v1/identify", "/v1/page"}
    not_refused = [a for a in answers if not 400 <= a[0] < 500 and a[2] not in lenient]
    assert not not_refused, not_refused[:20]
    port = int(worker.env["LEADSTREAM_WEB_PORT"])
    for raw in RAW_REQUESTS:
        reply = await asyncio.to_thread(_raw_http, port, raw)
        status_line = reply.split(b"\r\n", 1)[0]
        assert reply == b"" or status_line.split(b" ")[1][:1] == b"4", (raw[:60], status_line)
    async with (
        ClientSession(timeout=timeout) as session,
        session.get(worker.base + "/healthz") as response,
    ):
        assert response.status == 200
