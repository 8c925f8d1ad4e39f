"""Where Kafka and Redis come from: external, testcontainers or the local scripts."""

from __future__ import annotations

import pytest

from stream.dev.infra import InfraPlan, local_endpoints, plan_infra
from stream.errors import ConfigurationError

KAFKA = {"LEADSTREAM_KAFKA_BOOTSTRAP": "broker:9092"}
REDIS = {"LEADSTREAM_REDIS_URL": "redis://cache:6379/0"}


@pytest.mark.parametrize(
    ("env", "docker", "for_tests", "expected"),
    [
        # configured services are used as they are, whatever else is there
        ({**KAFKA, **REDIS}, True, True, InfraPlan("external", "external")),
        ({**KAFKA, **REDIS}, False, False, InfraPlan("external", "external")),
        # nothing configured: tests prefer Docker when an engine answers...
        ({}, True, True, InfraPlan("docker", "docker")),
        # ...and fall back to the local scripts without one
        ({}, False, True, InfraPlan("local", "local")),
        # the demo never uses testcontainers
        ({}, True, False, InfraPlan("local", "local")),
        # mixed: one configured, the other started
        (KAFKA, False, True, InfraPlan("external", "local")),
        (REDIS, True, True, InfraPlan("docker", "external")),
        # a forced choice wins over the Docker probe
        ({"LEADSTREAM_INFRA": "local"}, True, True, InfraPlan("local", "local")),
        ({"LEADSTREAM_INFRA": "docker", **KAFKA}, True, True, InfraPlan("external", "docker")),
        # blank values count as unset
        ({"LEADSTREAM_KAFKA_BOOTSTRAP": "  "}, False, True, InfraPlan("local", "local")),
    ],
)
def test_plan(env: dict[str, str], docker: bool, for_tests: bool, expected: InfraPlan) -> None:
    assert plan_infra(env, docker_reachable=docker, for_tests=for_tests) == expected


def test_forcing_docker_without_an_engine_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="no Docker engine"):
        plan_infra({"LEADSTREAM_INFRA": "docker"}, docker_reachable=False, for_tests=True)


def test_unknown_forced_choice_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="'local' or 'docker'"):
        plan_infra({"LEADSTREAM_INFRA": "k8s"}, docker_reachable=True, for_tests=True)


def test_local_endpoints_follow_the_port_settings() -> None:
    assert local_endpoints({}) == {
        "LEADSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "LEADSTREAM_REDIS_URL": "redis://127.0.0.1:16379/0",
    }
    ports = {"LEADSTREAM_LOCAL_KAFKA_PORT": "29092", "LEADSTREAM_LOCAL_REDIS_PORT": "26379"}
    assert local_endpoints(ports)["LEADSTREAM_KAFKA_BOOTSTRAP"] == "127.0.0.1:29092"
    assert local_endpoints(ports)["LEADSTREAM_REDIS_URL"] == "redis://127.0.0.1:26379/0"
