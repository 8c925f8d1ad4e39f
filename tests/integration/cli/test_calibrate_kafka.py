"""`leadstream calibrate --events kafka --outcomes crm` on the live history in the real broker.

A simulated history (with the CRM feedback sales gave) is produced to the source topics; the
proposal calibrated from the topics is the one calibrated from the same events in a file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas import codec
from stream.cli import main
from stream.kafka.admin import ensure_topics
from stream.model_files import load_model_file
from stream.settings import Settings
from stream.simulate import traffic as simulate

pytestmark = pytest.mark.integration


async def test_the_live_history_proposes_the_same_model_as_its_file(
    settings_factory: Callable[..., Settings],
    produce_events: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_factory()
    sim = simulate.generate(simulate.SimConfig(seed=5, leads=160, days=20))
    assert any(e.type == "sales_accepted" for e in sim.events)
    await ensure_topics(settings)
    await produce_events(settings, sim.events)
    log = tmp_path / "history.jsonl"
    log.write_bytes(b"".join(codec.encode(e) + b"\n" for e in sim.events))
    for name, value in (
        ("KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
        ("TOPIC_PREFIX", settings.topic_prefix),
        ("APP_ID", settings.app_id),
    ):
        monkeypatch.setenv(f"LEADSTREAM_{name}", value)

    proposals = {}
    for source in ("kafka", str(log)):
        out = tmp_path / f"{Path(source).name}.yaml"
        args = ["calibrate", "--events", source, "--outcomes", "crm", "--target", "sql",
                "--shadow", "b2b-next", "--out", str(out)]  # fmt: skip
        assert await asyncio.to_thread(main, args) == 0  # the command runs its own loop
        proposals[source] = out.read_text()
    printed = capsys.readouterr()
    assert "reading the source topics" in printed.err  # progress of the Kafka read
    assert "held-out AUC" in printed.out
    assert proposals["kafka"] == proposals[str(log)]
    assert load_model_file(tmp_path / "kafka.yaml").get("b2b-next").shadow
