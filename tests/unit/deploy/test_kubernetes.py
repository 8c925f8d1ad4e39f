"""deploy/kustomization.yaml cannot be applied here (no cluster), so these tests render it with
kustomize itself (``deploy/local/kustomize.sh``, the kustomize that ``kubectl apply -k`` embeds)
and hold the result to the contracts a cluster would enforce:

* every built-in kind against the Kubernetes API schemas, strictly (unknown fields refused), for
  the oldest and the newest Kubernetes release ``kubernetes-validate`` ships;
* KEDA's ScaledObject and the Prometheus Operator's ServiceMonitor (custom resources, no schema
  in ``kubernetes-validate``) against the fields their references document: KEDA's
  "ScaledObject specification" (https://keda.sh/docs/2.16/reference/scaledobject-spec/) and its
  Apache Kafka scaler's parameter list (https://keda.sh/docs/2.16/scalers/apache-kafka/), and the
  Prometheus Operator API reference for ``ServiceMonitorSpec`` and ``Endpoint``
  (https://prometheus-operator.dev/docs/api-reference/api/#monitoring.coreos.com/v1.ServiceMonitor);
* and against Leadstream itself: every environment variable is a real setting, probes and
  ingress paths are routes the worker serves, the autoscaler's bounds and group match the
  settings, the image and user are the Dockerfile's, the dashboard is the one Grafana gets in
  docker-compose.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stream.app import create_app
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "deploy/local/kustomize.sh"
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes release still supported upstream when this was written, and the newest
``kubernetes-validate`` knows."""


def _kustomize_path() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "path"], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def kustomize() -> str:
    found = _kustomize_path()
    if found.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "install"], check=False, timeout=900)
        found = _kustomize_path()
    if found.returncode != 0:
        message = "kustomize is not installed and could not be built: run deploy/local/kustomize.sh"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return found.stdout.strip()


@pytest.fixture(scope="module")
def rendered(kustomize: str) -> list[dict[str, Any]]:
    built = subprocess.run(
        [kustomize, "build", str(ROOT / "deploy")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def worker_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    statefulset = one(docs, "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return container


def worker_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Every variable the worker container gets: ConfigMap, Secret, then its own ``env``."""
    container = worker_container(docs)
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(one(docs, "Secret", source["secretRef"]["name"])["stringData"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", "<from the downward API>")
    return env


# ------------------------------------------------------------------------------ the API schemas


def test_the_kustomization_renders_every_part(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(
        [
            "ConfigMap",  # settings
            "ConfigMap",  # Grafana dashboard
            "Deployment",  # the webhook connector
            "Ingress",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "ScaledObject",
            "Secret",
            "Service",
            "Service",
            "ServiceMonitor",
            "StatefulSet",
        ]
    )
    for doc in rendered:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "leadstream", doc["kind"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_built_in_kinds_validate_strictly_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]], version: str
) -> None:
    checked = 0
    for doc in rendered:
        if doc["apiVersion"].endswith((".keda.sh/v1alpha1", "keda.sh/v1alpha1")):
            continue
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked == len(rendered) - 2


def test_the_strict_validation_refuses_an_unknown_field(rendered: list[dict[str, Any]]) -> None:
    """The check above can fail: a misspelt field of the StatefulSet is refused."""
    statefulset = json.loads(json.dumps(one(rendered, "StatefulSet")))
    statefulset["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSIONS[-1], strict=True)


# ------------------------------------------------------------------------- the custom resources

_INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS},
}

SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": _INT32,
                "cooldownPeriod": _INT32,
                "initialCooldownPeriod": _INT32,
                "idleReplicaCount": _INT32,
                "minReplicaCount": _INT32,
                "maxReplicaCount": _INT32,
                "fallback": {"type": "object"},
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                # autoscaling/v2 HorizontalPodAutoscalerBehavior: checked below
                                "behavior": {"type": "object"},
                            },
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": _LABELS,  # every value a string
                            "authenticationRef": {"type": "object"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

KAFKA_SCALER_PARAMETERS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "version",
    "partitionLimitation",
    "sasl",
    "tls",
    "unsafeSsl",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
}
"""The Apache Kafka scaler's parameters (KEDA 2.16 docs, "Parameter list")."""

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _LABELS, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"},
                            "scrapeTimeout": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}


def test_the_scaled_object_follows_kedas_specification(rendered: list[dict[str, Any]]) -> None:
    scaled = one(rendered, "ScaledObject")
    jsonschema.validate(scaled, SCALED_OBJECT)
    # the HPA behaviour KEDA passes on is autoscaling/v2's: validate it inside a real HPA
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "check"},
        "spec": {
            "scaleTargetRef": scaled["spec"]["scaleTargetRef"],
            "maxReplicas": scaled["spec"]["maxReplicaCount"],
            "behavior": scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    kubernetes_validate.validate(hpa, KUBERNETES_VERSIONS[-1], strict=True)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert set(trigger["metadata"]) <= KAFKA_SCALER_PARAMETERS


def test_the_custom_resource_checks_can_fail(rendered: list[dict[str, Any]]) -> None:
    scaled = json.loads(json.dumps(one(rendered, "ScaledObject")))
    scaled["spec"]["maxReplicas"] = 8  # the HPA's name, not KEDA's
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)
    scaled = json.loads(json.dumps(one(rendered, "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000  # not a string
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCALED_OBJECT)
    monitor = json.loads(json.dumps(one(rendered, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["interval"] = "15"  # no unit
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICE_MONITOR)


def test_the_service_monitor_scrapes_every_worker(rendered: list[dict[str, Any]]) -> None:
    monitor = one(rendered, "ServiceMonitor")
    jsonschema.validate(monitor, SERVICE_MONITOR)
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s
        for s in by_kind(rendered, "Service")
        if wanted.items() <= s["metadata"].get("labels", {}).items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["leadstream-workers"]
    (service,) = services
    assert service["spec"]["clusterIP"] == "None"  # headless: every pod its own target
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


# ------------------------------------------------------------------------------- and Leadstream


def test_every_variable_is_a_real_setting_and_the_values_parse(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = worker_env(rendered)
    fields = {f"LEADSTREAM_{name.upper()}" for name in Settings.model_fields}
    ours = {k for k in env if k.startswith("LEADSTREAM_")}
    assert ours <= fields, f"unknown settings: {ours - fields}"
    assert set(env) - ours == {"POD_IP"}
    for key in list(os.environ):
        if key.startswith("LEADSTREAM_"):
            monkeypatch.delenv(key)
    for key in ours:
        monkeypatch.setenv(key, env[key].replace("$(POD_IP)", "10.0.0.7"))
    settings = Settings()
    assert settings.web_host == "0.0.0.0"
    assert settings.advertised_url == f"http://10.0.0.7:{settings.web_port}"
    assert settings.store == "rocksdb"


def test_probes_and_ports_are_the_workers_own(rendered: list[dict[str, Any]]) -> None:
    env = worker_env(rendered)
    port = int(env["LEADSTREAM_WEB_PORT"])
    container = worker_container(rendered)
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    app = create_app(Settings(web_enabled=True, projector_enabled=False))
    routes = {str(path) for path in app.web.views}
    assert {"/readyz", "/healthz", "/metrics"} <= routes
    volume = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["data"]
    assert volume == env["LEADSTREAM_DATA_DIR"]


def test_the_ingress_exposes_the_collector_and_api_but_not_metrics(
    rendered: list[dict[str, Any]],
) -> None:
    ingress = one(rendered, "Ingress")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    app = create_app(Settings(web_enabled=True, projector_enabled=False))
    routes = {str(path) for path in app.web.views}
    for path in paths:
        assert any(r == path or r.startswith(path + "/") for r in routes), path
    for private in ("/metrics", "/dashboard", "/readyz", "/healthz"):
        assert not any(private == p or private.startswith(p + "/") for p in paths)
    services = {s["metadata"]["name"] for s in by_kind(rendered, "Service")}
    backends = {
        p["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
    }
    assert backends <= services


def test_the_autoscaler_is_bounded_by_the_partitions_and_reads_the_workers_group(
    rendered: list[dict[str, Any]],
) -> None:
    env = worker_env(rendered)
    scaled = one(rendered, "ScaledObject")
    spec = scaled["spec"]
    statefulset = one(rendered, "StatefulSet")
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    assert spec["maxReplicaCount"] == int(env["LEADSTREAM_TOPIC_PARTITIONS"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["minReplicaCount"] > int(env["LEADSTREAM_STANDBY_REPLICAS"])
    metadata = spec["triggers"][0]["metadata"]
    assert metadata["consumerGroup"] == env["LEADSTREAM_APP_ID"]  # Faust's group is the app id
    assert metadata["bootstrapServers"] == env["LEADSTREAM_KAFKA_BOOTSTRAP"]
    assert "topic" not in metadata  # the lag of every topic the group reads
    assert metadata["allowIdleConsumers"] == "false"


def test_the_disruption_budget_and_network_policy_select_the_workers(
    rendered: list[dict[str, Any]],
) -> None:
    template = one(rendered, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= template.items()
    policy = one(rendered, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= template.items()
    port = int(worker_env(rendered)["LEADSTREAM_WEB_PORT"])
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == {port}
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
    kafka_port = int(worker_env(rendered)["LEADSTREAM_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    assert {53, kafka_port, 6379, port} <= egress_ports
    for service in by_kind(rendered, "Service"):
        assert service["spec"]["selector"].items() <= template.items()


def test_the_image_and_user_are_the_dockerfiles(rendered: list[dict[str, Any]]) -> None:
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    container = worker_container(rendered)
    assert container["image"] == "leadstream:latest"
    readme = (ROOT / "README.md").read_text()
    assert "docker build -f deploy/Dockerfile -t leadstream ." in readme
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user is not None, "the Dockerfile runs as a numeric user"
    pod = one(rendered, "StatefulSet")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(user[1]), int(user[2]))
    assert f"--uid {user[1]}" in dockerfile
    assert pod["runAsNonRoot"] is True
    data_dir = worker_env(rendered)["LEADSTREAM_DATA_DIR"]
    assert f"LEADSTREAM_DATA_DIR={data_dir}" in dockerfile


def test_grafana_gets_the_dashboard_docker_compose_provisions(
    rendered: list[dict[str, Any]],
) -> None:
    (config,) = [c for c in by_kind(rendered, "ConfigMap") if "grafana" in c["metadata"]["name"]]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = config["data"].values()
    shipped = (ROOT / "deploy/grafana/leadstream-dashboard.json").read_text()
    assert json.loads(content) == json.loads(shipped)


def test_the_connector_runs_leadstream_connect_webhook_on_real_settings(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stream.cli import build_parser
    from stream.connect.webhook import parse_secret

    deployment = one(rendered, "Deployment", "leadstream-connector-webhook")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.kind) == ("connect", "webhook")
    assert container["image"] == worker_container(rendered)["image"]
    worker_pod = one(rendered, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == worker_pod["securityContext"]["runAsUser"]
    env: dict[str, str] = {}
    (source,) = container["envFrom"]
    env.update(one(rendered, "ConfigMap", source["configMapRef"]["name"])["data"])
    secrets = one(rendered, "Secret")
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secrets["metadata"]["name"]
            env[item["name"]] = secrets["stringData"][ref["key"]]
        else:
            env[item["name"]] = item["value"]
    fields = {f"LEADSTREAM_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields, f"unknown settings: {set(env) - fields}"
    for key in list(os.environ):
        if key.startswith("LEADSTREAM_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.connect_webhook_secret is not None
    parse_secret(settings.connect_webhook_secret.get_secret_value())
    assert settings.connect_metrics_host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": settings.connect_metrics_port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    workers = one(rendered, "StatefulSet")["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not workers.items() <= labels.items()  # no worker service, budget or policy takes it
