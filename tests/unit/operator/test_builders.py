"""Unit tests of the children a deployed Workflow owns (:mod:`tideflow.operator.builders`), as plain data.

The checks are those a cluster would apply or a user relies on: owner references that make the garbage
collector remove the children with their Workflow, the recommended labels, a Deployment whose selector
matches its pods (and the scale subresource's selector), a pod that the ``restricted`` Pod Security
Standard admits, probes on the runtime's endpoints, and hashes that change exactly when the runtime has
to change.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tideflow.core import names
from tideflow.core.models import WorkflowSpec
from tideflow.operator import builders
from tideflow.operator.settings import OperatorSettings

from . import NAMESPACE, UID, stored_workflow

JSON = dict[str, Any]
SETTINGS = OperatorSettings()


def spec_of(workflow: JSON) -> WorkflowSpec:
    return WorkflowSpec.model_validate(workflow["spec"])


def children(workflow: JSON, settings: OperatorSettings = SETTINGS, replicas: int = 2) -> list[JSON]:
    spec = spec_of(workflow)
    return [
        builders.config_map(workflow, spec),
        builders.deployment(workflow, spec, settings, replicas),
        builders.service(workflow, settings),
    ]


def deployment_of(workflow: JSON, settings: OperatorSettings = SETTINGS, replicas: int = 2) -> JSON:
    return builders.deployment(workflow, spec_of(workflow), settings, replicas)


def container_of(deployment: JSON) -> JSON:
    containers: list[JSON] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def spec_hash(obj: JSON) -> str:
    value: str = obj["metadata"]["annotations"][builders.SPEC_HASH]
    return value


def definition_hash(deployment: JSON) -> str:
    value: str = deployment["spec"]["template"]["metadata"]["annotations"][builders.DEFINITION_HASH]
    return value


# --- the restricted Pod Security Standard, checked independently of the builder -------------------------

_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod_spec: JSON) -> list[str]:
    """What the ``restricted`` Pod Security Standard (v1.30+) would refuse in ``pod_spec``; [] if none.

    See https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted).
    """
    problems: list[str] = []
    pod_sc: JSON = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"spec.{flag} is true")
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} uses {sorted(kinds - _RESTRICTED_VOLUME_TYPES)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser is 0")
    if pod_sc.get("sysctls"):
        problems.append("pod sets sysctls")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    containers = [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]
    if not containers:
        problems.append("no containers")
    for container in containers:
        where = f"container {container.get('name')}"
        sc: JSON = container.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{where} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where} does not set allowPrivilegeEscalation: false")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{where} does not run as non-root")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where} runAsUser is 0")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where} adds capabilities {capabilities['add']}")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where} has seccomp profile {seccomp!r}")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where} sets procMount")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{where} uses a hostPort")
        # Not part of the standard, but the runtime promises it: only mounted volumes are writable.
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where} has a writable root filesystem")
    return problems


def test_the_pss_check_catches_what_the_standard_refuses() -> None:
    """The check above is itself tested, so that an empty list from it means something."""
    good = deployment_of(stored_workflow())["spec"]["template"]["spec"]
    assert restricted_violations(good) == []
    mutations: list[Callable[[JSON], object]] = [
        lambda p: p.update(hostNetwork=True),
        lambda p: p["volumes"].append({"name": "host", "hostPath": {"path": "/"}}),
        lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda p: p["containers"][0]["securityContext"].update(capabilities={"add": ["SYS_ADMIN"]}),
        lambda p: p["containers"][0]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        lambda p: p["containers"][0]["securityContext"].update(runAsNonRoot=False),
        lambda p: p["containers"][0]["securityContext"].update(readOnlyRootFilesystem=False),
        lambda p: p["containers"][0]["ports"][0].update(hostPort=80),
    ]
    for mutate in mutations:
        bad = copy.deepcopy(good)
        mutate(bad)
        assert restricted_violations(bad), bad


# --- metadata: owner references and labels --------------------------------------------------------------


def test_every_child_is_controlled_by_the_workflow() -> None:
    workflow = stored_workflow()
    for child in children(workflow):
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "tideflow.io/v1alpha1",
                "kind": "Workflow",
                "name": "lifecycle-always-on",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], child["kind"]


def test_children_are_named_after_the_workflow_in_its_namespace() -> None:
    workflow = stored_workflow(namespace="team-a")
    for child in children(workflow):
        assert child["metadata"]["name"] == "lifecycle-always-on"
        assert child["metadata"]["namespace"] == "team-a"
    assert {child["kind"] for child in children(workflow)} == {"ConfigMap", "Deployment", "Service"}


def test_children_and_pods_carry_the_recommended_labels() -> None:
    workflow = stored_workflow()
    expected = {
        "app.kubernetes.io/name": "tideflow-runtime",
        "app.kubernetes.io/instance": "lifecycle-always-on",
        "app.kubernetes.io/component": "runtime",
        "app.kubernetes.io/part-of": "tideflow",
        "app.kubernetes.io/managed-by": "tideflow-operator",
        "tideflow.io/workflow": "lifecycle-always-on",
    }
    config_map, deployment, service = children(workflow)
    for labelled in (config_map, deployment, service, deployment["spec"]["template"]):
        assert labelled["metadata"]["labels"] == expected


def _parse_selector(text: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in text.split(",")]
    assert all(len(pair) == 2 for pair in pairs), text
    return dict(pairs)


def test_the_deployment_selector_matches_its_pods_and_the_reported_selector() -> None:
    workflow = stored_workflow()
    deployment = deployment_of(workflow)
    match_labels = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert match_labels
    assert match_labels.items() <= pod_labels.items()
    assert set(deployment["spec"]["selector"]) == {"matchLabels"}
    assert _parse_selector(builders.selector_string("lifecycle-always-on")) == match_labels
    assert match_labels[names.LABEL_WORKFLOW] == "lifecycle-always-on"


def test_the_selector_does_not_match_another_workflows_pods() -> None:
    ours = _parse_selector(builders.selector_string("orders"))
    theirs = deployment_of(stored_workflow())["spec"]["template"]["metadata"]["labels"]
    assert not ours.items() <= theirs.items()


def test_the_service_selects_the_runtime_pods_on_the_named_port() -> None:
    workflow = stored_workflow()
    deployment = deployment_of(workflow)
    service = builders.service(workflow, SETTINGS)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["type"] == "ClusterIP"
    [port] = service["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in container_of(deployment)["ports"]}
    assert port["targetPort"] in container_ports
    assert port["port"] == SETTINGS.runtime_port == container_ports[port["targetPort"]]


# --- the pod --------------------------------------------------------------------------------------------


def test_the_pod_passes_the_restricted_pod_security_standard() -> None:
    pod_spec = deployment_of(stored_workflow())["spec"]["template"]["spec"]
    assert restricted_violations(pod_spec) == []


def test_the_pod_has_no_host_access_and_only_safe_volumes() -> None:
    pod_spec = deployment_of(stored_workflow())["spec"]["template"]["spec"]
    assert not any(pod_spec.get(flag) for flag in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in volume for volume in pod_spec["volumes"])
    assert not container_of(deployment_of(stored_workflow())).get("securityContext", {}).get("privileged")


def test_the_definition_is_mounted_read_only_from_the_workflows_config_map() -> None:
    workflow = stored_workflow()
    deployment = deployment_of(workflow)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container_of(deployment)["volumeMounts"]}
    definition_volume = next(v for v in volumes.values() if "configMap" in v)
    assert (
        definition_volume["configMap"]["name"]
        == builders.config_map(workflow, spec_of(workflow))["metadata"]["name"]
    )
    assert mounts[definition_volume["name"]]["readOnly"] is True
    env = {e["name"]: e for e in container_of(deployment)["env"]}
    path = env["TIDEFLOW_DEFINITION_PATH"]["value"]
    assert path == f"{mounts[definition_volume['name']]['mountPath']}/{builders.DEFINITION_KEY}"


def test_probes_check_readyz_and_healthz_on_the_named_port() -> None:
    container = container_of(deployment_of(stored_workflow()))
    port_names = {port["name"] for port in container["ports"]}
    readiness = container["readinessProbe"]["httpGet"]
    liveness = container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"
    assert liveness["path"] == "/healthz"
    assert readiness["port"] in port_names
    assert liveness["port"] in port_names


def test_liveness_leaves_a_slow_runtime_time_to_start_and_answer() -> None:
    """Killed only when unanswering for failureThreshold checks in a row, 25 s after start at the earliest."""
    probe = container_of(deployment_of(stored_workflow()))["livenessProbe"]
    earliest_kill = probe["initialDelaySeconds"] + (probe["failureThreshold"] - 1) * probe["periodSeconds"]
    assert earliest_kill >= 25
    assert probe["timeoutSeconds"] >= 5


def test_the_container_follows_the_settings() -> None:
    settings = OperatorSettings(
        runtime_image="registry.example.com/tideflow:9.9.9",
        image_pull_policy="Always",
        runtime_command=("tideflow-runtime", "--serve"),
        runtime_port=9000,
        runtime_service_account="wf-runner",
        http_allowlist="10.0.0.0/8",
    )
    deployment = deployment_of(stored_workflow(), settings)
    container = container_of(deployment)
    assert container["image"] == "registry.example.com/tideflow:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert container["command"] == ["tideflow-runtime", "--serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "wf-runner"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TIDEFLOW_PORT"] == "9000"
    assert env["TIDEFLOW_HTTP_ALLOWLIST"] == "10.0.0.0/8"
    assert env["TIDEFLOW_WORKFLOW"] == "lifecycle-always-on"
    assert builders.service(stored_workflow(), settings)["spec"]["ports"][0]["port"] == 9000


def test_the_pod_learns_its_namespace_from_the_downward_api() -> None:
    env = {e["name"]: e for e in container_of(deployment_of(stored_workflow()))["env"]}
    assert env["TIDEFLOW_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_secret_refs_become_env_from() -> None:
    workflow = stored_workflow()
    workflow["spec"]["runtime"]["secretRefs"] = [{"name": "chat-token"}, {"name": "warehouse-credentials"}]
    container = container_of(deployment_of(workflow))
    assert [source["secretRef"] for source in container["envFrom"]] == [
        {"name": "chat-token"},
        {"name": "warehouse-credentials"},
    ]
    # The runtime reads a Secret's key from TIDEFLOW_SECRET_<NAME>_<KEY>: envFrom must use that prefix.
    assert [source.get("prefix") for source in container["envFrom"]] == [
        "TIDEFLOW_SECRET_CHAT_TOKEN_",
        "TIDEFLOW_SECRET_WAREHOUSE_CREDENTIALS_",
    ]
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", source["prefix"]) for source in container["envFrom"])


def test_no_secret_refs_no_env_from() -> None:
    assert "envFrom" not in container_of(deployment_of(stored_workflow()))


def test_resources_come_from_spec_runtime() -> None:
    container = container_of(deployment_of(stored_workflow()))  # the example sets them
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }


def test_resources_default_without_spec_runtime() -> None:
    workflow = stored_workflow()
    del workflow["spec"]["runtime"]
    assert container_of(deployment_of(workflow))["resources"] == builders.DEFAULT_RESOURCES
    assert builders.DEFAULT_RESOURCES["requests"]  # the default is not itself empty


def test_resources_default_when_spec_runtime_sets_only_secret_refs() -> None:
    workflow = stored_workflow()
    workflow["spec"]["runtime"] = {"secretRefs": [{"name": "chat-token"}]}
    assert container_of(deployment_of(workflow))["resources"] == builders.DEFAULT_RESOURCES


def test_built_objects_do_not_share_state_with_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # A private copy of the defaults, so that a failure here cannot leak into other tests.
    monkeypatch.setattr(builders, "DEFAULT_RESOURCES", copy.deepcopy(builders.DEFAULT_RESOURCES))
    workflow = stored_workflow()
    del workflow["spec"]["runtime"]
    first = deployment_of(workflow)
    container_of(first)["resources"].setdefault("limits", {})["memory"] = "8Gi"
    assert container_of(deployment_of(workflow))["resources"]["limits"]["memory"] == "256Mi"


@pytest.mark.parametrize("replicas", [0, 1, 5])
def test_the_replicas_passed_in_are_the_deployments(replicas: int) -> None:
    workflow = stored_workflow()  # spec.replicas is 2: the lifecycle decision, not the spec, counts
    assert deployment_of(workflow, replicas=replicas)["spec"]["replicas"] == replicas


def test_a_rollout_never_drops_below_the_wanted_replicas() -> None:
    strategy = deployment_of(stored_workflow())["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


# --- the ConfigMap --------------------------------------------------------------------------------------


def test_the_config_map_holds_the_definition_not_the_deployment_knobs() -> None:
    workflow = stored_workflow()
    config_map = builders.config_map(workflow, spec_of(workflow))
    document = json.loads(config_map["data"][builders.DEFINITION_KEY])
    assert [node["id"] for node in document["nodes"]] == ["receive", "record", "acknowledge"]
    assert [c["id"] for c in document["connections"]] == ["receive-record", "record-acknowledge"]
    assert "settings" in document
    for knob in ("deployed", "replicas", "lifecycle", "runtime", "tags", "sharedWith", "owner", "state"):
        assert knob not in document, knob


# --- hashes and determinism -----------------------------------------------------------------------------


def test_builders_are_deterministic() -> None:
    first = children(stored_workflow())
    second = children(stored_workflow())
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_the_same_definition_in_another_key_order_builds_the_same_children() -> None:
    workflow = stored_workflow()
    reordered = stored_workflow()
    reordered["spec"] = dict(reversed(list(reordered["spec"].items())))
    reordered["spec"]["nodes"] = [dict(reversed(list(node.items()))) for node in reordered["spec"]["nodes"]]
    assert children(workflow) == children(reordered)
    assert [spec_hash(c) for c in children(workflow)] == [spec_hash(c) for c in children(reordered)]


def test_every_child_carries_a_spec_hash() -> None:
    for child in children(stored_workflow()):
        assert len(spec_hash(child)) >= 8


def _change_node_config(spec: JSON) -> None:
    spec["nodes"][1]["config"]["level"] = "warning"


def _add_node(spec: JSON) -> None:
    spec["nodes"].append({"id": "extra", "type": "log", "config": {"message": "more"}})
    spec["connections"].append({"id": "acknowledge-extra", "source": "acknowledge", "target": "extra"})


def _rewire(spec: JSON) -> None:
    spec["connections"][1]["target"] = "record"
    spec["connections"][1]["source"] = "receive"


def _change_settings(spec: JSON) -> None:
    spec["settings"] = {"timeoutSeconds": 42}


@pytest.mark.parametrize("change", [_change_node_config, _add_node, _rewire, _change_settings])
def test_a_changed_definition_changes_the_definition_hash_and_the_spec_hashes(change: Any) -> None:
    before = stored_workflow()
    after = stored_workflow()
    change(after["spec"])
    cm_before, dep_before, _ = children(before)
    cm_after, dep_after, _ = children(after)
    assert definition_hash(dep_before) != definition_hash(dep_after)
    assert spec_hash(dep_before) != spec_hash(dep_after)
    assert spec_hash(cm_before) != spec_hash(cm_after)
    assert cm_before["data"] != cm_after["data"]


@pytest.mark.parametrize(
    "change",
    [
        lambda spec: spec.update(tags=["renamed", "other"]),
        lambda spec: spec.update(sharedWith=["team-ops", "alice@example.com"]),
        lambda spec: spec.update(owner="bob@example.com"),
        lambda spec: spec.update(isPublic=True, isTemplate=True),
        lambda spec: spec.update(state="Paused"),
        lambda spec: spec.update(replicas=7),
        lambda spec: spec.update(lifecycle={"type": "on-demand"}),
        lambda spec: [node.update(position={"x": 999.0, "y": -5.0}) for node in spec["nodes"]],
        lambda spec: spec.update(displayName="Renamed", description="Described again"),
        lambda spec: spec.update(schedule={"type": "cron", "value": "*/5 * * * *"}),
    ],
    ids=[
        "tags",
        "sharedWith",
        "owner",
        "isPublic",
        "state",
        "spec.replicas",
        "lifecycle",
        "node positions (a layout)",
        "displayName and description",
        "schedule (the operator's)",
    ],
)
def test_a_change_that_does_not_reach_the_definition_changes_no_hash(change: Any) -> None:
    before = stored_workflow()
    after = stored_workflow()
    change(after["spec"])
    for old, new in zip(children(before), children(after), strict=True):
        assert spec_hash(old) == spec_hash(new), old["kind"]
        assert old == new, old["kind"]
    assert definition_hash(children(before)[1]) == definition_hash(children(after)[1])


def test_a_changed_resource_request_changes_the_deployment_hash_only() -> None:
    before = stored_workflow()
    after = stored_workflow()
    after["spec"]["runtime"]["resources"]["requests"]["cpu"] = "250m"
    cm_before, dep_before, svc_before = children(before)
    cm_after, dep_after, svc_after = children(after)
    assert spec_hash(dep_before) != spec_hash(dep_after)
    assert definition_hash(dep_before) == definition_hash(dep_after)
    assert spec_hash(cm_before) == spec_hash(cm_after)
    assert spec_hash(svc_before) == spec_hash(svc_after)


def test_the_endpoint_is_the_services_cluster_dns_name() -> None:
    assert (
        builders.endpoint("orders", NAMESPACE, SETTINGS)
        == f"http://orders.{NAMESPACE}.svc.cluster.local:{SETTINGS.runtime_port}"
    )
