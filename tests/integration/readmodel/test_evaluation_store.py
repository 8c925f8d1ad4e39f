"""Shadow scores and the live evaluation's outcome store, against the real Redis."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio
from sklearn.metrics import roc_auc_score

from schemas.examples import make_output
from schemas.outputs import ScoreUpdated
from schemas.stages import Stage
from stream.model_files import load_default_models
from stream.readmodel.evaluation import NEGATIVE, POSITIVE
from stream.readmodel.model import Erase, ReadModel

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OUTCOMES = sorted(POSITIVE | NEGATIVE)


def score(
    lead: str,
    revision: int,
    stage: Stage,
    total: float,
    *,
    model: str = "b2b",
    shadow: bool = False,
    outcome: str | None = None,
    event_id: str | None = None,
) -> ScoreUpdated:
    record = make_output(
        "score_updated",
        lead_id=lead,
        model=model,
        revision=revision,
        stage=stage,
        total=total,
        fit=10.0,
        engagement=total - 10.0,
        as_of=T0 + timedelta(minutes=revision),
        shadow=True if shadow else None,
        outcome=outcome,
        last_event_id=event_id or f"evt-{lead}-{revision}",
    )
    assert isinstance(record, ScoreUpdated)
    return record


@pytest.fixture
async def read_model(redis_url: str, unique: str) -> AsyncIterator[ReadModel]:
    client = redis.asyncio.Redis.from_url(redis_url)
    model = ReadModel(client, prefix=f"test-{unique}:rm", max_outcomes=100)
    yield model
    await model.clear()
    async for key in client.scan_iter(match=f"{model.eval_prefix}:*"):
        await client.delete(key)
    await model.close()


async def test_a_shadow_models_stage_is_never_counted(read_model: ReadModel) -> None:
    await read_model.apply(
        [
            score("a", 1, Stage.MQL, 60, model="next", shadow=True),
            score("b", 1, Stage.LEAD, 20, model="next", shadow=True),
            score("a", 1, Stage.MQL, 55),
        ]
    )
    assert await read_model.stage_counts("next") == {}
    assert await read_model.stage_counts("b2b") == {"mql": 1}
    assert await read_model.shadow_models() == ["next"]
    assert [r["lead_id"] for r in await read_model.leaderboard("next")] == ["a", "b"]
    assert await read_model.leaderboard("next", stage="mql") == []
    # erasing a shadow score takes nothing from a funnel it never had
    await read_model.apply([Erase(lead_id="b", model="next")])
    assert await read_model.stage_counts("next") == {}
    # promoted: the model's next records are live, and its leads count from then on
    await read_model.apply([score("a", 2, Stage.MQL, 61, model="next")])
    assert await read_model.stage_counts("next") == {"mql": 1}
    assert await read_model.shadow_models() == []
    await read_model.apply([score("a", 3, Stage.SQL, 90, model="next")])
    assert await read_model.stage_counts("next") == {"sql": 1}


async def test_outcome_scores_feed_the_evaluation(read_model: ReadModel) -> None:
    rng = random.Random(7)
    records = []
    for n in range(60):
        outcome = rng.choice(OUTCOMES)
        good = outcome in POSITIVE
        total = round(rng.gauss(60 if good else 40, 15), 1)
        records.append(score(f"l{n}", 5, Stage.MQL, total, outcome=outcome, event_id=f"o{n}"))
    applied = await read_model.apply(records)
    assert applied.changed == [1] * 60  # one result per record, whatever it queued
    models = load_default_models()
    (b2b,) = await read_model.evaluate(models, "b2b")
    labels = [1 if r.outcome in POSITIVE else 0 for r in records]
    assert b2b.auc == pytest.approx(roc_auc_score(labels, [r.total for r in records]), abs=1e-12)
    assert b2b.outcomes == 60 and b2b.positives == sum(labels)
    mql = models.get("b2b").stages.mql
    assert mql is not None
    at_mql = [lab for r, lab in zip(records, labels, strict=True) if r.total >= mql.promote_at]
    assert b2b.at_mql == len(at_mql)
    assert b2b.precision_at_mql == pytest.approx(sum(at_mql) / len(at_mql))

    # a replay changes nothing; an erasure forgets the lead's outcomes
    await read_model.apply(records[:10])
    await read_model.apply([Erase(lead_id="l0", model="b2b")])
    (again,) = await read_model.evaluate(models, "b2b")
    assert again.outcomes == 59


async def test_the_store_keeps_the_newest_outcomes(read_model: ReadModel) -> None:
    records = [
        score(f"l{n}", n + 1, Stage.MQL, 50.0, outcome="closed_won", event_id=f"o{n}")
        for n in range(130)
    ]
    await read_model.apply(records)
    pairs = await read_model.outcome_pairs("b2b")
    assert len(pairs) == 100
    assert {p.lead for p in pairs} == {f"l{n}" for n in range(30, 130)}
    # the dropped outcomes are gone from their leads' indexes too: erasing one removes nothing
    await read_model.apply([Erase(lead_id="l3", model="b2b")])
    assert len(await read_model.outcome_pairs("b2b")) == 100
