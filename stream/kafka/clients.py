"""Making and starting Kafka clients (producer, consumer, admin) from the settings.

Every client Leadstream opens outside Faust comes from here: the connection options (bootstrap
servers, client id) are read from `Settings` in one place, and a client that cannot start
raises `InfrastructureError` naming the bootstrap servers. Each call site passes only what is
its own (group id, offset reset, isolation level, fetch sizes, linger, acks, ...) as keyword
arguments of the aiokafka client.

    async with clients.producer(settings, acks="all") as producer:   # stopped at the end
        await clients.send_batch(producer, records)
    consumer = await clients.consumer(settings, topic, group_id=None)  # the caller stops it
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from stream.errors import InfrastructureError
from stream.settings import Settings

__all__ = [
    "SEND_WINDOW",
    "Kafka",
    "Record",
    "Starting",
    "admin",
    "bootstrap_servers",
    "close",
    "consumer",
    "options",
    "producer",
    "send_batch",
    "start_or_raise",
]


class _Startable(Protocol):
    def start(self) -> Awaitable[Any]: ...


Client = TypeVar("Client", bound=_Startable)

Kafka = Settings | str
"""Where to connect: the settings, or only the bootstrap servers (``host:port,...``) where no
settings are at hand."""

Record = tuple[str, bytes | None, bytes | None]
"""One record to send: topic, key, value."""

SEND_WINDOW = 2_000
"""Records `send_batch` sends before it awaits their deliveries together."""


def bootstrap_servers(kafka: Kafka) -> str:
    """The bootstrap servers, comma-separated."""
    return kafka.kafka_bootstrap if isinstance(kafka, Settings) else kafka


def options(kafka: Kafka, role: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of an aiokafka client: the connection, then `overrides`.

    The client id is ``{app_id}-{role}`` (the app id alone without a role), so the broker's
    logs and quotas name the Leadstream process; with bootstrap servers alone it is aiokafka's
    default. An override wins over both.
    """
    built: dict[str, Any] = {"bootstrap_servers": bootstrap_servers(kafka).split(",")}
    if isinstance(kafka, Settings):
        built["client_id"] = f"{kafka.app_id}-{role}" if role else kafka.app_id
    return built | overrides


async def close(client: Any) -> None:
    """Stop a producer or consumer, close an admin client (a closed one is left as it is)."""
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()


def _reason(exc: BaseException) -> str:
    """The exception's type and message (Kafka's errors carry their type in their message)."""
    text, name = str(exc), type(exc).__name__
    if text.startswith(name):
        return text
    return f"{name}: {text}" if text else name


async def start_or_raise(
    client: Client, kafka: Kafka, what: str = "client", *, start_timeout: float | None = None
) -> Client:
    """Start `client` (within `start_timeout` seconds, when given) and return it.

    When it cannot start it is closed and `InfrastructureError` is raised, naming the bootstrap
    servers and `what` (the client, in the message).
    """
    servers = bootstrap_servers(kafka)
    try:
        await asyncio.wait_for(client.start(), start_timeout)
    except (KafkaConnectionError, OSError, TimeoutError) as exc:
        await close(client)
        raise InfrastructureError(
            f"cannot reach Kafka at {servers} ({what}): {_reason(exc)}"
        ) from exc
    except KafkaError as exc:
        await close(client)
        raise InfrastructureError(
            f"Kafka at {servers} did not start the {what}: {_reason(exc)}"
        ) from exc
    except BaseException:
        await close(client)
        raise
    return client


class Starting(Generic[Client]):
    """A client about to start: ``await`` it for the started client, which the caller stops
    (`close`), or use it as ``async with`` to have it stopped at the end of the block."""

    def __init__(
        self,
        make: Callable[..., Client],
        kafka: Kafka,
        *args: str,
        kind: str,
        kwargs: dict[str, Any],
        start_timeout: float | None,
    ) -> None:
        self._make = make
        self._kafka = kafka
        self._args = args
        self.kwargs = kwargs
        """The keyword arguments the client is made with."""
        client_id = kwargs.get("client_id")
        self.what = f"{kind} {client_id}" if client_id else kind
        """How error messages name the client."""
        self._start_timeout = start_timeout
        self._client: Client | None = None

    async def _start(self) -> Client:
        # aiokafka clients bind to the running event loop when they are made
        client = self._make(*self._args, **self.kwargs)
        return await start_or_raise(
            client, self._kafka, self.what, start_timeout=self._start_timeout
        )

    def __await__(self) -> Generator[Any, None, Client]:
        return self._start().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._start()
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await close(client)


def producer(
    kafka: Kafka, *, role: str | None = None, start_timeout: float | None = None, **overrides: Any
) -> Starting[AIOKafkaProducer]:
    """A producer (`overrides`: aiokafka's producer options, e.g. ``acks``, ``linger_ms``)."""
    kwargs = options(kafka, role, **overrides)
    return Starting(
        AIOKafkaProducer, kafka, kind="producer", kwargs=kwargs, start_timeout=start_timeout
    )


def consumer(
    kafka: Kafka,
    *topics: str,
    role: str | None = None,
    start_timeout: float | None = None,
    **overrides: Any,
) -> Starting[AIOKafkaConsumer]:
    """A consumer subscribed to `topics` (none: the caller assigns partitions); `overrides`:
    aiokafka's consumer options, e.g. ``group_id``, ``auto_offset_reset``."""
    kwargs = options(kafka, role, **overrides)
    return Starting(
        AIOKafkaConsumer,
        kafka,
        *topics,
        kind="consumer",
        kwargs=kwargs,
        start_timeout=start_timeout,
    )


def admin(
    kafka: Kafka, *, role: str | None = None, start_timeout: float | None = None, **overrides: Any
) -> Starting[AIOKafkaAdminClient]:
    """An admin client (`overrides`: aiokafka's admin options, e.g. ``request_timeout_ms``)."""
    kwargs = options(kafka, role, **overrides)
    return Starting(
        AIOKafkaAdminClient, kafka, kind="admin client", kwargs=kwargs, start_timeout=start_timeout
    )


async def _each(records: Iterable[Record] | AsyncIterable[Record]) -> AsyncIterator[Record]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record


async def send_batch(
    producer: AIOKafkaProducer,
    records: Iterable[Record] | AsyncIterable[Record],
    *,
    window: int = SEND_WINDOW,
    progress: Callable[[int], None] | None = None,
    progress_every: float = 1.0,
) -> int:
    """Send `records` in order and wait until the broker has them all; returns how many.

    Sends are not awaited one at a time: their deliveries are awaited together every `window`
    records (which bounds what is held unacknowledged) and at the end. A failed delivery raises
    its `KafkaError`. `records` may be asynchronous (to pace them). `progress` is called with
    the number sent about every `progress_every` seconds, and once when all are delivered.
    """
    loop = asyncio.get_running_loop()
    last_report = loop.time()
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    async for topic, key, value in _each(records):
        pending.append(await producer.send(topic, key=key, value=value))
        sent += 1
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
        if progress is not None and loop.time() - last_report >= progress_every:
            last_report = loop.time()
            progress(sent)
    await asyncio.gather(*pending)
    if progress is not None:
        progress(sent)
    return sent
