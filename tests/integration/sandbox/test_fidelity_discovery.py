"""Fidelity of discovery, server-side printing and OpenAPI, checked through raw HTTP and the real kubectl.

``/api`` and ``/apis`` list the served groups; each group version lists its resources with kinds,
short names, categories and the ``status``/``scale`` subresources, as kube-apiserver publishes them for
built-in kinds and CRDs. kubectl builds on them: ``api-resources``, categories (``kubectl get
tideflow``), the CRD's printer columns in ``kubectl get wf``, ``kubectl explain`` from the published
schema, and ``kubectl apply -f examples/``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import Sandbox
from tests.support import wait_for

JSON = dict[str, Any]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WORKFLOWS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflows"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _resources(http: httpx.Client, group_version_path: str) -> dict[str, JSON]:
    response = http.get(group_version_path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "APIResourceList"
    return {resource["name"]: resource for resource in body["resources"]}


def _table(output: str) -> list[dict[str, str]]:
    """Parse kubectl's aligned table by the header's column positions (empty cells stay empty)."""
    lines = output.splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=\s\s)|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: line[a:b].strip() for name, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


# ----------------------------------------------------------------------------------------------
# Raw discovery documents


def test_core_api_versions(http: httpx.Client) -> None:
    body = http.get("/api").json()
    assert body["kind"] == "APIVersions"
    assert body["versions"] == ["v1"]


def test_version_endpoint(http: httpx.Client, sandbox: Sandbox) -> None:
    body = http.get("/version").json()
    assert re.fullmatch(r"v1\.\d+\.\d+.*", body["gitVersion"]), body
    assert body["major"] == "1"
    assert "Server Version: v1." in sandbox.kubectl("version").stdout


def test_api_group_list_includes_builtin_and_crd_groups(http: httpx.Client) -> None:
    body = http.get("/apis").json()
    assert body["kind"] == "APIGroupList"
    groups = {group["name"]: group for group in body["groups"]}
    assert {"apps", "apiextensions.k8s.io", "tideflow.io"} <= set(groups)
    tideflow = groups["tideflow.io"]
    assert tideflow["versions"] == [{"groupVersion": "tideflow.io/v1alpha1", "version": "v1alpha1"}]
    assert tideflow["preferredVersion"] == {"groupVersion": "tideflow.io/v1alpha1", "version": "v1alpha1"}
    assert {"groupVersion": "apps/v1", "version": "v1"} in groups["apps"]["versions"]

    group = http.get("/apis/tideflow.io").json()
    assert group["kind"] == "APIGroup"
    assert group["name"] == "tideflow.io"


def test_crd_group_version_lists_kinds_short_names_categories_and_subresources(http: httpx.Client) -> None:
    resources = _resources(http, "/apis/tideflow.io/v1alpha1")
    workflows = resources["workflows"]
    assert workflows["kind"] == "Workflow"
    assert workflows["singularName"] == "workflow"
    assert workflows["namespaced"] is True
    assert workflows["shortNames"] == ["wf"]
    assert workflows["categories"] == ["tideflow"]
    assert set(workflows["verbs"]) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }

    status = resources["workflows/status"]
    assert status["kind"] == "Workflow"
    assert set(status["verbs"]) == {"get", "patch", "update"}
    scale = resources["workflows/scale"]
    assert scale["kind"] == "Scale"
    assert (scale["group"], scale["version"]) == ("autoscaling", "v1")
    assert set(scale["verbs"]) == {"get", "patch", "update"}

    runs = resources["workflowruns"]
    assert runs["kind"] == "WorkflowRun"
    assert runs["shortNames"] == ["wfrun"]
    assert runs["categories"] == ["tideflow"]
    assert "workflowruns/status" in resources
    assert "workflowruns/scale" not in resources


def test_builtin_group_versions_list_their_resources(http: httpx.Client) -> None:
    core = _resources(http, "/api/v1")
    assert core["namespaces"]["namespaced"] is False
    assert core["namespaces"]["kind"] == "Namespace"
    assert core["configmaps"]["namespaced"] is True
    assert core["configmaps"]["shortNames"] == ["cm"]
    assert core["pods"]["kind"] == "Pod"
    assert "pods/log" in core
    assert "pods/status" in core

    apps = _resources(http, "/apis/apps/v1")
    assert apps["deployments"]["kind"] == "Deployment"
    assert apps["deployments"]["shortNames"] == ["deploy"]
    assert (apps["deployments/scale"]["group"], apps["deployments/scale"]["kind"]) == ("autoscaling", "Scale")


def test_a_new_crd_appears_in_discovery_and_leaves_with_its_objects(
    http: httpx.Client, namespace: str
) -> None:
    group, plural = "discovery.fidelity.test.io", "gadgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "gadget", "kind": "Gadget", "shortNames": ["gdg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    created = http.post(CRDS, json=crd)
    assert created.status_code == 201, created.text
    try:

        def served() -> bool:
            return http.get(f"/apis/{group}/v1").status_code == 200

        wait_for(served, what="the new CRD's group version to be served")
        assert _resources(http, f"/apis/{group}/v1")[plural]["shortNames"] == ["gdg"]
        assert group in [g["name"] for g in http.get("/apis").json()["groups"]]
        gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}}
        path = f"/apis/{group}/v1/namespaces/{namespace}/{plural}"
        assert http.post(path, json=gadget).status_code == 201
    finally:
        http.delete(f"{CRDS}/{plural}.{group}")

    wait_for(lambda: http.get(f"{CRDS}/{plural}.{group}").status_code == 404, what="the CRD to be deleted")
    wait_for(
        lambda: group not in [g["name"] for g in http.get("/apis").json()["groups"]],
        what="the group to leave /apis",
    )
    assert http.get(f"/apis/{group}/v1/namespaces/{namespace}/{plural}/g").status_code == 404


# ----------------------------------------------------------------------------------------------
# kubectl on top of discovery


def test_kubectl_api_resources_lists_the_crds(sandbox: Sandbox) -> None:
    output = sandbox.kubectl("api-resources", "--api-group=tideflow.io").stdout
    rows = {line.split()[0]: line.split() for line in output.splitlines()[1:] if line.strip()}
    assert rows["workflows"] == ["workflows", "wf", "tideflow.io/v1alpha1", "true", "Workflow"]
    assert rows["workflowruns"] == ["workflowruns", "wfrun", "tideflow.io/v1alpha1", "true", "WorkflowRun"]
    assert output.splitlines()[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]


def test_kubectl_get_by_category(sandbox: Sandbox, http: httpx.Client, namespace: str) -> None:
    wf = {"apiVersion": "tideflow.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "cat"}, "spec": {}}
    assert http.post(WORKFLOWS.format(ns=namespace), json=wf).status_code == 201
    run = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "cat-1"},
        "spec": {"workflowRef": {"name": "cat"}},
    }
    created = http.post(f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflowruns", json=run)
    assert created.status_code == 201, created.text
    output = sandbox.kubectl("get", "tideflow", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(output) == ["workflow.tideflow.io/cat", "workflowrun.tideflow.io/cat-1"]


def test_kubectl_get_wf_shows_the_printer_columns(
    sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    path = WORKFLOWS.format(ns=namespace)
    running = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "alpha"},
        "spec": {"state": "Active", "schedule": {"type": "interval", "value": "5 minutes"}},
    }
    assert http.post(path, json=running).status_code == 201
    three_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3, minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {
        "status": {
            "deploymentStatus": "Running",
            "replicas": 2,
            "nextRunAt": three_days_ago,
            "conditions": [
                {
                    "type": "Valid",
                    "status": "True",
                    "reason": "Valid",
                    "message": "",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Starting",
                    "message": "",
                    "lastTransitionTime": now,
                },
            ],
        }
    }
    patched = http.patch(f"{path}/alpha/status", json=status, headers=MERGE)
    assert patched.status_code == 200, patched.text
    bare = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "beta"},
        "spec": {"state": "Paused", "schedule": {"type": "manual"}},
    }
    assert http.post(path, json=bare).status_code == 201

    output = sandbox.kubectl("get", "wf", "-n", namespace).stdout
    rows = {row["NAME"]: row for row in _table(output)}
    assert list(rows["alpha"]) == [
        "NAME",
        "STATE",
        "DEPLOYMENT",
        "REPLICAS",
        "SCHEDULE",
        "NEXT RUN",
        "READY",
        "AGE",
    ]
    assert rows["alpha"] | {"AGE": ""} == {
        "NAME": "alpha",
        "STATE": "Active",
        "DEPLOYMENT": "Running",
        "REPLICAS": "2",
        "SCHEDULE": "interval",
        "NEXT RUN": three_days_ago,  # a string column: the timestamp itself, not an age
        "READY": "False",
        "AGE": "",
    }
    # Cells whose JSONPath finds nothing are empty in a CRD's server-side table.
    assert rows["beta"] | {"AGE": ""} == {
        "NAME": "beta",
        "STATE": "Paused",
        "DEPLOYMENT": "",
        "REPLICAS": "",
        "SCHEDULE": "manual",
        "NEXT RUN": "",
        "READY": "",
        "AGE": "",
    }
    for row in rows.values():
        assert re.fullmatch(r"\d+s", row["AGE"]), row

    single = sandbox.kubectl(
        "get", "workflow.tideflow.io/alpha", "-n", namespace, "--no-headers"
    ).stdout.split()
    assert single[:3] == ["alpha", "Active", "Running"]


def test_kubectl_explain_shows_field_descriptions(sandbox: Sandbox) -> None:
    output = " ".join(sandbox.kubectl("explain", "wf.spec.lifecycle").stdout.split())
    assert "KIND: Workflow" in output
    assert "When the runtime runs and when it is scaled to zero." in output
    assert "idleTimeoutMinutes <integer>" in output
    assert "Minutes without activity after which an idle-shutdown runtime is stopped." in output
    assert "schedule <Object>" in output

    nested = " ".join(sandbox.kubectl("explain", "wf.spec.lifecycle.idleTimeoutMinutes").stdout.split())
    assert "Minutes without activity after which an idle-shutdown runtime is stopped." in nested
    missing = sandbox.kubectl("explain", "wf.spec.lifecycle.noSuchField", check=False)
    assert missing.returncode != 0


def _example_documents() -> list[JSON]:
    documents: list[JSON] = []
    for path in sorted(EXAMPLES.glob("*")):
        if path.suffix in (".yaml", ".yml", ".json"):
            documents.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return documents


def test_kubectl_apply_creates_every_example(sandbox: Sandbox, namespace: str) -> None:
    documents = _example_documents()
    if not documents:
        pytest.skip(f"{EXAMPLES} holds no manifests yet")
    result = sandbox.kubectl("apply", "-n", namespace, "-f", f"{EXAMPLES}/")
    expected = sorted(
        f"{d['kind'].lower()}.{d['apiVersion'].split('/')[0]}/{d['metadata']['name']}"
        if "/" in d["apiVersion"]
        else f"{d['kind'].lower()}/{d['metadata']['name']}"
        for d in documents
    )
    created = sorted(line.split()[0] for line in result.stdout.splitlines() if line.endswith(" created"))
    assert created == expected, result.stdout
    for name in expected:
        got = sandbox.kubectl("get", name, "-n", namespace, "-o", "yaml")
        assert yaml.safe_load(got.stdout)["metadata"]["namespace"] == namespace
