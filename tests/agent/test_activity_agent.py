"""The activity counter in Faust's test context (memory store, no broker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import faust
import orjson
import pytest

from schemas import codec
from schemas.errors import ErrorKind
from schemas.examples import make_event
from stream import activity
from stream.app import faust_options
from stream.settings import Settings


@pytest.fixture
def counter(tmp_path: Path) -> activity.ActivityCounter:
    settings = Settings(store="memory", data_dir=tmp_path, web_enabled=False)
    return activity.register(faust.App(**faust_options(settings)), settings)


def _from_topic(ctx: Any, topic: str) -> None:
    """Make the test context's messages look as if they came from ``topic``.

    (With several source topics, Faust's test context labels messages ``<internal>``.)
    """
    to_message = ctx.to_message

    def relabelled(*args: Any, **kwargs: Any) -> Any:
        message = to_message(*args, **kwargs)
        message.topic = topic
        return message

    ctx.to_message = relabelled


def _event(lead_id: str, n: int) -> bytes:
    return codec.encode(make_event("page_viewed", event_id=f"e{n}", lead_id=lead_id))


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
        (b"\xff not json", ErrorKind.NOT_JSON),
        (b"[1, 2]", ErrorKind.NOT_OBJECT),
        (b'{"type": "page_viewed"}', ErrorKind.SCHEMA_VIOLATION),
        (b'{"type": "teleported", "lead_id": "x"}', ErrorKind.UNKNOWN_TYPE),
    ],
)
async def test_bad_messages_become_dead_letters_and_the_agent_goes_on(
    counter: activity.ActivityCounter, raw: bytes, reason: ErrorKind
) -> None:
    dead = counter.dead_letter_topic.send = AsyncMock()
    counter.counts_topic.send = AsyncMock()
    async with counter.agent.test_context() as ctx:
        _from_topic(ctx, "leads.clickstream.v1")
        await ctx.put(key=b"x", value=raw)
        await ctx.put(key=b"ok", value=_event("ok", 1))
    assert dead.await_count == 1
    letter = codec.decode_dead_letter(dead.await_args.kwargs["value"])
    assert letter.error_kind == reason
    assert letter.original == raw
    assert letter.original_key == b"x"
    assert letter.message
    assert letter.source_topic == "leads.clickstream.v1"
    assert counter.table["ok"] == 1
