"""The operator's reconcile, end to end: a Workflow applied to the sandbox becomes a running runtime.

Each test runs the real operator process (fixture ``operator``) against the session's sandbox with
the stand-in runtime, and checks what a user would see with kubectl: the three owned objects, the
status and conditions, the runtime pods and what they serve, scaling, undeploying, deletion, and an
invalid Workflow that is reported and never deployed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.integration.conftest import Sandbox
from tests.integration.operator.conftest import (
    Kube,
    Operator,
    condition,
    is_true,
    kopf_workflow_lists,
    pod_ready,
    resync_lists,
    sandbox_log_size,
    status,
    workflow_manifest,
)
from tests.support import wait_for

JSON = dict[str, Any]
KINDS = ("ConfigMap", "Deployment", "Service")
STANDARD_LABELS = {
    "app.kubernetes.io/name": "tideflow-runtime",
    "app.kubernetes.io/component": "runtime",
    "app.kubernetes.io/part-of": "tideflow",
    "app.kubernetes.io/managed-by": "tideflow-operator",
}
DEFINITION_HASH = "tideflow.io/definition-hash"
TIMEOUT = 40.0


def wait_ready(kube: Kube, name: str, replicas: int = 1) -> JSON:
    """Wait until the Workflow is Ready with ``replicas`` ready runtime pods; return it."""

    def probe() -> JSON | None:
        workflow = kube.workflow(name)
        current = status(workflow)
        if (
            workflow is not None
            and is_true(workflow, "Ready")
            and current.get("deploymentStatus") == "Running"
            and current.get("readyReplicas") == replicas
            and current.get("observedGeneration") == workflow["metadata"]["generation"]
        ):
            return workflow
        return None

    return wait_for(probe, timeout=TIMEOUT, what=f"Workflow {name} Ready with {replicas} replica(s)")


def runtime_pods(kube: Kube, workflow: JSON) -> list[JSON]:
    return kube.pods(status(workflow)["selector"])


def settled_pods(kube: Kube, workflow: JSON, replicas: int, template_hash: str) -> list[JSON] | None:
    """The runtime pods once exactly ``replicas`` exist, all ready and all from that template."""
    pods = runtime_pods(kube, workflow)
    if len(pods) != replicas:
        return None
    if all(pod_ready(p) and p["metadata"]["annotations"].get(DEFINITION_HASH) == template_hash for p in pods):
        return pods
    return None


def served_definition(pod: JSON, port: int) -> JSON:
    response = httpx.get(f"http://{pod['status']['podIP']}:{port}/definition", timeout=10)
    assert response.status_code == 200, response.text
    document: JSON = response.json()
    return document


def say_message(definition: JSON) -> str:
    node = next(n for n in definition["nodes"] if n["id"] == "say")
    return str(node["config"]["message"])


def test_apply_creates_the_owned_objects_and_becomes_ready(
    operator: Operator, kube: Kube, namespace: str
) -> None:
    created = kube.create_workflow(workflow_manifest("orders", replicas=2))
    uid = created["metadata"]["uid"]

    workflow = wait_ready(kube, "orders", replicas=2)

    for kind in KINDS:
        child = kube.must_child(kind, "orders")
        refs = child["metadata"].get("ownerReferences") or []
        assert refs == [
            {
                "apiVersion": "tideflow.io/v1alpha1",
                "kind": "Workflow",
                "name": "orders",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], f"{kind} owner references: {refs}"
        labels = child["metadata"]["labels"]
        assert labels.items() >= {**STANDARD_LABELS, "app.kubernetes.io/instance": "orders"}.items(), labels
        assert labels["tideflow.io/workflow"] == "orders"
    assert {kind: len(kube.children(kind, "tideflow.io/workflow=orders")) for kind in KINDS} == dict.fromkeys(
        KINDS, 1
    )

    current = status(workflow)
    for type_ in ("Valid", "Deployed", "Running", "Ready"):
        assert is_true(workflow, type_), f"{type_}: {condition(workflow, type_)}"
        assert condition(workflow, type_)["observedGeneration"] == workflow["metadata"]["generation"]
    assert condition(workflow, "Running")["reason"] == "AlwaysOn"
    assert current["replicas"] == 2
    assert current.get("stoppedReason") is None

    # status.selector selects exactly the runtime pods, and they are the Deployment's, all ready.
    deployment = kube.must_child("Deployment", "orders")
    pods = runtime_pods(kube, workflow)
    assert len(pods) == 2
    assert all(pod_ready(p) for p in pods)
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for pod in pods:
        assert pod["metadata"]["labels"].items() >= template_labels.items()
        assert [ref["uid"] for ref in pod["metadata"]["ownerReferences"]] == [deployment["metadata"]["uid"]]
    assert sorted(p["metadata"]["name"] for p in kube.pods("tideflow.io/workflow=orders")) == sorted(
        p["metadata"]["name"] for p in pods
    )

    # The endpoint is the Service's in-cluster address; the stand-in runtime answers on every pod.
    service = kube.must_child("Service", "orders")
    port = service["spec"]["ports"][0]["port"]
    assert current["endpoint"] == f"http://orders.{namespace}.svc.cluster.local:{port}"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    for pod in pods:
        assert httpx.get(f"http://{pod['status']['podIP']}:{port}/readyz", timeout=10).status_code == 200

    # The story in Events (posted right after the status): started, starting, running; nothing else.
    wait_for(lambda: kube.event_reasons("orders")["Running"] >= 1, timeout=TIMEOUT, what="the Running Event")
    reasons = kube.event_reasons("orders")
    assert reasons == {"Started": 1, "Starting": 1, "Running": 1}, reasons


def test_reconciles_on_watch_events_not_only_on_the_resync(
    operator: Operator, kube: Kube, sandbox: Sandbox, namespace: str
) -> None:
    """A Workflow is deployed because kopf saw it change, not because a resync came round."""
    start = sandbox_log_size(sandbox)
    operator.restart(TIDEFLOW_RESYNC_SECONDS="3600")
    wait_for(
        lambda: resync_lists(sandbox, namespace, start) >= 1, timeout=30, what="the start-up resync pass"
    )
    wait_for(
        lambda: kopf_workflow_lists(sandbox, namespace, start) >= 1,
        timeout=15,
        what=f"kopf to list (and so to watch) the Workflows of {namespace}; see {operator.log_path}",
    )

    kube.create_workflow(workflow_manifest("evented"))
    wait_ready(kube, "evented")
    assert resync_lists(sandbox, namespace, start) == 1


def test_definition_change_rolls_the_runtime(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("roll", message="first"))
    workflow = wait_ready(kube, "roll")
    old_hash = kube.must_child("Deployment", "roll")["spec"]["template"]["metadata"]["annotations"][
        DEFINITION_HASH
    ]
    old_pods = wait_for(lambda: settled_pods(kube, workflow, 1, old_hash), timeout=TIMEOUT, what="first pod")
    assert say_message(served_definition(old_pods[0], operator.runtime_port)) == "first"

    nodes = workflow["spec"]["nodes"]
    nodes[1]["config"]["message"] = "second"
    kube.patch_workflow("roll", {"spec": {"nodes": nodes}})

    def rolled() -> str | None:
        template = kube.must_child("Deployment", "roll")["spec"]["template"]["metadata"]
        new_hash: str = template["annotations"][DEFINITION_HASH]
        return new_hash if new_hash != old_hash else None

    new_hash = wait_for(rolled, timeout=TIMEOUT, what="the pod template's definition hash to change")
    config_map = kube.must_child("ConfigMap", "roll")
    assert config_map["metadata"]["annotations"][DEFINITION_HASH] == new_hash
    assert say_message(json.loads(config_map["data"]["definition.json"])) == "second"

    new_pods = wait_for(
        lambda: settled_pods(kube, workflow, 1, new_hash), timeout=TIMEOUT, what="the rolled runtime pods"
    )
    assert not {p["metadata"]["name"] for p in new_pods} & {p["metadata"]["name"] for p in old_pods}
    for pod in new_pods:
        assert say_message(served_definition(pod, operator.runtime_port)) == "second"
    wait_ready(kube, "roll")


def test_metadata_only_change_does_not_roll(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("steady"))
    workflow = wait_ready(kube, "steady")
    before = kube.must_child("Deployment", "steady")
    template_hash = before["spec"]["template"]["metadata"]["annotations"][DEFINITION_HASH]
    pods = wait_for(lambda: settled_pods(kube, workflow, 1, template_hash), timeout=TIMEOUT, what="pods")
    config_map_version = kube.must_child("ConfigMap", "steady")["metadata"]["resourceVersion"]

    labelled = kube.patch_workflow("steady", {"metadata": {"labels": {"team": "payments"}}})
    assert labelled["metadata"]["generation"] == workflow["metadata"]["generation"]
    # A reconcile that starts after the label change (kube.reconciled changes spec.tags, which is
    # not part of the definition either) must find nothing to roll.
    assert kube.reconciled("steady")["metadata"]["labels"]["team"] == "payments"

    after = kube.must_child("Deployment", "steady")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert kube.must_child("ConfigMap", "steady")["metadata"]["resourceVersion"] == config_map_version
    assert [p["metadata"]["name"] for p in runtime_pods(kube, workflow)] == [
        p["metadata"]["name"] for p in pods
    ]
    assert is_true(kube.workflow("steady"), "Ready")


def test_replicas_zero_stops_and_one_starts_again(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("pausable"))
    workflow = wait_ready(kube, "pausable")
    uids = {kind: kube.must_child(kind, "pausable")["metadata"]["uid"] for kind in KINDS}

    kube.patch_workflow("pausable", {"spec": {"replicas": 0}})

    def stopped() -> JSON | None:
        current = kube.must_workflow("pausable")
        done = (
            status(current).get("deploymentStatus") == "Stopped"
            and kube.must_child("Deployment", "pausable")["spec"]["replicas"] == 0
            and not runtime_pods(kube, workflow)
        )
        return current if done else None

    current = wait_for(stopped, timeout=TIMEOUT, what="the runtime to stop")
    assert status(current)["stoppedReason"] == "StoppedByUser"
    assert condition(current, "Running")["status"] == "False"
    assert condition(current, "Running")["reason"] == "StoppedByUser"
    assert condition(current, "Ready")["status"] == "False"
    assert is_true(current, "Deployed")
    # Stopping keeps the objects: the same ones, not re-created.
    assert {kind: kube.must_child(kind, "pausable")["metadata"]["uid"] for kind in KINDS} == uids
    wait_for(lambda: kube.event_reasons("pausable")["Stopped"] >= 1, timeout=TIMEOUT, what="a Stopped Event")

    kube.patch_workflow("pausable", {"spec": {"replicas": 1}})
    started = wait_ready(kube, "pausable")
    assert condition(started, "Running")["reason"] == "AlwaysOn"
    assert status(started).get("stoppedReason") is None
    assert {kind: kube.must_child(kind, "pausable")["metadata"]["uid"] for kind in KINDS} == uids


def test_kubectl_scale_goes_through_the_scale_subresource(
    operator: Operator, kube: Kube, sandbox: Sandbox, namespace: str
) -> None:
    kube.create_workflow(workflow_manifest("scalable"))
    wait_ready(kube, "scalable")

    result = sandbox.kubectl("-n", namespace, "scale", "wf/scalable", "--replicas=2")
    assert "scaled" in result.stdout
    assert kube.must_workflow("scalable")["spec"]["replicas"] == 2

    workflow = wait_ready(kube, "scalable", replicas=2)
    assert kube.must_child("Deployment", "scalable")["spec"]["replicas"] == 2
    assert len(runtime_pods(kube, workflow)) == 2
    scale = kube.http.get(
        f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows/scalable/scale"
    ).json()
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["replicas"] == 2
    assert scale["status"]["selector"] == status(workflow)["selector"]


def test_hand_edited_deployment_replicas_are_reverted(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("owned"))
    wait_ready(kube, "owned")

    edited = kube.patch_child("Deployment", "owned", {"spec": {"replicas": 3}})
    assert edited["spec"]["replicas"] == 3

    wait_for(
        lambda: kube.must_child("Deployment", "owned")["spec"]["replicas"] == 1,
        timeout=TIMEOUT,
        what="the operator to put the Deployment's replicas back to 1",
    )
    workflow = wait_ready(kube, "owned")
    wait_for(
        lambda: len(runtime_pods(kube, workflow)) == 1,
        timeout=TIMEOUT,
        what="the extra pods to go away",
    )
    assert kube.must_workflow("owned")["spec"]["replicas"] == 1


def test_undeploy_removes_the_objects_and_keeps_the_workflow(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("retired"))
    workflow = wait_ready(kube, "retired")

    kube.patch_workflow("retired", {"spec": {"deployed": False}})

    wait_for(
        lambda: all(kube.child(kind, "retired") is None for kind in KINDS),
        timeout=TIMEOUT,
        what="the ConfigMap, Deployment and Service to be removed",
    )
    wait_for(lambda: not runtime_pods(kube, workflow), timeout=TIMEOUT, what="the runtime pods to go")
    current = wait_for(
        lambda: (
            (w := kube.workflow("retired")) is not None
            and status(w).get("deploymentStatus") == "NotDeployed"
            and w
        ),
        timeout=TIMEOUT,
        what="status NotDeployed",
    )
    assert current["metadata"]["uid"] == workflow["metadata"]["uid"]
    assert condition(current, "Deployed")["status"] == "False"
    assert condition(current, "Deployed")["reason"] == "NotDeployed"
    assert condition(current, "Ready")["status"] == "False"
    assert is_true(current, "Valid")


def test_deleting_the_workflow_garbage_collects_the_objects(operator: Operator, kube: Kube) -> None:
    kube.create_workflow(workflow_manifest("doomed"))
    workflow = wait_ready(kube, "doomed")

    kube.delete_workflow("doomed")

    wait_for(lambda: kube.workflow("doomed") is None, timeout=TIMEOUT, what="the Workflow to be deleted")
    wait_for(
        lambda: all(kube.child(kind, "doomed") is None for kind in KINDS),
        timeout=TIMEOUT,
        what="the garbage collector to delete the owned objects",
    )
    wait_for(lambda: not runtime_pods(kube, workflow), timeout=TIMEOUT, what="the runtime pods to go")


def test_invalid_workflow_is_reported_and_nothing_is_made(operator: Operator, kube: Kube) -> None:
    manifest = workflow_manifest("broken")
    manifest["spec"]["connections"].append({"id": "dangling", "source": "say", "target": "ghost"})
    kube.create_workflow(manifest)

    def reported() -> JSON | None:
        workflow = kube.workflow("broken")
        return workflow if condition(workflow, "Valid").get("status") == "False" else None

    workflow = wait_for(reported, timeout=TIMEOUT, what="Valid=False")
    assert condition(workflow, "Valid")["reason"] == "Invalid"
    errors = status(workflow)["errors"]
    assert {"path": "spec.connections[1].target"} in [{"path": e["path"]} for e in errors], errors
    assert "ghost" in next(e["message"] for e in errors if e["path"] == "spec.connections[1].target")
    assert condition(workflow, "Deployed")["status"] == "False"
    assert condition(workflow, "Ready")["status"] == "False"

    wait_for(lambda: kube.event_reasons("broken")["Invalid"] >= 1, timeout=TIMEOUT, what="an Invalid Event")
    invalid = next(e for e in kube.events("broken") if e["reason"] == "Invalid")
    assert invalid["type"] == "Warning"
    assert "spec.connections[1].target" in invalid["message"]

    # Reconciled again (and resynced every second), it still makes nothing, nor more Events.
    assert condition(kube.reconciled("broken"), "Valid")["status"] == "False"
    assert all(kube.child(kind, "broken") is None for kind in KINDS)
    assert kube.pods("tideflow.io/workflow=broken") == []
    assert kube.event_reasons("broken")["Invalid"] == 1
    assert operator.process is not None
    assert operator.process.poll() is None, "the operator exited"
