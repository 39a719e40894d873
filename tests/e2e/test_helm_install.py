"""A user's path on a real cluster: install the chart, use Tideflow, stop and start, upgrade, uninstall.

The tests run in file order and tell one story on the session's kind cluster (each step needs the
ones before it): the chart is installed with Helm (Helm v4's Go SDK, the code behind ``helm
install``) into namespaces that enforce the restricted Pod Security Standard, so the API server
itself refuses any pod that is not restricted, the operator's runtime pods included. Every example
is applied and deployed; a workflow runs through the API and through its runtime's Service; stop and
start go through the API; an upgrade keeps the generated bootstrap key; an idle-shutdown workflow is
scaled to zero after its (shortest) timeout and a trigger wakes it; the uninstall follows
docs/install.md and leaves nothing behind.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import helm_python as helm
import httpx
import pytest
import yaml

from tests.e2e.conftest import (
    JSON,
    ROOT,
    Cluster,
    condition,
    get_json,
    kubectl,
    kubectl_ok,
    port_forward,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

CHART = ROOT / "charts" / "tideflow"
RELEASE = "tideflow"  # contains the chart's name, so objects are named tideflow-operator, tideflow-api...
RELEASE_NS = "tideflow-system"
ORG = "tideflow-e2e"
"""The organization: the namespace Tideflow serves, where the workflows live."""
IDLE_MINUTES = 5  # the shortest idleTimeoutMinutes the CRD allows


def workflow(name: str, lifecycle: JSON) -> JSON:
    """A workflow that needs nothing outside the cluster: a manual trigger and a log line."""
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": ORG, "labels": {"app.kubernetes.io/part-of": "tideflow"}},
        "spec": {
            "displayName": f"e2e {name}",
            "state": "Active",
            "deployed": True,
            "lifecycle": lifecycle,
            "nodes": [
                {"id": "start", "type": "manual_trigger", "label": "Start", "position": {"x": 0, "y": 0}},
                {
                    "id": "say",
                    "type": "log",
                    "label": "Say hello",
                    "position": {"x": 200, "y": 0},
                    "config": {"message": "hello from the kind suite"},
                },
            ],
            "connections": [{"id": "start-say", "source": "start", "target": "say"}],
        },
    }


HELLO = workflow("e2e-hello", {"type": "always-on"})
IDLE = workflow("e2e-idle", {"type": "idle-shutdown", "idleTimeoutMinutes": IDLE_MINUTES})


@dataclass
class Installation:
    """The cluster, the Helm configuration and the values the release is installed with."""

    kubeconfig: Path
    helm: helm.Config
    values: JSON

    def bootstrap_key(self) -> str:
        encoded = kubectl_ok(
            self.kubeconfig,
            "get",
            "secret",
            "tideflow-bootstrap",
            "--namespace",
            RELEASE_NS,
            "--output",
            "jsonpath={.data.api-key}",
        )
        return base64.b64decode(encoded).decode()

    def api(self) -> contextlib.AbstractContextManager[str]:
        return port_forward(self.kubeconfig, RELEASE_NS, "service/tideflow-api", 80)

    def workflow(self, name: str) -> JSON | None:
        return get_json(self.kubeconfig, "workflow", name, "--namespace", ORG)

    def wait_condition(self, name: str, kind: str, timeout: float, reason: str | None = None) -> JSON:
        def met() -> JSON | None:
            obj = self.workflow(name)
            found = condition(obj, kind)
            if obj is None or found is None or found.get("status") != "True":
                return None
            if obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
                return None
            if reason is not None and found.get("reason") != reason:
                return None
            return obj

        return wait_until(f"{kind}=True on Workflow {name}", met, timeout)

    def runtime_replicas(self, name: str) -> int | None:
        deployment = get_json(self.kubeconfig, "deployment", name, "--namespace", ORG)
        return None if deployment is None else int(deployment["spec"].get("replicas", 1))

    def runtime_pods(self, name: str) -> list[JSON]:
        listed = get_json(
            self.kubeconfig, "pods", "--namespace", ORG, "--selector", f"tideflow.io/workflow={name}"
        )
        return list((listed or {}).get("items") or [])


@pytest.fixture(scope="module")
def installation(kind_cluster: Cluster, tideflow_image: str) -> Iterator[Installation]:
    kubeconfig = kind_cluster.kubeconfig
    for namespace in (RELEASE_NS, ORG):
        kubectl_ok(kubeconfig, "create", "namespace", namespace)
        kubectl_ok(
            kubeconfig,
            "label",
            "namespace",
            namespace,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        )
    repository, tag = tideflow_image.rsplit(":", 1)
    values: JSON = {
        # Loaded into the nodes by `kind load`: never pulled.
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [ORG],
        "operator": {"resyncSeconds": 5},
        "api": {"bootstrap": {"organization": ORG}, "triggerHoldSeconds": 180},
    }
    with helm.Config(kubeconfig_path=kubeconfig, namespace=RELEASE_NS) as config:
        yield Installation(kubeconfig, config, values)
        config.uninstall(RELEASE, ignore_not_found=True, wait="watcher", timeout=300)


def authorization(installation: Installation) -> dict[str, str]:
    return {"Authorization": f"Bearer {installation.bootstrap_key()}"}


def trigger_through_the_api(installation: Installation, api: str, name: str) -> JSON:
    answer = httpx.post(
        f"{api}/api/v1/workflows/wf_{name}/trigger",
        json={"sync": True, "inputs": {"from": "e2e"}},
        headers=authorization(installation),
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    body: JSON = answer.json()
    assert body["status"] == "completed", body
    return body


def test_install_runs_the_operator_and_the_api_under_the_restricted_standard(
    installation: Installation,
) -> None:
    release = installation.helm.install(
        CHART, RELEASE, installation.values, namespace=RELEASE_NS, wait="watcher", timeout=600
    )
    assert release["status"] == "deployed", release
    for name in ("tideflow-operator", "tideflow-api"):
        deployment = get_json(installation.kubeconfig, "deployment", name, "--namespace", RELEASE_NS)
        assert deployment is not None
        assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"], name
    tested = installation.helm.test(RELEASE, timeout=300, logs=True)
    assert "/healthz 200" in str(tested.get("logs")), tested


CAN_I: list[tuple[str, str, str, str, bool]] = [
    # (ServiceAccount, verb, resource, namespace, allowed); docs/security.md lists the rules
    (f"{RELEASE_NS}:tideflow-operator", "create", "deployments.apps", ORG, True),
    (f"{RELEASE_NS}:tideflow-operator", "watch", "workflows.tideflow.io", ORG, True),
    (f"{RELEASE_NS}:tideflow-operator", "patch", "workflows.tideflow.io/status", ORG, True),
    (f"{RELEASE_NS}:tideflow-operator", "create", "workflowruns.tideflow.io", ORG, True),
    (f"{RELEASE_NS}:tideflow-operator", "list", "customresourcedefinitions.apiextensions.k8s.io", "", True),
    (f"{RELEASE_NS}:tideflow-operator", "get", "secrets", ORG, False),
    (f"{RELEASE_NS}:tideflow-operator", "update", "workflows.tideflow.io", ORG, False),
    (f"{RELEASE_NS}:tideflow-operator", "create", "pods", ORG, False),
    (f"{RELEASE_NS}:tideflow-operator", "create", "deployments.apps", "default", False),
    (f"{ORG}:tideflow-runtime", "create", "workflowruns.tideflow.io", ORG, True),
    (f"{ORG}:tideflow-runtime", "patch", "workflowruns.tideflow.io/status", ORG, True),
    (f"{ORG}:tideflow-runtime", "patch", "workflows.tideflow.io/status", ORG, True),
    (f"{ORG}:tideflow-runtime", "get", "secrets", ORG, False),
    (f"{ORG}:tideflow-runtime", "get", "configmaps", ORG, False),
    (f"{ORG}:tideflow-runtime", "update", "workflows.tideflow.io", ORG, False),
    (f"{ORG}:tideflow-runtime", "list", "workflowruns.tideflow.io", "default", False),
    (f"{RELEASE_NS}:tideflow-api", "create", "secrets", ORG, True),
    (f"{RELEASE_NS}:tideflow-api", "delete", "workflows.tideflow.io", ORG, True),
    (f"{RELEASE_NS}:tideflow-api", "patch", "workflows.tideflow.io/scale", ORG, True),
    (f"{RELEASE_NS}:tideflow-api", "get", "secrets", "kube-system", False),
    (f"{RELEASE_NS}:tideflow-api", "delete", "deployments.apps", ORG, False),
    (f"{RELEASE_NS}:tideflow-api", "create", "pods", ORG, False),
]


def test_each_service_account_may_do_what_the_security_guide_says_and_no_more(
    installation: Installation,
) -> None:
    wrong = []
    for account, verb, resource, namespace, allowed in CAN_I:
        kind, _, subresource = resource.partition("/")
        args = ["auth", "can-i", verb, kind, f"--as=system:serviceaccount:{account}"]
        args += [f"--subresource={subresource}"] if subresource else []
        args += ["--namespace", namespace] if namespace else []
        answer = kubectl(installation.kubeconfig, *args).stdout.strip()
        if answer != ("yes" if allowed else "no"):
            wrong.append(f"{account} {verb} {resource} in {namespace or 'the cluster'}: {answer}")
    assert wrong == []


def test_every_example_applies_and_the_operator_deploys_it(installation: Installation) -> None:
    kubectl_ok(installation.kubeconfig, "apply", "--namespace", ORG, "--filename", str(ROOT / "examples"))
    names = [
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in sorted((ROOT / "examples").glob("*.yaml"))
    ]
    for name in names:
        installation.wait_condition(name, "Deployed", timeout=300)
        found = installation.workflow(name)
        assert found is not None
        uid = found["metadata"]["uid"]
        for kind in ("configmap", "deployment", "service"):
            child = get_json(installation.kubeconfig, kind, name, "--namespace", ORG)
            assert child is not None, f"{kind} {name}"
            assert [o["uid"] for o in child["metadata"]["ownerReferences"]] == [uid]
    # An always-on runtime's pods were admitted under the restricted standard and became ready.
    installation.wait_condition("lifecycle-always-on", "Ready", timeout=300)


def test_a_workflow_runs_through_the_api_and_through_its_runtime(installation: Installation) -> None:
    kubectl_ok(installation.kubeconfig, "apply", "--filename", "-", input=yaml.safe_dump(HELLO))
    installation.wait_condition("e2e-hello", "Ready", timeout=300)
    with installation.api() as api:
        trigger_through_the_api(installation, api, "e2e-hello")
    with port_forward(installation.kubeconfig, ORG, "service/e2e-hello", 8080) as runtime:
        answer = httpx.post(f"{runtime}/trigger", json={"sync": True}, timeout=300)
        assert answer.status_code == 200, answer.text
        assert answer.json()["phase"] == "Completed"
    runs = get_json(
        installation.kubeconfig,
        "workflowruns",
        "--namespace",
        ORG,
        "--selector",
        "tideflow.io/workflow=e2e-hello",
    )
    assert runs is not None
    phases = sorted((run["spec"]["triggerType"], run["status"]["phase"]) for run in runs["items"])
    assert phases == [("api", "Completed"), ("manual", "Completed")]


def test_stop_and_start_through_the_api(installation: Installation) -> None:
    with installation.api() as api:
        stopped = httpx.post(f"{api}/api/v1/workflows/wf_e2e-hello/stop", headers=authorization(installation))
        assert stopped.status_code == 200, stopped.text
        wait_until(
            "the stopped runtime at zero", lambda: installation.runtime_replicas("e2e-hello") == 0, 120
        )
        wait_until("the stopped runtime's pods gone", lambda: not installation.runtime_pods("e2e-hello"), 120)
        running = condition(installation.workflow("e2e-hello"), "Running")
        assert running is not None
        assert (running["status"], running["reason"]) == ("False", "StoppedByUser")
        started = httpx.post(
            f"{api}/api/v1/workflows/wf_e2e-hello/start", headers=authorization(installation)
        )
        assert started.status_code == 200, started.text
        installation.wait_condition("e2e-hello", "Ready", timeout=300)
        assert installation.runtime_replicas("e2e-hello") == 1
        trigger_through_the_api(installation, api, "e2e-hello")


def test_an_upgrade_keeps_the_generated_bootstrap_key(installation: Installation) -> None:
    key = installation.bootstrap_key()
    assert len(key) == 48
    values = {**installation.values, "operator": {"resyncSeconds": 10}}
    release = installation.helm.upgrade(
        CHART, RELEASE, values, namespace=RELEASE_NS, wait="watcher", timeout=600
    )
    assert release["status"] == "deployed", release
    assert installation.bootstrap_key() == key
    with installation.api() as api:
        listed = httpx.get(f"{api}/api/v1/workflows", headers=authorization(installation), timeout=30)
        assert listed.status_code == 200, listed.text


@pytest.mark.timeout(1200)
def test_an_idle_workflow_is_scaled_to_zero_and_a_trigger_wakes_it(installation: Installation) -> None:
    kubectl_ok(installation.kubeconfig, "apply", "--filename", "-", input=yaml.safe_dump(IDLE))
    installation.wait_condition("e2e-idle", "Ready", timeout=300)
    ready_at = time.monotonic()

    def idle_stopped() -> JSON | None:
        obj = installation.workflow("e2e-idle")
        running = condition(obj, "Running")
        if running is None or running.get("status") != "False" or running.get("reason") != "IdleTimeout":
            return None
        return obj if installation.runtime_replicas("e2e-idle") == 0 else None

    wait_until("the idle shutdown", idle_stopped, timeout=(IDLE_MINUTES + 4) * 60, interval=10)
    assert time.monotonic() - ready_at >= (IDLE_MINUTES - 1) * 60, "stopped before its idle timeout"
    wait_until("the idle runtime's pods gone", lambda: not installation.runtime_pods("e2e-idle"), 120)
    with installation.api() as api:
        trigger_through_the_api(installation, api, "e2e-idle")  # held by the API while the runtime starts
    assert installation.runtime_replicas("e2e-idle") == 1


def test_uninstall_in_the_documented_order_leaves_nothing(installation: Installation) -> None:
    kubeconfig = installation.kubeconfig
    kubectl_ok(kubeconfig, "delete", "workflows", "--all", "--namespace", ORG, "--wait=true", timeout=300)
    wait_until(
        "the runtimes garbage-collected with their Workflows",
        lambda: not (get_json(kubeconfig, "deployments", "--namespace", ORG) or {}).get("items"),
        timeout=300,
    )
    installation.helm.uninstall(RELEASE, wait="watcher", timeout=300)
    for name in ("tideflow-operator", "tideflow-api"):
        assert get_json(kubeconfig, "deployment", name, "--namespace", RELEASE_NS) is None
    crds = ("workflows.tideflow.io", "workflowruns.tideflow.io")
    for crd in crds:
        assert get_json(kubeconfig, "crd", crd) is not None, "Helm never deletes the CRDs"
    kubectl_ok(kubeconfig, "delete", "--filename", str(CHART / "crds"), "--wait=true", timeout=300)
    namespaced = "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies"
    left = get_json(
        kubeconfig, namespaced, "--all-namespaces", "--selector", "app.kubernetes.io/part-of=tideflow"
    )
    assert (left or {}).get("items") == []
    left = get_json(
        kubeconfig,
        "clusterroles,clusterrolebindings,crds",
        "--selector",
        "app.kubernetes.io/part-of=tideflow",
    )
    assert (left or {}).get("items") == []
