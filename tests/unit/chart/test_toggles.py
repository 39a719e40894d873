"""Each documented toggle of the chart, off by default and on: what it renders and how it connects.

Standby operator replica and peering, the operator's settings, the bootstrap API key (generated,
given, or brought), the Ingress, the ServiceMonitors, the NetworkPolicies and the test pod.
"""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.unit.chart.rendering import API_KEY, JSON, NAMESPACE, Rendered, render

OPERATOR = "tf-tideflow-operator"
API = "tf-tideflow-api"


def pod_spec(rendered: Rendered, deployment: str) -> JSON:
    spec: JSON = rendered.named("Deployment", deployment)["spec"]["template"]["spec"]
    return spec


def env(rendered: Rendered, deployment: str) -> dict[str, JSON]:
    container = pod_spec(rendered, deployment)["containers"][0]
    return {e["name"]: e for e in container["env"]}


def values_of(rendered: Rendered, deployment: str) -> dict[str, str]:
    return {name: e["value"] for name, e in env(rendered, deployment).items() if "value" in e}


# --- the operator ----------------------------------------------------------------------------------


def test_the_operator_runs_alone_by_default_and_never_twice_at_once() -> None:
    rendered = render()
    deployment = rendered.named("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert values_of(rendered, OPERATOR)["TIDEFLOW_STANDALONE"] == "true"
    assert "affinity" not in pod_spec(rendered, OPERATOR)
    assert not rendered.of_kind("ClusterKopfPeering")
    assert not rendered.of_kind("KopfPeering")
    assert "standby" not in rendered.notes


def test_standby_runs_two_peered_replicas_spread_over_nodes() -> None:
    rendered = render({"operator": {"standby": {"enabled": True}, "peering": {"name": "flow"}}})
    deployment = rendered.named("Deployment", OPERATOR)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    settings = values_of(rendered, OPERATOR)
    assert settings["TIDEFLOW_STANDALONE"] == "false"
    assert settings["TIDEFLOW_PEERING_NAME"] == "flow"
    peering = rendered.named("ClusterKopfPeering", "flow")
    assert peering["apiVersion"] == "kopf.dev/v1"
    term = pod_spec(rendered, OPERATOR)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = rendered.named("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"]
    assert term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert "the other takes over" in rendered.notes


def test_standby_serving_listed_namespaces_peers_in_each_of_them() -> None:
    rendered = render({"watchNamespaces": ["team-a", "team-b"], "operator": {"standby": {"enabled": True}}})
    assert not rendered.of_kind("ClusterKopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in rendered.of_kind("KopfPeering")} == {
        ("team-a", "tideflow"),
        ("team-b", "tideflow"),
    }


def test_an_explicit_affinity_replaces_the_standby_spreading() -> None:
    affinity: JSON = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    }
    rendered = render({"operator": {"standby": {"enabled": True}, "affinity": affinity}})
    assert pod_spec(rendered, OPERATOR)["affinity"] == affinity


def test_the_operator_settings_reach_its_environment() -> None:
    defaults = values_of(render(), OPERATOR)
    assert defaults == {
        "TIDEFLOW_NAMESPACES": "",
        "TIDEFLOW_RUNTIME_IMAGE": "ghcr.io/tideflow/tideflow:0.1.0",
        "TIDEFLOW_IMAGE_PULL_POLICY": "IfNotPresent",
        "TIDEFLOW_RUNTIME_PORT": "8080",
        "TIDEFLOW_RUNTIME_SERVICE_ACCOUNT": "tideflow-runtime",
        "TIDEFLOW_HTTP_ALLOWLIST": "",
        "TIDEFLOW_RESYNC_SECONDS": "30",
        "TIDEFLOW_MAX_CONCURRENT_RECONCILES": "8",
        "TIDEFLOW_SCHEDULE_WAKE_LEAD_SECONDS": "30",
        "TIDEFLOW_STANDALONE": "true",
        "TIDEFLOW_PEERING_NAME": "tideflow",
        "TIDEFLOW_METRICS_PORT": "9090",
        "TIDEFLOW_LIVENESS_PORT": "8081",
    }
    rendered = render(
        {
            "image": {"repository": "registry.example.com/tf", "tag": "9.9.9", "pullPolicy": "Always"},
            "watchNamespaces": ["team-a", "team-b"],
            "operator": {
                "resyncSeconds": 5,
                "maxConcurrentReconciles": 2,
                "scheduleWakeLeadSeconds": 0,
                "healthPort": 18081,
                "extraEnv": [{"name": "TIDEFLOW_WATCH_SERVER_TIMEOUT", "value": "60"}],
            },
            "runtime": {
                "port": 9000,
                "httpAllowlist": ["10.0.0.0/8", "db.internal"],
                "command": ["tideflow-rt", "--x"],
            },
        }
    )
    settings = values_of(rendered, OPERATOR)
    assert settings["TIDEFLOW_NAMESPACES"] == "team-a,team-b"
    assert settings["TIDEFLOW_RUNTIME_IMAGE"] == "registry.example.com/tf:9.9.9"
    assert settings["TIDEFLOW_IMAGE_PULL_POLICY"] == "Always"
    assert settings["TIDEFLOW_RUNTIME_PORT"] == "9000"
    assert settings["TIDEFLOW_HTTP_ALLOWLIST"] == "10.0.0.0/8,db.internal"
    assert json.loads(settings["TIDEFLOW_RUNTIME_COMMAND"]) == ["tideflow-rt", "--x"]
    assert settings["TIDEFLOW_RESYNC_SECONDS"] == "5"
    assert settings["TIDEFLOW_MAX_CONCURRENT_RECONCILES"] == "2"
    assert settings["TIDEFLOW_SCHEDULE_WAKE_LEAD_SECONDS"] == "0"
    assert settings["TIDEFLOW_LIVENESS_PORT"] == "18081"
    assert settings["TIDEFLOW_WATCH_SERVER_TIMEOUT"] == "60"
    container = pod_spec(rendered, OPERATOR)["containers"][0]
    assert container["image"] == "registry.example.com/tf:9.9.9"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"health": 18081, "metrics": 9090}


def test_disabling_the_operator_metrics_removes_the_port_the_service_and_the_monitor() -> None:
    rendered = render(
        {"operator": {"metrics": {"enabled": False}}, "metrics": {"serviceMonitor": {"enabled": True}}}
    )
    assert values_of(rendered, OPERATOR)["TIDEFLOW_METRICS_PORT"] == "0"
    assert [p["name"] for p in pod_spec(rendered, OPERATOR)["containers"][0]["ports"]] == ["health"]
    assert ("Service", NAMESPACE, "tf-tideflow-operator-metrics") not in rendered.identities()
    assert {m["metadata"]["name"] for m in rendered.of_kind("ServiceMonitor")} == {API, "tf-tideflow-runtime"}


def test_probes_use_the_named_ports() -> None:
    rendered = render()
    for deployment in (OPERATOR, API):
        container = pod_spec(rendered, deployment)["containers"][0]
        ports = {p["name"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"
            assert container[probe]["httpGet"]["port"] in ports


# --- the API and its bootstrap key -------------------------------------------------------------------


def secret_key(rendered: Rendered) -> str:
    data = rendered.named("Secret", "tf-tideflow-bootstrap")["data"]
    assert set(data) == {"api-key"}
    return base64.b64decode(data["api-key"]).decode()


def test_the_api_environment() -> None:
    rendered = render()
    variables = env(rendered, API)
    assert {name: e.get("value") for name, e in variables.items() if "value" in e} == {
        "TIDEFLOW_API_HOST": "0.0.0.0",  # noqa: S104 - the API listens on the pod's addresses
        "TIDEFLOW_API_PORT": "8000",
        "TIDEFLOW_NAMESPACES": "",
        "TIDEFLOW_BOOTSTRAP_ORG": "default",
        "TIDEFLOW_RUNTIME_ADDRESS": "service",
        "TIDEFLOW_LOG_LEVEL": "INFO",
    }
    assert variables["TIDEFLOW_BOOTSTRAP_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "tf-tideflow-bootstrap", "key": "api-key"}
    }
    tuned = values_of(
        render(
            {
                "watchNamespaces": ["team-a"],
                "api": {
                    "maxBodyBytes": 2048,
                    "triggerHoldSeconds": 2.5,
                    "runtimeAddress": "pod",
                    "port": 9000,
                },
            }
        ),
        API,
    )
    assert tuned["TIDEFLOW_MAX_BODY_BYTES"] == "2048"
    assert tuned["TIDEFLOW_TRIGGER_HOLD_SECONDS"] == "2.5"
    assert tuned["TIDEFLOW_RUNTIME_ADDRESS"] == "pod"
    assert tuned["TIDEFLOW_NAMESPACES"] == "team-a"
    assert tuned["TIDEFLOW_API_PORT"] == "9000"


def test_the_api_service_targets_the_api_pods_on_the_http_port() -> None:
    rendered = render({"api": {"service": {"type": "NodePort", "port": 8080}}})
    service = rendered.named("Service", API)
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    labels = rendered.named("Deployment", API)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    assert "nodePort" in rendered.notes


def test_a_generated_bootstrap_key_is_random_and_never_printed() -> None:
    first, second = render(), render({"api": {"replicaCount": 1}})
    key = secret_key(first)
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key)
    assert secret_key(second) != key, "generated per install (an upgrade reads the existing one back)"
    assert "checksum/bootstrap-key" not in (
        first.named("Deployment", API)["spec"]["template"]["metadata"]["annotations"] or {}
    )
    assert "tf-tideflow-bootstrap" in first.notes
    assert key not in first.notes
    for template, text in first.sources.items():
        assert key not in text, template


def test_a_given_bootstrap_key_is_stored_restarts_the_api_when_changed_and_is_never_printed() -> None:
    rendered = render({"api": {"bootstrap": {"apiKey": API_KEY, "organization": "team-a"}}})
    assert secret_key(rendered) == API_KEY
    assert values_of(rendered, API)["TIDEFLOW_BOOTSTRAP_ORG"] == "team-a"
    annotations = rendered.named("Deployment", API)["spec"]["template"]["metadata"]["annotations"]
    other = render({"api": {"bootstrap": {"apiKey": API_KEY + "x"}}})
    assert (
        annotations["checksum/bootstrap-key"]
        != (
            other.named("Deployment", API)["spec"]["template"]["metadata"]["annotations"][
                "checksum/bootstrap-key"
            ]
        )
    )
    for template, text in rendered.sources.items():
        assert API_KEY not in text, template


def test_an_existing_secret_is_used_and_none_is_created() -> None:
    rendered = render({"api": {"bootstrap": {"existingSecret": "my-admin-key"}}})
    assert not rendered.of_kind("Secret")
    assert env(rendered, API)["TIDEFLOW_BOOTSTRAP_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-admin-key",
        "key": "api-key",
    }
    assert "secret --namespace tideflow-system my-admin-key" in rendered.notes


def test_no_ingress_by_default_and_an_ingress_to_the_api_service_when_enabled() -> None:
    assert not render().of_kind("Ingress")
    rendered = render(
        {
            "api": {
                "ingress": {
                    "enabled": True,
                    "className": "nginx",
                    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                    "hosts": [{"host": "flow.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                    "tls": [{"secretName": "flow-tls", "hosts": ["flow.example.com"]}],
                }
            }
        }
    )
    ingress = rendered.named("Ingress", API)
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["flow.example.com"], "secretName": "flow-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "flow.example.com"
    assert rule["http"]["paths"] == [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": API, "port": {"name": "http"}}}}
    ]
    assert "https://flow.example.com" in rendered.notes


def test_pull_secrets_reach_the_chart_pods_and_the_runtime_service_accounts() -> None:
    rendered = render(
        {
            "watchNamespaces": ["team-a"],
            "imagePullSecrets": [{"name": "registry"}],
            "runtime": {"imagePullSecrets": [{"name": "runtime-registry"}]},
        }
    )
    for deployment in (OPERATOR, API):
        assert pod_spec(rendered, deployment)["imagePullSecrets"] == [{"name": "registry"}]
    account = rendered.named("ServiceAccount", "tideflow-runtime", "team-a")
    assert account["imagePullSecrets"] == [{"name": "runtime-registry"}]


# --- ServiceMonitors ------------------------------------------------------------------------------------


def test_no_service_monitor_by_default() -> None:
    assert not render().of_kind("ServiceMonitor")


@pytest.mark.parametrize("namespaces", [[], ["team-a", "team-b"]], ids=["all-namespaces", "listed"])
def test_service_monitors_scrape_the_operator_the_api_and_every_runtime(namespaces: list[str]) -> None:
    rendered = render(
        {
            "watchNamespaces": namespaces,
            "metrics": {
                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "15s"}
            },
        }
    )
    monitors = {m["metadata"]["name"]: m for m in rendered.of_kind("ServiceMonitor")}
    assert set(monitors) == {OPERATOR, API, "tf-tideflow-runtime"}
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == NAMESPACE
        assert monitor["metadata"]["labels"]["release"] == "prom"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "15s"
    for name, service in ((OPERATOR, "tf-tideflow-operator-metrics"), (API, API)):
        monitor, target = monitors[name], rendered.named("Service", service)
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        assert monitor["spec"]["selector"]["matchLabels"].items() <= target["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in target["spec"]["ports"]}
    runtime = monitors["tf-tideflow-runtime"]["spec"]
    assert runtime["namespaceSelector"] == ({"matchNames": namespaces} if namespaces else {"any": True})
    assert runtime["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "runtime",
        "app.kubernetes.io/part-of": "tideflow",
        "app.kubernetes.io/managed-by": "tideflow-operator",
    }
    assert runtime["endpoints"][0]["port"] == "http"


def test_service_monitors_can_live_elsewhere_and_skip_the_runtimes() -> None:
    rendered = render(
        {"metrics": {"serviceMonitor": {"enabled": True, "runtimes": False, "namespace": "monitoring"}}}
    )
    assert {
        (m["metadata"]["namespace"], m["metadata"]["name"]) for m in rendered.of_kind("ServiceMonitor")
    } == {
        ("monitoring", OPERATOR),
        ("monitoring", API),
    }


# --- NetworkPolicies ------------------------------------------------------------------------------------

MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}


def test_no_network_policy_by_default() -> None:
    assert not render().of_kind("NetworkPolicy")


def test_network_policies_let_only_the_api_reach_the_runtimes() -> None:
    rendered = render(
        {
            "watchNamespaces": ["team-a", "team-b"],
            "networkPolicy": {"enabled": True, "apiFrom": [INGRESS_NGINX], "metricsFrom": [MONITORING]},
        }
    )
    policies = {
        (p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"]
        for p in rendered.of_kind("NetworkPolicy")
    }
    assert set(policies) == {
        (NAMESPACE, API),
        (NAMESPACE, OPERATOR),
        ("team-a", "tf-tideflow-runtime"),
        ("team-b", "tf-tideflow-runtime"),
    }
    for spec in policies.values():
        assert spec["policyTypes"] == ["Ingress"]
    api_labels = rendered.named("Deployment", API)["spec"]["template"]["metadata"]["labels"]
    assert policies[(NAMESPACE, API)]["podSelector"]["matchLabels"].items() <= api_labels.items()
    assert policies[(NAMESPACE, API)]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [INGRESS_NGINX]}
    ]
    operator_labels = rendered.named("Deployment", OPERATOR)["spec"]["template"]["metadata"]["labels"]
    assert policies[(NAMESPACE, OPERATOR)]["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert policies[(NAMESPACE, OPERATOR)]["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [MONITORING]}
    ]
    runtime = policies[("team-a", "tf-tideflow-runtime")]
    (rule,) = runtime["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    from_api, from_monitoring = rule["from"]
    assert from_api["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    assert from_api["podSelector"]["matchLabels"].items() <= api_labels.items()
    assert from_monitoring == MONITORING


def test_network_policies_without_peers_open_the_api_and_close_the_operator() -> None:
    rendered = render({"watchNamespaces": ["team-a"], "networkPolicy": {"enabled": True}})
    assert rendered.named("NetworkPolicy", API)["spec"]["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}]}
    ]
    assert rendered.named("NetworkPolicy", OPERATOR)["spec"]["ingress"] == []
    (rule,) = rendered.named("NetworkPolicy", "tf-tideflow-runtime")["spec"]["ingress"]
    assert len(rule["from"]) == 1


def test_serving_every_namespace_the_runtime_policy_goes_where_told_or_the_notes_warn() -> None:
    told = render({"networkPolicy": {"enabled": True, "runtimeNamespaces": ["team-c"]}})
    assert told.named("NetworkPolicy", "tf-tideflow-runtime")["metadata"]["namespace"] == "team-c"
    assert "no namespace gets the runtime pods' NetworkPolicy" not in told.notes
    untold = render({"networkPolicy": {"enabled": True}})
    assert {p["metadata"]["name"] for p in untold.of_kind("NetworkPolicy")} == {API, OPERATOR}
    assert "no namespace gets the runtime pods' NetworkPolicy" in untold.notes


# --- helm test ----------------------------------------------------------------------------------------


def test_the_helm_test_pod_checks_the_api_health_through_its_service() -> None:
    rendered = render({"api": {"service": {"port": 8080}}})
    pod = rendered.named("Pod", "tf-tideflow-test-connection")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert "http://tf-tideflow-api:8080/healthz" in pod["spec"]["containers"][0]["command"][-1]
    assert ("Pod", NAMESPACE, "tf-tideflow-test-connection") not in render(
        {"tests": {"enabled": False}}
    ).identities()
