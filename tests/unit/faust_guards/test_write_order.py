"""Changelog writes wait for the records sent before them (stream.faust_guards.write_order)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stream.faust_guards.write_order import WriteOrder, hold_flush


def flushing_into(log: list[str]) -> Any:
    """A stand-in producer whose flush is logged."""

    class Producer:
        async def flush(self) -> None:
            log.append("flush")

    return Producer()


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_write_goes_at_once_when_nothing_sent_before_it_is_pending() -> None:
    order = WriteOrder()
    written: list[str] = []
    order.write(lambda: written.append("a"))
    assert written == ["a"]
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    order.track(done)
    done.set_result(None)
    await settle()
    order.write(lambda: written.append("b"))
    assert written == ["a", "b"]
    assert order.held == 0


async def test_writes_wait_for_every_record_sent_before_them_and_keep_their_order() -> None:
    loop = asyncio.get_running_loop()
    order = WriteOrder()
    written: list[str] = []
    first, second, third = (loop.create_future() for _ in range(3))
    order.track(first)
    order.write(lambda: written.append("after first"))
    order.track(second)
    order.track(third)
    order.write(lambda: written.append("after third"))
    # a later record delivered first releases nothing: the first one is still out
    third.set_result(None)
    await settle()
    assert written == []
    first.set_result(None)
    await settle()
    assert written == ["after first"]
    assert order.held == 1
    second.set_result(None)
    await settle()
    assert written == ["after first", "after third"]
    assert order.held == 0


async def test_a_write_made_while_others_are_held_waits_behind_them() -> None:
    loop = asyncio.get_running_loop()
    order = WriteOrder()
    written: list[int] = []
    record = loop.create_future()
    order.track(record)
    order.write(lambda: written.append(1))
    record.set_result(None)
    order.write(lambda: written.append(2))  # nothing undelivered, but 1 is not out yet
    assert written == []
    await settle()
    assert written == [1, 2]


async def test_drain_waits_until_no_write_is_held() -> None:
    loop = asyncio.get_running_loop()
    order = WriteOrder()
    written: list[int] = []
    record = loop.create_future()
    order.track(record)
    order.write(lambda: written.append(1))
    drain = asyncio.ensure_future(order.drain())
    await settle()
    assert not drain.done()
    record.set_result(None)
    await asyncio.wait_for(drain, 1)
    assert written == [1]


async def test_an_undelivered_record_keeps_later_writes_back_and_fails_the_flush() -> None:
    loop = asyncio.get_running_loop()
    failures: list[BaseException] = []
    order = WriteOrder(on_failure=failures.append)
    written: list[int] = []
    lost, fine = loop.create_future(), loop.create_future()
    order.track(lost)
    order.track(fine)
    order.write(lambda: written.append(1))
    fine.set_result(None)
    lost.set_exception(ConnectionError("broker gone"))
    await settle()
    assert written == []
    assert [type(f) for f in failures] == [ConnectionError]

    flushed: list[str] = []
    producer = flushing_into(flushed)
    hold_flush(producer, order)
    with pytest.raises(RuntimeError, match="held behind a record that was not delivered"):
        await producer.flush()
    assert flushed == []


async def test_flush_waits_for_held_writes_then_flushes() -> None:
    loop = asyncio.get_running_loop()
    order = WriteOrder()
    events: list[str] = []
    record = loop.create_future()
    order.track(record)
    order.write(lambda: events.append("write"))

    producer = flushing_into(events)
    hold_flush(producer, order)
    flush = asyncio.ensure_future(producer.flush())
    await settle()
    assert events == []
    record.set_result(None)
    await asyncio.wait_for(flush, 1)
    assert events == ["write", "flush"]


def test_nothing_to_track_in_a_test_context() -> None:
    order = WriteOrder()
    order.track(None)
    written: list[int] = []
    order.write(lambda: written.append(1))
    assert written == [1]
