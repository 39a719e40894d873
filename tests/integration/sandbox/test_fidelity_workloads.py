"""Fidelity of workloads: Deployments that create Pods, and Pods that run real processes.

The manifests are the ones a real cluster would run the same way: the pod address comes from the
downward API (``fieldRef: status.podIP``), the server binds it, and an ``httpGet`` readiness probe gates
readiness. What is checked is what a user observes on a cluster: Deployment status following
``spec.replicas``, ready Pods answering HTTP on their ``podIP``, ``kubectl logs``, Secret values in the
environment, processes gone after scale-down or deletion (for the sandbox: the pod's ``pid`` file under
``<state_dir>/pods/<namespace>/<pod>/pid`` names a process that no longer exists).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import httpx
import kubernetes

from tests.integration.conftest import Sandbox
from tests.support import wait_for

JSON = dict[str, Any]

MERGE = {"Content-Type": "application/merge-patch+json"}
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def _deployment(name: str, replicas: int, container: JSON) -> JSON:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def _sleeper() -> JSON:
    return {"name": "main", "image": "example.invalid/sleeper:1", "command": ["sleep", "3600"]}


def _http_server() -> JSON:
    return {
        "name": "web",
        "image": "example.invalid/python:3",
        "command": ["sh", "-c", 'exec python3 -m http.server 8080 --bind "$POD_IP"'],
        "env": [POD_IP_ENV],
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }


def _deployments(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


def _create_deployment(http: httpx.Client, namespace: str, body: JSON) -> None:
    response = http.post(_deployments(namespace), json=body)
    assert response.status_code == 201, response.text


def _scale(http: httpx.Client, namespace: str, name: str, replicas: int) -> None:
    response = http.patch(
        f"{_deployments(namespace)}/{name}", json={"spec": {"replicas": replicas}}, headers=MERGE
    )
    assert response.status_code == 200, response.text


def _pods(http: httpx.Client, namespace: str, selector: str) -> list[JSON]:
    response = http.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector})
    assert response.status_code == 200, response.text
    items: list[JSON] = response.json()["items"]
    return items


def _ready(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _deployment_status(http: httpx.Client, namespace: str, name: str) -> JSON:
    body: JSON = http.get(f"{_deployments(namespace)}/{name}").json()
    return body


def _status_matches(http: httpx.Client, namespace: str, name: str, replicas: int) -> JSON | None:
    deployment = _deployment_status(http, namespace, name)
    status = deployment.get("status") or {}
    observed = status.get("observedGeneration") == deployment["metadata"]["generation"]
    counts = (status.get("replicas", 0), status.get("readyReplicas", 0), status.get("availableReplicas", 0))
    return deployment if observed and counts == (replicas, replicas, replicas) else None


def _pid_file(sandbox: Sandbox, namespace: str, pod: str) -> Path:
    return sandbox.state_dir / "pods" / namespace / pod / "pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_pids(sandbox: Sandbox, namespace: str, pods: list[JSON]) -> list[int]:
    pids = []
    for pod in pods:
        path = _pid_file(sandbox, namespace, pod["metadata"]["name"])

        def written(path: Path = path) -> str | None:
            return path.read_text().strip() or None if path.exists() else None

        pids.append(int(wait_for(written, timeout=10, what=f"{path} to be written")))
    return pids


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_deployment_selector_is_immutable_and_must_match_the_template(
    http: httpx.Client, namespace: str
) -> None:
    mismatched = _deployment("bad", 0, _sleeper())
    mismatched["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    response = http.post(_deployments(namespace), json=mismatched)
    assert response.status_code == 422, response.text
    assert "spec.template.metadata.labels" in [c.get("field") for c in response.json()["details"]["causes"]]

    _create_deployment(http, namespace, _deployment("fixed", 0, _sleeper()))
    change = {
        "spec": {
            "selector": {"matchLabels": {"app": "fixed", "extra": "x"}},
            "template": {"metadata": {"labels": {"app": "fixed", "extra": "x"}}},
        }
    }
    response = http.patch(f"{_deployments(namespace)}/fixed", json=change, headers=MERGE)
    assert response.status_code == 422, response.text
    assert "spec.selector" in [c.get("field") for c in response.json()["details"]["causes"]]


def test_deployment_status_follows_spec(http: httpx.Client, namespace: str) -> None:
    _create_deployment(http, namespace, _deployment("sleepy", 2, _sleeper()))
    wait_for(
        lambda: _status_matches(http, namespace, "sleepy", 2),
        timeout=20,
        what="status to report 2 ready replicas",
    )
    pods = _pods(http, namespace, "app=sleepy")
    assert len(pods) == 2
    assert all(pod["metadata"]["name"].startswith("sleepy-") for pod in pods)
    assert all(pod["status"]["phase"] == "Running" for pod in pods)
    assert [c["name"] for c in pods[0]["status"]["containerStatuses"]] == ["main"]


def test_kubectl_get_shows_deployments_and_pods_as_on_a_cluster(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    _create_deployment(http, namespace, _deployment("shown", 2, _sleeper()))
    wait_for(lambda: _status_matches(http, namespace, "shown", 2), timeout=20, what="2 ready replicas")
    deploys = sandbox.kubectl("get", "deployments", "-n", namespace).stdout.splitlines()
    pods = sandbox.kubectl("get", "pods", "-n", namespace).stdout.splitlines()
    wide = sandbox.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()
    seen = {
        "deployment header": deploys[0].split(),
        "deployment row": deploys[1].split()[:4],
        "pod header": pods[0].split(),
        "pod rows": [line.split()[1:4] for line in pods[1:]],
        "wide pod header": re.split(r"\s{2,}", wide[0].strip()),
    }
    assert seen == {
        "deployment header": ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "deployment row": ["shown", "2/2", "2", "2"],
        "pod header": ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "pod rows": [["1/1", "Running", "0"], ["1/1", "Running", "0"]],
        "wide pod header": [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
        ],
    }


def test_kubectl_rollout_status_of_a_rolled_out_deployment(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    _create_deployment(http, namespace, _deployment("rolled", 1, _sleeper()))
    wait_for(lambda: _status_matches(http, namespace, "rolled", 1), timeout=20, what="1 ready replica")
    # Already rolled out: on a cluster this returns at once (kubectl watches with a streaming list).
    rollout = sandbox.kubectl("rollout", "status", "deployment/rolled", "-n", namespace, "--timeout=5s")
    assert 'deployment "rolled" successfully rolled out' in rollout.stdout


def test_scale_down_removes_pods_and_status_follows(http: httpx.Client, namespace: str) -> None:
    _create_deployment(http, namespace, _deployment("sleepy", 2, _sleeper()))
    wait_for(lambda: _status_matches(http, namespace, "sleepy", 2), timeout=20, what="2 ready replicas")
    _scale(http, namespace, "sleepy", 1)
    deployment = wait_for(
        lambda: _status_matches(http, namespace, "sleepy", 1),
        timeout=20,
        what="status to report 1 ready replica",
    )
    assert deployment["metadata"]["generation"] == 2
    wait_for(lambda: len(_pods(http, namespace, "app=sleepy")) == 1, timeout=20, what="one pod to remain")


def test_template_change_replaces_the_pods(sandbox: Sandbox, http: httpx.Client, namespace: str) -> None:
    _create_deployment(http, namespace, _deployment("roll", 1, _sleeper()))
    wait_for(lambda: _status_matches(http, namespace, "roll", 1), timeout=20, what="1 ready replica")
    [old] = _pods(http, namespace, "app=roll")
    old_hash = old["metadata"]["labels"]["pod-template-hash"]
    [old_pid] = _running_pids(sandbox, namespace, [old])

    template_patch = {"spec": {"template": {"metadata": {"annotations": {"revision": "2"}}}}}
    response = http.patch(f"{_deployments(namespace)}/roll", json=template_patch, headers=MERGE)
    assert response.status_code == 200, response.text

    def replaced() -> JSON | None:
        pods = _pods(http, namespace, "app=roll")
        if len(pods) != 1 or pods[0]["metadata"]["name"] == old["metadata"]["name"] or not _ready(pods[0]):
            return None
        return pods[0]

    new = wait_for(replaced, timeout=20, what="the old pod to be replaced by a new one")
    assert new["metadata"]["labels"]["pod-template-hash"] != old_hash
    assert new["metadata"]["annotations"]["revision"] == "2"
    deployment = wait_for(lambda: _status_matches(http, namespace, "roll", 1), timeout=10, what="status")
    assert deployment["status"]["updatedReplicas"] == 1
    assert deployment["status"]["observedGeneration"] == 2
    wait_for(lambda: not _alive(old_pid), timeout=10, what="the old pod's process to exit")


def test_http_deployment_becomes_ready_serves_on_pod_ip_and_stops_when_scaled_to_zero(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    _create_deployment(http, namespace, _deployment("web", 2, _http_server()))
    wait_for(
        lambda: _status_matches(http, namespace, "web", 2),
        timeout=30,
        what="the web Deployment to have 2 ready replicas",
    )
    pods = _pods(http, namespace, "app=web")
    assert len(pods) == 2
    assert all(_ready(pod) for pod in pods)
    ips = [pod["status"]["podIP"] for pod in pods]
    assert len(set(ips)) == 2, "each pod has its own address"
    urls = [f"http://{ip}:8080/" for ip in ips]
    for url in urls:
        assert _answers(url), f"{url} does not answer"
    pids = _running_pids(sandbox, namespace, pods)
    for pod, pid in zip(pods, pids, strict=True):
        log = sandbox.state_dir / "pods" / namespace / pod["metadata"]["name"] / "container.log"
        tail = log.read_text()[-400:] if log.exists() else ""
        assert _alive(pid), f"{pod['metadata']['name']} is Ready but its process {pid} has exited:\n{tail}"

    _scale(http, namespace, "web", 0)
    wait_for(lambda: not _pods(http, namespace, "app=web"), timeout=20, what="the pods to be removed")
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10, what="the pod processes to exit")
    for url in urls:
        assert not _answers(url), f"{url} still answers after scale-down"
    wait_for(lambda: _status_matches(http, namespace, "web", 0), timeout=10, what="status to report 0")


def test_a_crashing_container_is_restarted_and_never_ready(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    # The readiness probe points at an address that always answers (the API server): a kubelet only
    # probes running containers, so the pod must still never be Ready while its container crashes.
    api = httpx.URL(sandbox.url)
    container = {
        "name": "main",
        "image": "example.invalid/sh:1",
        "command": ["sh", "-c", "exit 3"],
        "readinessProbe": {"tcpSocket": {"host": api.host, "port": api.port}, "periodSeconds": 1},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "crasher"},
        "spec": {"restartPolicy": "Always", "containers": [container]},
    }
    assert http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201

    def restarted() -> JSON | None:
        current: JSON = http.get(f"/api/v1/namespaces/{namespace}/pods/crasher").json()
        statuses = (current.get("status") or {}).get("containerStatuses") or []
        return current if statuses and statuses[0].get("restartCount", 0) >= 1 else None

    current = wait_for(restarted, timeout=20, what="the crashing container to be restarted")
    status = current["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["ready"] is False
    assert not _ready(current)


def test_readiness_probe_honours_an_explicit_host(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    # A probe's host defaults to the pod IP; when set, the kubelet connects there instead.
    api = httpx.URL(sandbox.url)
    container = _sleeper()
    container["readinessProbe"] = {"tcpSocket": {"host": api.host, "port": api.port}, "periodSeconds": 1}
    _create_deployment(http, namespace, _deployment("probed", 1, container))
    wait_for(
        lambda: _status_matches(http, namespace, "probed", 1), timeout=10, what="the probe on host to pass"
    )


def test_a_running_bare_pod_is_bound_to_a_node(http: httpx.Client, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [_sleeper()]},
    }
    path = f"/api/v1/namespaces/{namespace}/pods"
    assert http.post(path, json=pod).status_code == 201
    running = wait_for(
        lambda: (lambda p: p if _ready(p) else None)(http.get(f"{path}/bare").json()),
        timeout=20,
        what="the bare pod to run",
    )
    # A pod that runs has been scheduled: spec.nodeName names its node.
    assert running["spec"].get("nodeName"), running["spec"]


def test_pod_deletion_is_graceful(sandbox: Sandbox, http: httpx.Client, namespace: str) -> None:
    # The process ignores SIGTERM: the Pod stays, Terminating, until the grace period ends.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stubborn"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "example.invalid/sh:1",
                    "command": ["sh", "-c", "trap '' TERM; exec sleep 3600"],
                }
            ],
        },
    }
    path = f"/api/v1/namespaces/{namespace}/pods"
    assert http.post(path, json=pod).status_code == 201
    wait_for(lambda: _ready(http.get(f"{path}/stubborn").json()), timeout=20, what="the pod to be ready")
    [pid] = _running_pids(sandbox, namespace, [http.get(f"{path}/stubborn").json()])

    response = http.delete(f"{path}/stubborn")
    assert response.status_code == 200, response.text
    terminating = http.get(f"{path}/stubborn")
    assert terminating.status_code == 200, "a running pod is deleted gracefully, not at once"
    assert terminating.json()["metadata"]["deletionTimestamp"]
    assert terminating.json()["metadata"]["deletionGracePeriodSeconds"] == 1
    wait_for(lambda: http.get(f"{path}/stubborn").status_code == 404, timeout=15, what="the pod to go")
    assert not _alive(pid)


def test_kubectl_logs_returns_the_process_output(
    api_client: kubernetes.client.ApiClient, sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker"},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": "example.invalid/sh:1",
                    "command": ["sh", "-c", "echo first line; echo second line >&2; exec sleep 3600"],
                }
            ],
        },
    }
    response = http.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert response.status_code == 201, response.text

    def logs() -> str | None:
        result = sandbox.kubectl("logs", "talker", "-n", namespace, check=False)
        return result.stdout if "second line" in result.stdout else None

    output = wait_for(logs, timeout=20, what="kubectl logs to show the output")
    assert output.splitlines()[:2] == ["first line", "second line"]
    core = kubernetes.client.CoreV1Api(api_client)
    assert "first line" in core.read_namespaced_pod_log("talker", namespace)
    tail = sandbox.kubectl("logs", "talker", "-n", namespace, "--tail=1").stdout
    assert tail.splitlines() == ["second line"]


def test_secret_referenced_by_env_is_visible_to_the_process(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"token": "s3cr3t-value", "user": "alice"},
    }
    created = http.post(f"/api/v1/namespaces/{namespace}/secrets", json=secret)
    assert created.status_code == 201, created.text
    stored = http.get(f"/api/v1/namespaces/{namespace}/secrets/creds").json()
    assert "stringData" not in stored
    assert stored["data"] == {"token": base64.b64encode(b"s3cr3t-value").decode(), "user": "YWxpY2U="}
    assert stored["type"] == "Opaque"
    container = {
        "name": "main",
        "image": "example.invalid/sh:1",
        "command": ["sh", "-c", 'echo "token=$TOKEN user=$CREDS_user"; exec sleep 3600'],
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        "envFrom": [{"prefix": "CREDS_", "secretRef": {"name": "creds"}}],
    }
    _create_deployment(http, namespace, _deployment("reader", 1, container))
    pod = wait_for(lambda: next(iter(_pods(http, namespace, "app=reader")), None), timeout=20, what="a pod")

    def logs() -> str | None:
        result = sandbox.kubectl("logs", pod["metadata"]["name"], "-n", namespace, check=False)
        return result.stdout if "token=" in result.stdout else None

    assert wait_for(logs, timeout=20, what="the process output").strip() == "token=s3cr3t-value user=alice"


def test_deleting_the_deployment_removes_its_pods_and_processes(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    _create_deployment(http, namespace, _deployment("doomed", 2, _sleeper()))
    wait_for(lambda: _status_matches(http, namespace, "doomed", 2), timeout=20, what="2 ready replicas")
    pids = _running_pids(sandbox, namespace, _pods(http, namespace, "app=doomed"))
    assert all(_alive(pid) for pid in pids)

    response = http.delete(f"{_deployments(namespace)}/doomed")
    assert response.status_code in (200, 202), response.text
    wait_for(
        lambda: http.get(f"{_deployments(namespace)}/doomed").status_code == 404,
        timeout=10,
        what="the Deployment to go",
    )
    wait_for(lambda: not _pods(http, namespace, "app=doomed"), timeout=20, what="its pods to be collected")
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=10, what="the pod processes to exit")
