"""RudderStack: the Segment-compatible calls its Webhook and HTTP destinations send.

RudderStack's event spec is Segment's (`track`, `identify`, `page`, `screen`, `group`, `alias`
with `userId`, `anonymousId`, `messageId`, `properties`, `traits`, `context`), so the calls are
read by `schemas.adapters.segment` (the same track events map to the same types), with
`source: rudderstack` and event ids `rudderstack:<messageId>`. Identify traits may be in
`context.traits`, where RudderStack's SDKs put them.

Three body shapes are read: one call (the Webhook destination sends one event per request), a
`{"batch": [...]}` of calls (RudderStack's own batch shape) and a bare JSON array of calls (the
HTTP destination with batching on). `where` in a rejection is `batch[<i>]` for the last two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.adapters import segment
from schemas.adapters.base import Conversion, convert_json_body

__all__ = ["SOURCE", "convert", "convert_body"]

SOURCE = "rudderstack"


def convert_body(body: bytes | str, *, received_at: datetime) -> Conversion:
    """Events from a raw RudderStack request body."""
    return convert_json_body(body, convert, received_at=received_at)


def convert(
    payload: Any, *, received_at: datetime, machine_ranges: Sequence[str] = ()
) -> Conversion:
    """Events from a parsed call, `{"batch": [...]}` or list of calls."""
    if isinstance(payload, list):
        payload = {"batch": payload}
    return segment.convert(
        payload, received_at=received_at, source=SOURCE, machine_ranges=machine_ranges
    )
