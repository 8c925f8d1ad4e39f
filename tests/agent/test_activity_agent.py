"""The activity counter in Faust's test context (memory store, no broker)."""

from __future__ import annotations

import base64
from pathlib import Path
from unittest.mock import AsyncMock

import faust
import orjson
import pytest

from stream import activity
from stream.app import faust_options
from stream.settings import Settings


@pytest.fixture
def counter(tmp_path: Path) -> activity.ActivityCounter:
    settings = Settings(store="memory", data_dir=tmp_path, web_enabled=False)
    return activity.register(faust.App(**faust_options(settings)), settings)


def _event(lead_id: str, n: int) -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "type": "page_viewed", "lead_id": lead_id})


async def test_counts_events_per_lead_and_publishes_the_count(
    counter: activity.ActivityCounter,
) -> None:
    table = counter.table
    send = counter.counts_topic.send = AsyncMock()
    async with counter.agent.test_context() as ctx:
        for n, lead in enumerate(["a", "b", "a", "a"]):
            await ctx.put(key=lead.encode(), value=_event(lead, n))
    assert table["a"] == 3
    assert table["b"] == 1
    published = [orjson.loads(call.kwargs["value"]) for call in send.await_args_list]
    assert published == [
        {"lead_id": "a", "events": 1},
        {"lead_id": "b", "events": 1},
        {"lead_id": "a", "events": 2},
        {"lead_id": "a", "events": 3},
    ]
    assert [call.kwargs["key"] for call in send.await_args_list] == [b"a", b"b", b"a", b"a"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "page_viewed"}', "no lead_id"),
    ],
)
async def test_bad_messages_become_dead_letters_and_the_agent_goes_on(
    counter: activity.ActivityCounter, raw: bytes, reason: str
) -> None:
    dead = counter.dead_letter_topic.send = AsyncMock()
    counter.counts_topic.send = AsyncMock()
    async with counter.agent.test_context() as ctx:
        await ctx.put(key=b"x", value=raw)
        await ctx.put(key=b"ok", value=_event("ok", 1))
    assert dead.await_count == 1
    letter = orjson.loads(dead.await_args.kwargs["value"])
    assert reason in letter["message"]
    assert base64.b64decode(letter["original_base64"]) == raw
    assert counter.table["ok"] == 1
