"""docker-compose.yml cannot run here, so a test keeps it honest against the settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service.get("environment", {}).items()}


def test_services_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "worker",
        "connector",
        "webhook-receiver",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    depends = services["worker"]["depends_on"]
    assert {name: dep["condition"] for name, dep in depends.items()} == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
    }
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / services["worker"]["build"]["dockerfile"]).exists()


def test_worker_env_vars_are_real_settings(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["worker"])
    fields = {f"LEADSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    settings = Settings(**{k.removeprefix("LEADSTREAM_").lower(): v for k, v in env.items()})
    assert settings.web_host == "0.0.0.0"


def test_the_connector_runs_a_webhook_connector_on_real_settings(compose: dict[str, Any]) -> None:
    from stream.cli import build_parser
    from stream.connect.webhook import parse_secret

    connector = compose["services"]["connector"]
    env = _env(connector)
    fields = {f"LEADSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    resolved = {k: re.sub(r"\$\{\w+:-(.*)\}", r"\1", v) for k, v in env.items()}
    settings = Settings(**{k.removeprefix("LEADSTREAM_").lower(): v for k, v in resolved.items()})
    assert (
        settings.kafka_bootstrap
        == _env(compose["services"]["worker"])["LEADSTREAM_KAFKA_BOOTSTRAP"]
    )
    assert settings.connect_webhook_secret is not None
    parse_secret(settings.connect_webhook_secret.get_secret_value())  # a valid whsec_ secret
    command = [re.sub(r"\$\{\w+:-(.*)\}", r"\1", part) for part in connector["command"]]
    args = build_parser().parse_args(command)
    assert (args.command, args.kind) == ("connect", "webhook")
    receiver = compose["services"]["webhook-receiver"]
    port = receiver["command"][receiver["command"].index("--port") + 1]
    assert args.url == f"http://webhook-receiver:{port}/hooks"
    metrics = env["LEADSTREAM_CONNECT_METRICS_PORT"]
    assert f"{metrics}:{metrics}" in connector["ports"]
    assert f":{metrics}/metrics" in " ".join(connector["healthcheck"]["test"])


def test_worker_reaches_kafka_on_an_advertised_listener(compose: dict[str, Any]) -> None:
    kafka = _env(compose["services"]["kafka"])
    bootstrap = _env(compose["services"]["worker"])["LEADSTREAM_KAFKA_BOOTSTRAP"]
    advertised = dict(
        re.match(r"(\w+)://(.+)", entry).groups()  # type: ignore[union-attr]
        for entry in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    internal = advertised[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert bootstrap == internal
    # the host-side listener is the one the settings' default points at
    assert advertised["HOST"] == "localhost:9092"
    assert Settings.model_fields["kafka_bootstrap"].default == "127.0.0.1:9092"
    assert "9092:9092" in compose["services"]["kafka"]["ports"]
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"


def test_kafka_image_matches_the_local_release(compose: dict[str, Any]) -> None:
    script = (ROOT / "deploy/local/kafka.sh").read_text()
    local = re.search(r'KAFKA_VERSION="\$\{LEADSTREAM_KAFKA_VERSION:-([\d.]+)\}"', script)
    assert local is not None
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{local.group(1)}"


def test_worker_reaches_redis_and_publishes_its_web_port(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["worker"])
    redis = urlparse(env["LEADSTREAM_REDIS_URL"])
    assert redis.hostname == "redis"
    assert f"{redis.port}:{redis.port}" in compose["services"]["redis"]["ports"]
    port = env["LEADSTREAM_WEB_PORT"]
    assert f"{port}:{port}" in compose["services"]["worker"]["ports"]
    assert f":{port}/healthz" in " ".join(compose["services"]["worker"]["healthcheck"]["test"])


def test_prometheus_scrapes_the_worker_and_connector_ports(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config = yaml.safe_load((ROOT / mounted["/etc/prometheus/prometheus.yml"]).read_text())
    port = _env(compose["services"]["worker"])["LEADSTREAM_WEB_PORT"]
    connector = _env(compose["services"]["connector"])["LEADSTREAM_CONNECT_METRICS_PORT"]
    worker_job, connector_job = config["scrape_configs"]
    assert worker_job["metrics_path"] == connector_job["metrics_path"] == "/metrics"
    assert worker_job["static_configs"][0]["targets"] == [f"worker:{port}"]
    assert connector_job["static_configs"][0]["targets"] == [f"connector:{connector}"]


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounted = {v.split(":")[1]: ROOT / v.split(":")[0] for v in grafana["volumes"]}
    provisioning = mounted["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/leadstream.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = [path for inside, path in mounted.items() if inside.startswith(folder + "/")]
    assert [p.name for p in dashboards] == ["leadstream-dashboard.json"]
    dashboard = json.loads(dashboards[0].read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_dashboard_queries_use_metrics_the_worker_and_connector_export() -> None:
    from stream.connect.telemetry import METRIC_NAMES as CONNECTOR_METRIC_NAMES
    from stream.metrics import METRIC_NAMES

    dashboard = json.loads((ROOT / "deploy/grafana/leadstream-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bleadstream_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries no Leadstream metric"
    known = METRIC_NAMES | CONNECTOR_METRIC_NAMES
    assert used <= known, f"unknown metrics: {used - known}"
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in (
        "events in",
        "dead letters",
        "stage changes",
        "latency",
        "lag",
        "table",
        "connector deliveries",
    ):
        assert topic in titles
