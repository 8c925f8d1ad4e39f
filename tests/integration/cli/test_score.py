"""`leadstream score` against a real worker: a table scores as the worker scores its rows' events.

A model is calibrated on a small synthetic history (a text column with blanks, a number with
placeholders, a count); a worker runs the model file; the rows' events (the README's mapping) go
to Kafka; every lead's live score (`GET /leads/{id}`) ends up exactly what `leadstream score`
wrote for the same rows: total, fit, engagement, grade and stage.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import ClientSession

from stream.calibrate.rows import lead_events, model_inputs
from stream.calibrate.run import calibrate
from stream.calibrate.scorecard import Options
from stream.calibrate.table import prepare
from stream.cli import main
from stream.model_files import load_model_file

pytestmark = pytest.mark.integration

LEADS = 40


def _history(n: int = 1200, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "team", "", "N/A"], size=n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    seats = rng.lognormal(2, 1, n).round().astype(object)
    seats[rng.random(n) < 0.1] = "unknown"
    visits = rng.poisson(3, n)
    logit = -2 + 1.0 * (plan == "team") + 0.4 * (plan == "pro") + 0.3 * np.minimum(visits, 5)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {"plan": plan, "seats": seats, "visits": visits,
         "converted": np.where(converted, "yes", "no")}
    )  # fmt: skip


async def test_a_worker_scores_a_tables_rows_as_leadstream_score_does(
    worker_launcher: Any,
    produce_events: Any,
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = _history()
    result = calibrate(prepare(history, target="converted"), options=Options(folds=0))
    model_path = tmp_path / "calibrated.yaml"
    model_path.write_text(result.yaml_text, encoding="utf-8")
    rows = history.head(LEADS).assign(lead_id=[f"{unique}-{n}" for n in range(LEADS)])
    table = tmp_path / "rows.csv"
    rows.to_csv(table, index=False)

    args = ["score", str(table), "--models", str(model_path), "--lead-column", "lead_id",
            "--format", "json"]  # fmt: skip
    assert main(args) == 0
    expected = {lead["lead_id"]: lead for lead in json.loads(capsys.readouterr().out)}

    worker = worker_launcher()
    worker.env["LEADSTREAM_MODELS_PATH"] = str(model_path)
    worker.start()
    model = load_model_file(model_path).get("calibrated")
    inputs = model_inputs(model, rows.drop(columns=["lead_id"])).inputs
    events = [
        event
        for n, row in enumerate(rows.to_dict("records"))
        for event in lead_events(row["lead_id"], row, inputs, ref=f"{unique}.r{n}")
    ]
    await produce_events(worker.settings, events)

    auth = {"Authorization": f"Bearer {worker.token}"}
    live: dict[str, dict[str, Any]] = {}
    async with ClientSession() as http:
        for _ in range(240):
            for lead_id in expected:
                async with http.get(f"{worker.base}/leads/{lead_id}", headers=auth) as answer:
                    if answer.status == 200:
                        body = await answer.json()
                        live[lead_id] = next(
                            m for m in body["models"] if m["model"] == "calibrated"
                        )
            if len(live) == len(expected) and all(
                _same(live[lead], expected[lead]) for lead in expected
            ):
                break
            await asyncio.sleep(0.5)
    assert set(live) == set(expected)
    for lead_id, lead in expected.items():
        assert _same(live[lead_id], lead), (lead_id, live[lead_id], lead)


def _same(live: dict[str, Any], scored: dict[str, Any]) -> bool:
    return all(live[name] == scored[name] for name in ("total", "fit", "engagement", "grade",
                                                       "stage"))  # fmt: skip
