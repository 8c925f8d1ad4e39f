"""Test factories: `make_settings` gives a test its own valid worker settings.

``tests/conftest.py`` loads this file as the module ``factories`` (the suite imports test files
with ``--import-mode=importlib``, so the tests directory is not on the path): test modules
``from factories import make_settings``. Integration tests use the ``settings_factory`` fixture,
which adds the broker (and Redis) the run uses.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from stream.settings import Settings

__all__ = ["make_settings"]


def make_settings(tmp: Path | None = None, /, **overrides: Any) -> Settings:
    """Settings of a worker under test with `overrides` applied (validated).

    Each call has its own app id (consumer group, table names) and topic prefix, so tests share
    no topics or groups; 2 partitions; the web server off. Given a test's `tmp` directory, the
    tables are RocksDB under ``tmp/data``; without one, in memory (nothing is written outside a
    test's directory). The broker and Redis are the environment's (``LEADSTREAM_KAFKA_BOOTSTRAP``,
    ``LEADSTREAM_REDIS_URL``) unless overridden: `make_settings(tmp, topic_partitions=4)`.
    """
    unique = uuid.uuid4().hex[:10]
    defaults: dict[str, Any] = {
        "app_id": f"ls-test-{unique}",
        "topic_prefix": f"t{unique}.",
        "topic_partitions": 2,
        "web_enabled": False,
    }
    if tmp is None:
        defaults["store"] = "memory"
    else:
        defaults.update(store="rocksdb", data_dir=tmp / "data")
    return Settings(**{**defaults, **overrides})
