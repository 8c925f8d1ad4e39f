"""The read API of a real worker process: leaderboard, readiness, metrics, OpenAPI, dashboard data.

Score and stage-change records are written to the worker's output topics, so the read model has
known contents whatever the scoring models say.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from schemas import codec
from schemas.examples import make_output
from schemas.stages import Stage
from stream import metrics
from stream.kafka import topics

pytestmark = pytest.mark.integration

FUNNEL = {Stage.LEAD: 6, Stage.MQL: 3, Stage.SQL: 1}
NOW = datetime.now(UTC)


def _records() -> list[tuple[str, bytes, bytes]]:
    out: list[tuple[str, bytes, bytes]] = []
    n = 0
    for stage, count in FUNNEL.items():
        for _ in range(count):
            lead = f"api-lead-{n:02d}"
            record = make_output(
                "score_updated",
                lead_id=lead,
                model="b2b",
                stage=stage,
                total=float(10 * n),
                fit=float(5 * n),
                engagement=float(5 * n),
                revision=1,
                as_of=NOW - timedelta(seconds=30),
            )
            out.append((topics.SCORES.name, codec.score_key(lead, "b2b"), codec.encode(record)))
            change = make_output(
                "stage_changed",
                lead_id=lead,
                model="b2b",
                from_stage=Stage.LEAD if stage != Stage.LEAD else None,
                to_stage=stage,
                occurred_at=NOW - timedelta(seconds=30),
            )
            out.append((topics.STAGE_CHANGES.name, lead.encode(), codec.encode(change)))
            n += 1
    for i, name in enumerate(("api-acme.com", "api-globex.com")):
        record = make_output("account_score_updated", account_id=name, score=100.0 + i)
        out.append((topics.ACCOUNT_SCORES.name, name.encode(), codec.encode(record)))
    change = make_output("account_stage_changed", account_id="api-acme.com")
    out.append((topics.ACCOUNT_STAGE_CHANGES.name, b"api-acme.com", codec.encode(change)))
    return out


@pytest.fixture(scope="module")
def worker(served_worker: Any) -> Any:
    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=served_worker.settings.kafka_bootstrap, acks="all"
        )
        await producer.start()
        try:
            for topic, key, value in _records():
                await producer.send(served_worker.settings.topic(topic), key=key, value=value)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    return served_worker


def call(worker: Any, path: str, token: str | None = "") -> tuple[int, bytes, Any]:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token or worker.token}"
    request = urllib.request.Request(worker.base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def wait_for_funnel(worker: Any) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 90
    expected = {stage.value: n for stage, n in FUNNEL.items()}
    while True:
        status, body, _ = call(worker, "/dashboard/data?model=b2b")
        data = json.loads(body) if status == 200 else {}
        if data.get("funnel", {}).get("b2b") == expected:
            return data
        if time.monotonic() > deadline:
            pytest.fail(f"funnel never became {expected}: {status} {body[:500]!r}")
        time.sleep(0.5)


def test_leaderboard(worker: Any) -> None:
    wait_for_funnel(worker)
    status, body, _ = call(worker, "/leaderboard?model=b2b&limit=3")
    assert status == 200, body
    data = json.loads(body)
    assert [lead["lead_id"] for lead in data["leads"]] == [
        "api-lead-09",
        "api-lead-08",
        "api-lead-07",
    ]
    assert data["leads"][0]["rank"] == 1 and data["leads"][0]["stage"] == "sql"
    status, body, _ = call(worker, "/leaderboard?model=b2b&stage=mql")
    assert {lead["stage"] for lead in json.loads(body)["leads"]} == {"mql"}
    assert len(json.loads(body)["leads"]) == 3
    status, body, _ = call(worker, "/leaderboard?model=b2b&limit=100000")
    assert status == 200 and json.loads(body)["limit"] == 1000


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("", 400, "bad_model"),
        ("?model=b2b&stage=nope", 400, "bad_stage"),
        ("?model=b2b&limit=0", 400, "bad_limit"),
        ("?model=b2b&limit=ten", 400, "bad_limit"),
        ("?model=unknown-model", 404, "unknown_model"),
    ],
)
def test_leaderboard_refuses_bad_parameters(
    worker: Any, query: str, status: int, error: str
) -> None:
    got, body, _ = call(worker, "/leaderboard" + query)
    assert (got, json.loads(body)["error"]) == (status, error)


def test_accounts(worker: Any) -> None:
    import time

    deadline = time.monotonic() + 90
    while True:
        status, body, _ = call(worker, "/accounts/api-acme.com")
        if status == 200 and json.loads(body)["stage_changes"]:
            break
        assert time.monotonic() < deadline, (status, body[:300])
        time.sleep(0.5)
    data = json.loads(body)
    assert data["account_id"] == "api-acme.com" and data["stage"] == "mqa"
    assert data["stage_changes"][0]["to_stage"] == "mqa"
    status, body, _ = call(worker, "/accounts?limit=100")
    assert status == 200
    names = [a["account_id"] for a in json.loads(body)["accounts"]]
    assert names.index("api-globex.com") < names.index("api-acme.com")  # 101 before 100
    status, body, _ = call(worker, "/accounts/nobody.example")
    assert (status, json.loads(body)["error"]) == (404, "unknown_account")
    status, body, _ = call(worker, "/accounts?limit=0")
    assert (status, json.loads(body)["error"]) == (400, "bad_limit")
    _, body, _ = call(worker, "/dashboard/data?model=b2b")
    top = [a["account_id"] for a in json.loads(body)["top_accounts"]]
    assert {"api-acme.com", "api-globex.com"} <= set(top)


@pytest.mark.parametrize(
    "path", ["/leaderboard?model=b2b", "/dashboard/data", "/accounts", "/accounts/acme.com"]
)
def test_read_endpoints_need_a_token(worker: Any, path: str) -> None:
    status, body, headers = call(worker, path, token=None)
    assert status == 401 and json.loads(body)["error"] == "missing_token"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = call(worker, path, token="not-the-token")
    assert status == 403 and json.loads(body)["error"] == "invalid_token"
    assert b"not-the-token" not in worker.log.read_bytes()


def test_probes_metrics_and_documents_are_open(worker: Any) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.yaml", "/dashboard"):
        status, _, _ = call(worker, path, token=None)
        assert status == 200, path
    wait_for_funnel(worker)
    _, body, headers = call(worker, "/metrics", token=None)
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    # at least this module's three (the session's worker serves other modules' tests too)
    mql = 'leadstream_stage_changes_total{from_stage="lead",model="b2b",to_stage="mql"} '
    (line,) = [line for line in text.splitlines() if line.startswith(mql)]
    assert float(line.removeprefix(mql)) >= 3.0
    for name in ("leadstream_consumer_lag_messages", "leadstream_projector_lag_messages"):
        assert name in text
    assert {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"} <= (
        metrics.METRIC_NAMES | {"python_gc_objects_collected_total"}
    )
    _, body, _ = call(worker, "/openapi.yaml", token=None)
    assert yaml.safe_load(body)["openapi"].startswith("3.")


def test_dashboard_data(worker: Any) -> None:
    data = wait_for_funnel(worker)
    assert data["models"] == ["b2b"]
    assert [lead["lead_id"] for lead in data["top"]][:2] == ["api-lead-09", "api-lead-08"]
    assert sum(bucket["count"] for bucket in data["distribution"]) == sum(FUNNEL.values())
    assert sum(m["count"] for m in data["changes_per_minute"]) == sum(FUNNEL.values())
    assert set(data["messages_in"]) == {spec.name for spec in topics.SOURCES}
    assert set(data["machine_events"]) == {"marked", "skipped"}
    assert data["transitions"] == {"none>lead": 6, "lead>mql": 3, "lead>sql": 1}
