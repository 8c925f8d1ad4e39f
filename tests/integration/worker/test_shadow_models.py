"""A shadow model and the live evaluation through a real worker, Kafka and Redis.

A worker runs the default models plus `b2b-next`, a shadow copy of `b2b` with other points. A
small simulated history (profiles and activity of 36 leads, then one CRM outcome each, more
often good for the more active) goes through it. Checked: the shadow model's scores are on
`leads.scores.v1` marked `shadow`, no stage change of it is published, the read model gives it
no funnel; and every model's AUC on `/metrics`, the dashboard and `leadstream models evaluate`
equals sklearn's `roc_auc_score` on the pairs (outcome, score at the outcome) computed offline
by the scoring core from the same events.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import yaml
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import roc_auc_score

from schemas import codec
from schemas.events import EventBase, Traits
from schemas.examples import make_event
from schemas.outputs import ScoreUpdated, StageChanged
from stream.readmodel.evaluation import POSITIVE
from stream.readmodel.model import ReadModel
from stream.scoring import ModelSet, apply_all, parse_models, score_at

pytestmark = pytest.mark.integration

LEADS = 36


def model_file(path: Path) -> ModelSet:
    """The default models and `b2b-next`: b2b in shadow, webinars and pricing worth more."""
    doc = yaml.safe_load(
        resources.files("stream.scoring").joinpath("default_models.yaml").read_text()
    )
    b2b = next(m for m in doc["models"] if m["id"] == "b2b")
    challenger = {**yaml.safe_load(yaml.safe_dump(b2b)), "id": "b2b-next", "shadow": True}
    challenger["version"] = "2025-06-01.next"
    points = {"webinar": 20, "pricing_page": 15, "visit": 1}
    for rule in challenger["engagement"]:
        rule["points"] = points.get(rule["id"], rule["points"])
    doc["models"].append(challenger)
    for model in doc["models"]:  # every applied event is published: the test sees it scored
        model.setdefault("outputs", {})["min_change"] = 0
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    return parse_models(text, source=str(path))


def history(now: datetime) -> tuple[list[EventBase], list[EventBase]]:
    """(profiles and activity, one outcome per lead), seeded."""
    rng = random.Random(20)
    start = now - timedelta(days=4)
    activity: list[EventBase] = []
    outcomes: list[EventBase] = []
    for n in range(LEADS):
        lead = f"lead-{n:03d}"
        at = start + timedelta(minutes=n)
        traits = Traits(
            industry=rng.choice(["software", "retail", "saas"]),
            company_size=rng.choice([10, 80, 400]),
            age=rng.randint(24, 50),
        )
        activity.append(
            make_event(
                "profile_updated",
                event_id=f"p-{lead}",
                lead_id=lead,
                occurred_at=at,
                traits=traits,
                anonymous_id=None,
            )
        )
        interest = rng.random()
        for k in range(int(interest * 6)):
            day = at + timedelta(days=1 + k * 0.4)
            if rng.random() < 0.5:
                activity.append(
                    make_event(
                        "webinar_attended",
                        event_id=f"w{k}-{lead}",
                        lead_id=lead,
                        occurred_at=day,
                        anonymous_id=None,
                    )
                )
            else:
                path = rng.choice(["/pricing", "/features"])
                activity.append(
                    make_event(
                        "page_viewed",
                        event_id=f"v{k}-{lead}",
                        lead_id=lead,
                        occurred_at=day,
                        anonymous_id=None,
                        path=path,
                        url=f"https://acme.example{path}",
                    )
                )
        good = rng.random() < 0.15 + 0.7 * interest
        kind = rng.choice(
            ["sales_accepted", "closed_won"]
            if good
            else ["sales_rejected", "closed_lost", "disqualified"]
        )
        extra = {"reason": "no budget"} if kind == "sales_rejected" else {}
        outcomes.append(
            make_event(
                kind,
                event_id=f"o-{lead}",
                lead_id=lead,
                occurred_at=now - timedelta(hours=1) + timedelta(seconds=n),
                **extra,
            )
        )
    return activity, outcomes


def expected_pairs(
    models: ModelSet, activity: list[EventBase], outcomes: list[EventBase]
) -> dict[str, list[tuple[float, int]]]:
    """Per model, (score at the outcome, label) computed offline by the scoring core."""
    by_lead: dict[str, list[EventBase]] = defaultdict(list)
    for event in activity:
        by_lead[str(event.lead_id)].append(event)
    pairs: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for outcome in outcomes:
        state = None
        for event in sorted(by_lead[str(outcome.lead_id)], key=lambda e: e.occurred_at):
            state = apply_all(state, event, models=models).state
        assert state is not None
        for model_id in models.ids:
            total = score_at(state.models[model_id], outcome.occurred_at).total
            pairs[model_id].append((round(total, 4), int(outcome.type in POSITIVE)))
    return pairs


def get(worker: Any, path: str) -> bytes:
    request = urllib.request.Request(
        worker.base + path, headers={"Authorization": f"Bearer {worker.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: bytes = answer.read()
        return body


async def wait_for(
    check: Any, what: str, worker: Any, detail: object = None, timeout: float = 90
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            log = worker.log.read_text()[-3000:]
            pytest.fail(f"timed out waiting for {what}: {str(detail)[:1500]}\n{log}")
        await asyncio.sleep(0.5)


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return values
            values += [r.value for records in batch.values() for r in records if r.value]
    finally:
        await consumer.stop()


async def test_a_shadow_model_is_scored_never_moves_stages_and_is_evaluated_live(
    worker_launcher: Any, produce_events: Any, redis_url: str, tmp_path: Path
) -> None:
    models_path = tmp_path / "models.yaml"
    models = model_file(models_path)
    worker = worker_launcher()
    worker.env["LEADSTREAM_MODELS_PATH"] = str(models_path)
    worker.start()
    settings = worker.settings
    activity, outcomes = history(datetime.now(UTC))
    read_model = ReadModel(redis.asyncio.Redis.from_url(redis_url), prefix=f"{settings.app_id}:rm")
    try:
        await produce_events(settings, activity)
        last = {str(e.lead_id): e.occurred_at for e in activity}

        missing: list[object] = []

        async def scored_everything() -> bool:  # the outcomes come after every lead's activity
            missing.clear()
            for lead, at in last.items():
                for model_id in models.ids:
                    row = await read_model.score(model_id, lead)
                    if row is None or datetime.fromisoformat(row["as_of"]) < at:
                        missing.append((lead, model_id, at, row and row["as_of"]))
            return not missing

        await wait_for(scored_everything, "the activity to be scored", worker, missing)
        await produce_events(settings, outcomes)

        async def evaluated() -> Any:
            found = await read_model.evaluate(models)
            return found if all(item.outcomes == LEADS for item in found) else None

        evaluation = {
            item.model: item for item in await wait_for(evaluated, "the evaluation", worker)
        }
        want = expected_pairs(models, activity, outcomes)
        for model_id, pairs in want.items():
            labels = [label for _, label in pairs]
            expected = roc_auc_score(labels, [total for total, _ in pairs])
            assert evaluation[model_id].auc == pytest.approx(expected, abs=1e-9), model_id
        assert evaluation["b2b-next"].shadow is True and evaluation["b2b"].shadow is False
        assert 0 < sum(want["b2b"][i][1] for i in range(LEADS)) < LEADS  # both labels

        # the shadow model: published with its id and marked, never a stage change
        scores = [
            codec.decode_score(v)
            for v in await read_topic(settings.kafka_bootstrap, settings.topic("leads.scores.v1"))
        ]
        shadow = [s for s in scores if isinstance(s, ScoreUpdated) and s.model == "b2b-next"]
        assert shadow and all(s.shadow is True for s in shadow)
        assert {s.outcome for s in shadow if s.outcome} == {o.type for o in outcomes}
        changes = [
            codec.decode_stage_change(v)
            for v in await read_topic(
                settings.kafka_bootstrap, settings.topic("leads.stage-changes.v1")
            )
        ]
        moved = {c.model for c in changes if isinstance(c, StageChanged)}
        assert "b2b" in moved and "b2b-next" not in moved
        assert await read_model.stage_counts("b2b-next") == {}
        assert sum((await read_model.stage_counts("b2b")).values()) == LEADS

        # the same figures on /metrics, the dashboard and the command line
        families = text_string_to_metric_families(get(worker, "/metrics").decode())
        aucs = {
            sample.labels["model"]: (sample.value, sample.labels["shadow"])
            for family in families
            if family.name == "leadstream_model_auc"
            for sample in family.samples
        }
        assert aucs["b2b-next"] == (pytest.approx(evaluation["b2b-next"].auc), "true")
        assert aucs["b2b"] == (pytest.approx(evaluation["b2b"].auc), "false")
        data = json.loads(get(worker, "/dashboard/data?model=b2b"))
        assert data["shadow_models"] == ["b2b-next"]
        assert {m["model"]: m["auc"] for m in data["evaluation"]} == pytest.approx(
            {m: e.auc for m, e in evaluation.items()}
        )
        answer = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "stream.cli",
                "models",
                "evaluate",
                "--model",
                "b2b-next",
                "--format",
                "json",
            ],
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (row,) = json.loads(answer.stdout)["models"]
        assert row["auc"] == pytest.approx(evaluation["b2b-next"].auc)
        assert row["outcomes"] == LEADS and row["shadow"] is True
    finally:
        await read_model.close()
