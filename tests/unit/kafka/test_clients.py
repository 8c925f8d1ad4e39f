"""Kafka clients made from the settings: their options, and the error when no broker answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from stream.errors import InfrastructureError
from stream.kafka import clients
from stream.settings import Settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_options_come_from_the_settings() -> None:
    settings = Settings(kafka_bootstrap="10.0.0.1:9092, 10.0.0.2:9093", app_id="ls")
    assert clients.options(settings) == {
        "bootstrap_servers": ["10.0.0.1:9092", "10.0.0.2:9093"],
        "client_id": "ls",
    }
    assert clients.options(settings, "replay")["client_id"] == "ls-replay"


def test_overrides_win_and_are_kept() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9092", app_id="ls")
    built = clients.options(settings, "replay", client_id="mine", group_id=None, acks="all")
    assert built == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "client_id": "mine",
        "group_id": None,
        "acks": "all",
    }


def test_bootstrap_servers_alone_leave_the_client_id_to_aiokafka() -> None:
    assert clients.options("a:1,b:2", "sequence", group_id=None) == {
        "bootstrap_servers": ["a:1", "b:2"],
        "group_id": None,
    }
    assert clients.bootstrap_servers("a:1,b:2") == "a:1,b:2"


def test_each_kind_of_client_carries_its_options_and_name() -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:9092", app_id="ls")
    consumer = clients.consumer(settings, "t1", role="projector", group_id="g", isolation_level="x")
    assert consumer.kwargs == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "client_id": "ls-projector",
        "group_id": "g",
        "isolation_level": "x",
    }
    assert consumer.what == "consumer ls-projector"
    producer = clients.producer(settings, acks="all", linger_ms=5, enable_idempotence=True)
    assert producer.kwargs["acks"] == "all" and producer.kwargs["enable_idempotence"] is True
    assert producer.what == "producer ls"
    assert clients.admin("127.0.0.1:9092").what == "admin client"


async def test_nothing_listening_is_an_infrastructure_error_naming_the_servers() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    settings = Settings(kafka_bootstrap=bootstrap, app_id="ls")
    with pytest.raises(InfrastructureError) as raised:
        await clients.producer(settings, role="forget")
    message = str(raised.value)
    assert message.startswith(f"cannot reach Kafka at {bootstrap} (producer ls-forget): ")
    assert "KafkaConnectionError" in message
    assert isinstance(raised.value.__cause__, KafkaConnectionError)

    with pytest.raises(InfrastructureError, match=rf"cannot reach Kafka at {bootstrap} \(consumer"):
        async with clients.consumer(settings, "topic", group_id=None):
            pytest.fail("the block runs only with a started consumer")
    with pytest.raises(InfrastructureError, match=rf"cannot reach Kafka at {bootstrap} \(admin"):
        async with clients.admin(settings):
            pytest.fail("the block runs only with a started admin client")


async def test_start_or_raise_closes_the_client_it_could_not_start() -> None:
    bootstrap = f"127.0.0.1:{_closed_port()}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    with pytest.raises(InfrastructureError, match=rf"at {bootstrap} \(the reader\)"):
        await clients.start_or_raise(consumer, bootstrap, "the reader")
    assert consumer._closed is True  # noqa: SLF001 - aiokafka has no public "closed" flag


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a broker that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    for writer in held:
        writer.close()
    await server.wait_closed()


async def test_a_start_that_takes_too_long_is_an_infrastructure_error(silent_port: int) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{silent_port}")
    started = asyncio.get_running_loop().time()
    with pytest.raises(InfrastructureError, match=r"cannot reach Kafka at .*: TimeoutError"):
        await clients.consumer(settings, group_id=None, start_timeout=0.5)
    assert asyncio.get_running_loop().time() - started < 5
