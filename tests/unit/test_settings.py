from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.app import create_app, faust_options
from stream.faust_guards.patches import FETCH_OPTIONS
from stream.settings import Settings


def test_reads_the_leadstream_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_KAFKA_BOOTSTRAP", "k1:9092, k2:9093")
    monkeypatch.setenv("LEADSTREAM_REDIS_URL", "redis://secret@cache:6379/1")
    monkeypatch.setenv("LEADSTREAM_TOPIC_PARTITIONS", "12")
    settings = Settings()
    assert settings.kafka_bootstrap == "k1:9092,k2:9093"
    assert settings.broker_url == "kafka://k1:9092;kafka://k2:9093"
    assert settings.topic_partitions == 12
    # secrets never show in reprs or logs
    assert "secret@cache" not in repr(settings)
    assert settings.redis_url.get_secret_value() == "redis://secret@cache:6379/1"


def test_is_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.app_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("bootstrap", ["", "kafka", "kafka:port", ":9092"])
def test_rejects_bootstrap_without_host_and_port(bootstrap: str) -> None:
    with pytest.raises(ValidationError, match="kafka_bootstrap"):
        Settings(kafka_bootstrap=bootstrap)


def test_topic_names_carry_the_prefix() -> None:
    assert Settings(topic_prefix="t1.").topic("leads.email.v1") == "t1.leads.email.v1"


def test_faust_options_are_explicit() -> None:
    options = faust_options(
        Settings(
            store="memory",
            standby_replicas=1,
            processing_guarantee="exactly_once",
            consumer_fetch_mb=4,
        )
    )
    assert options["consumer_max_fetch_size"] == 4 * 1024 * 1024
    assert options["store"] == "memory://"
    assert options["table_standby_replicas"] == 1
    assert options["processing_guarantee"] == "exactly_once"
    assert options["autodiscover"] is False
    # the web server listens only where it is told to (127.0.0.1 unless configured)
    assert options["web_bind"] == options["web_host"] == "127.0.0.1"


def test_the_worker_consumer_gets_the_fetch_batching_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    assert (
        defaults.consumer_fetch_min_kb,
        defaults.consumer_fetch_wait_ms,
        defaults.consumer_idle_wait_ms,
    ) == (64, 10, 100)
    monkeypatch.setenv("LEADSTREAM_CONSUMER_FETCH_WAIT_MS", "25")
    monkeypatch.setenv("LEADSTREAM_CONSUMER_FETCH_MIN_KB", "32")
    monkeypatch.setenv("LEADSTREAM_CONSUMER_IDLE_WAIT_MS", "0")
    app = create_app(Settings(web_enabled=False, projector_enabled=False))
    assert getattr(app, FETCH_OPTIONS) == (32 * 1024, 25, 0)


def test_the_advertised_url_is_fausts_canonical_url() -> None:
    settings = Settings(web_host="0.0.0.0", advertised_url="http://10.1.2.3:6066")
    assert faust_options(settings)["canonical_url"] == "http://10.1.2.3:6066"
    app = create_app(settings.model_copy(update={"web_enabled": False}))
    assert str(app.conf.canonical_url) == "http://10.1.2.3:6066"
    # unset: Faust's own default, from the web host and port
    assert "canonical_url" not in faust_options(Settings())


@pytest.mark.parametrize("url", ["10.1.2.3:6066", "http://", "http://host/path", "ftp://h:1"])
def test_an_advertised_url_must_be_a_web_server_address(url: str) -> None:
    with pytest.raises(ValidationError, match="advertised_url"):
        Settings(advertised_url=url)
