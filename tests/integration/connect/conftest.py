"""Fixtures of the connector tests: topics, a signature-checking receiver, connector processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from connect_kit import SECRET, ConnectorProcess
from standardwebhooks import Webhook

from stream.bench.receiver import Receiver
from stream.kafka import topics
from stream.kafka.admin import ensure_topics
from stream.settings import Settings


@pytest.fixture
def connector_settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(topic_partitions=4)


@pytest.fixture
async def ready_topics(connector_settings: Settings) -> Settings:
    await ensure_topics(connector_settings, [topics.STAGE_CHANGES, topics.CONNECTOR_DEAD_LETTERS])
    return connector_settings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that keeps only requests whose signature the standardwebhooks library
    verifies with the connectors' secret."""
    served = Receiver(verify=Webhook(SECRET).verify)
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
def connectors(ready_topics: Settings, tmp_path: Path) -> Iterator[Any]:
    """``launch(url, **env) -> ConnectorProcess`` (started); all stopped after the test."""
    launched: list[ConnectorProcess] = []

    def launch(url: str, **env: str) -> ConnectorProcess:
        process = ConnectorProcess(
            ready_topics, url, tmp_path / f"connector-{len(launched)}.log", **env
        )
        process.start()
        launched.append(process)
        return process

    yield launch
    for process in launched:
        process.stop()
