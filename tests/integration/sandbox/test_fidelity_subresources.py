"""Fidelity of the status and scale subresources, for a custom resource and for a Deployment.

With a status subresource, writes to the main resource ignore ``status`` (create drops it, update keeps
the stored one) and writes to ``/status`` ignore everything but ``status`` and leave ``generation``
alone. The scale subresource reads and writes an ``autoscaling/v1`` ``Scale`` mapped onto the CRD's
``specReplicasPath``/``statusReplicasPath``/``labelSelectorPath`` (or a Deployment's replicas and
selector), through raw HTTP, the ``kubernetes`` client and ``kubectl scale``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from tests.integration.conftest import Sandbox
from tests.integration.sandbox import installed_crd
from tests.support import wait_for

JSON = dict[str, Any]

GROUP = "fidelity.test.io"
VERSION = "v1"
PLURAL = "scalewidgets"
KIND = "ScaleWidget"
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"

MERGE = {"Content-Type": "application/merge-patch+json"}


def _crd() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "scalewidget", "kind": KIND},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                                        "colour": {"type": "string"},
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {
                                        "replicas": {"type": "integer"},
                                        "selector": {"type": "string"},
                                        "phase": {"type": "string"},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def crd(sandbox: Sandbox) -> Iterator[None]:
    """Install this module's CRD (status + scale subresources) for the module's tests."""
    with installed_crd(sandbox, _crd()):
        yield


PLAIN_PLURAL = "plainscalewidgets"
PLAIN_KIND = "PlainScaleWidget"


@pytest.fixture(scope="module")
def plain_crd(sandbox: Sandbox) -> Iterator[str]:
    """A CRD of the same shape without any subresource; yields its collection path prefix."""
    crd = _crd()
    crd["metadata"]["name"] = f"{PLAIN_PLURAL}.{GROUP}"
    crd["spec"]["names"] = {"plural": PLAIN_PLURAL, "singular": "plainscalewidget", "kind": PLAIN_KIND}
    del crd["spec"]["versions"][0]["subresources"]
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        created = client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
        assert created.status_code == 201, created.text
        wait_for(
            lambda: client.get(f"/apis/{GROUP}/{VERSION}/{PLAIN_PLURAL}").status_code == 200,
            what=f"{PLAIN_PLURAL} to be served",
        )
        try:
            yield f"/apis/{GROUP}/{VERSION}"
        finally:
            client.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLAIN_PLURAL}.{GROUP}")


def _path(namespace: str, name: str = "", sub: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    if name:
        base = f"{base}/{name}"
    return f"{base}/{sub}" if sub else base


def _widget(name: str, replicas: int = 1, status: JSON | None = None) -> JSON:
    body: JSON = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "colour": "red"},
    }
    if status is not None:
        body["status"] = status
    return body


def _create_widget(http: httpx.Client, namespace: str, name: str, replicas: int = 1) -> JSON:
    response = http.post(_path(namespace), json=_widget(name, replicas))
    assert response.status_code == 201, response.text
    result: JSON = response.json()
    return result


def _set_status(http: httpx.Client, namespace: str, name: str, status: JSON) -> JSON:
    response = http.patch(_path(namespace, name, "status"), json={"status": status}, headers=MERGE)
    assert response.status_code == 200, response.text
    result: JSON = response.json()
    return result


def _deployment(name: str, replicas: int) -> JSON:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            # No command: the sandbox creates the Pods but runs no process for them.
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "example.invalid/idle:1"}]},
            },
        },
    }


# ----------------------------------------------------------------------------------------------
# Status subresource


def test_create_drops_status_when_the_status_subresource_is_enabled(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    response = http.post(_path(namespace), json=_widget("w", status={"phase": "Forged", "replicas": 9}))
    assert response.status_code == 201, response.text
    assert "status" not in response.json() or response.json()["status"] in ({}, None)
    assert "phase" not in (http.get(_path(namespace, "w")).json().get("status") or {})


def test_write_to_the_main_resource_ignores_status(http: httpx.Client, namespace: str, crd: None) -> None:
    _create_widget(http, namespace, "w")
    stored = _set_status(http, namespace, "w", {"phase": "Running", "replicas": 1})

    stored["spec"]["colour"] = "blue"
    stored["status"] = {"phase": "Forged", "replicas": 7}
    put = http.put(_path(namespace, "w"), json=stored)
    assert put.status_code == 200, put.text
    assert put.json()["spec"]["colour"] == "blue"
    assert put.json()["status"] == {"phase": "Running", "replicas": 1}

    patch = http.patch(
        _path(namespace, "w"),
        json={"spec": {"colour": "green"}, "status": {"phase": "Forged"}},
        headers=MERGE,
    )
    assert patch.status_code == 200, patch.text
    current = http.get(_path(namespace, "w")).json()
    assert current["spec"]["colour"] == "green"
    assert current["status"] == {"phase": "Running", "replicas": 1}


def test_write_to_status_ignores_spec_and_keeps_generation(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    created = _create_widget(http, namespace, "w")
    assert created["metadata"]["generation"] == 1

    body = http.get(_path(namespace, "w")).json()
    body["spec"]["colour"] = "purple"
    body["status"] = {"phase": "Running"}
    put = http.put(_path(namespace, "w", "status"), json=body)
    assert put.status_code == 200, put.text
    assert put.json()["status"] == {"phase": "Running"}
    assert put.json()["spec"]["colour"] == "red"
    assert put.json()["metadata"]["generation"] == 1

    patch = http.patch(
        _path(namespace, "w", "status"),
        json={"spec": {"colour": "purple"}, "status": {"phase": "Done"}},
        headers=MERGE,
    )
    assert patch.status_code == 200, patch.text
    current = http.get(_path(namespace, "w")).json()
    assert current["spec"]["colour"] == "red"
    assert current["status"] == {"phase": "Done"}
    assert current["metadata"]["generation"] == 1
    assert current["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]


def test_status_write_with_a_stale_resource_version_is_409(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    created = _create_widget(http, namespace, "w")
    _set_status(http, namespace, "w", {"phase": "One"})
    stale = {**created, "status": {"phase": "Two"}}
    response = http.put(_path(namespace, "w", "status"), json=stale)
    assert response.status_code == 409, response.text
    assert response.json()["reason"] == "Conflict"


def test_deployment_status_subresource_ignores_spec(http: httpx.Client, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = http.post(path, json=_deployment("d", 0))
    assert created.status_code == 201, created.text
    patch = http.patch(f"{path}/d/status", json={"spec": {"replicas": 3}}, headers=MERGE)
    assert patch.status_code == 200, patch.text
    current = http.get(f"{path}/d").json()
    assert current["spec"]["replicas"] == 0
    assert current["metadata"]["generation"] == 1


def test_without_a_status_subresource_status_is_ordinary_content(
    http: httpx.Client, namespace: str, plain_crd: str
) -> None:
    path = f"{plain_crd}/namespaces/{namespace}/{PLAIN_PLURAL}"
    body = {
        "apiVersion": API_VERSION,
        "kind": PLAIN_KIND,
        "metadata": {"name": "p"},
        "spec": {"replicas": 1},
        "status": {"phase": "Given"},
    }
    created = http.post(path, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == {"phase": "Given"}
    assert created.json()["metadata"]["generation"] == 1

    patched = http.patch(f"{path}/p", json={"status": {"phase": "Changed"}}, headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == {"phase": "Changed"}
    # Without a status subresource, everything outside metadata counts for generation.
    assert patched.json()["metadata"]["generation"] == 2

    assert http.get(f"{path}/p/status").status_code == 404
    assert http.get(f"{path}/p/scale").status_code == 404


def test_deployment_create_ignores_status(http: httpx.Client, namespace: str) -> None:
    body = _deployment("d", 0)
    body["status"] = {"replicas": 7, "readyReplicas": 7, "observedGeneration": 9}
    created = http.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=body)
    assert created.status_code == 201, created.text
    status = created.json().get("status") or {}
    assert status.get("replicas") != 7
    assert status.get("observedGeneration") != 9


# ----------------------------------------------------------------------------------------------
# Scale subresource of a custom resource


def test_custom_resource_scale_get_put_patch_over_http(http: httpx.Client, namespace: str, crd: None) -> None:
    created = _create_widget(http, namespace, "w", replicas=2)
    _set_status(http, namespace, "w", {"replicas": 1, "selector": "app=w"})

    response = http.get(_path(namespace, "w", "scale"))
    assert response.status_code == 200, response.text
    scale = response.json()
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["metadata"]["name"] == "w"
    assert scale["metadata"]["namespace"] == namespace
    assert scale["metadata"]["uid"] == created["metadata"]["uid"]
    assert scale["spec"]["replicas"] == 2
    assert scale["status"]["replicas"] == 1
    assert scale["status"]["selector"] == "app=w"

    scale["spec"]["replicas"] = 4
    put = http.put(_path(namespace, "w", "scale"), json=scale)
    assert put.status_code == 200, put.text
    assert put.json()["kind"] == "Scale"
    assert put.json()["spec"]["replicas"] == 4
    widget = http.get(_path(namespace, "w")).json()
    assert widget["spec"]["replicas"] == 4
    assert widget["spec"]["colour"] == "red"
    assert widget["metadata"]["generation"] == 2

    patch = http.patch(_path(namespace, "w", "scale"), json={"spec": {"replicas": 0}}, headers=MERGE)
    assert patch.status_code == 200, patch.text
    assert patch.json()["spec"]["replicas"] == 0
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 0


def test_custom_resource_scale_put_with_a_stale_resource_version_is_409(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    _create_widget(http, namespace, "w", replicas=2)
    scale = http.get(_path(namespace, "w", "scale")).json()
    http.patch(_path(namespace, "w"), json={"spec": {"colour": "blue"}}, headers=MERGE).raise_for_status()
    scale["spec"]["replicas"] = 5
    response = http.put(_path(namespace, "w", "scale"), json=scale)
    assert response.status_code == 409, response.text
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 2


def test_custom_resource_scale_write_is_validated_against_the_schema(
    http: httpx.Client, namespace: str, crd: None
) -> None:
    _create_widget(http, namespace, "w", replicas=2)
    response = http.patch(_path(namespace, "w", "scale"), json={"spec": {"replicas": 11}}, headers=MERGE)
    assert response.status_code == 422, response.text
    assert "spec.replicas" in [c.get("field") for c in response.json()["details"]["causes"]]
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 2


def test_custom_resource_scale_through_the_kubernetes_client(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str, crd: None
) -> None:
    _create_widget(http, namespace, "w", replicas=1)
    _set_status(http, namespace, "w", {"replicas": 1, "selector": "app=w"})
    custom: Any = kubernetes.client.CustomObjectsApi(api_client)

    scale = custom.get_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "w")
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 1
    assert scale["status"] == {"replicas": 1, "selector": "app=w"}

    scale["spec"]["replicas"] = 3
    replaced = custom.replace_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, "w", scale)
    assert replaced["spec"]["replicas"] == 3

    patched = custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, "w", {"spec": {"replicas": 5}}
    )
    assert patched["spec"]["replicas"] == 5
    widget = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "w")
    assert widget["spec"]["replicas"] == 5
    assert widget["metadata"]["generation"] == 3


def test_custom_resource_scale_through_kubectl(
    sandbox: Sandbox, http: httpx.Client, namespace: str, crd: None
) -> None:
    _create_widget(http, namespace, "w", replicas=1)
    result = sandbox.kubectl("scale", f"{PLURAL}.{GROUP}/w", "--replicas=3", "-n", namespace)
    assert "scaled" in result.stdout
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 3

    # --current-replicas is a precondition checked against the Scale's spec.replicas.
    refused = sandbox.kubectl(
        "scale", f"{PLURAL}.{GROUP}/w", "--current-replicas=1", "--replicas=6", "-n", namespace, check=False
    )
    assert refused.returncode != 0
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 3
    sandbox.kubectl("scale", f"{PLURAL}.{GROUP}/w", "--current-replicas=3", "--replicas=6", "-n", namespace)
    assert http.get(_path(namespace, "w")).json()["spec"]["replicas"] == 6


def test_scale_of_the_tideflow_workflow(sandbox: Sandbox, http: httpx.Client, namespace: str) -> None:
    workflow = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "wf"},
        "spec": {"replicas": 1},
    }
    created = http.post(f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows", json=workflow)
    assert created.status_code == 201, created.text
    sandbox.kubectl("scale", "wf/wf", "--replicas=2", "-n", namespace)
    scale = http.get(f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows/wf/scale").json()
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 2


# ----------------------------------------------------------------------------------------------
# Scale subresource of a Deployment


def test_deployment_scale_through_the_kubernetes_client_and_kubectl(
    api_client: kubernetes.client.ApiClient, sandbox: Sandbox, http: httpx.Client, namespace: str
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("d", 0))

    scale = apps.read_namespaced_deployment_scale("d", namespace)
    assert isinstance(scale, kubernetes.client.V1Scale)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec is not None
    assert scale.status is not None
    assert scale.spec.replicas == 0
    assert scale.status.selector == "app=d"

    scale.spec.replicas = 1
    replaced = apps.replace_namespaced_deployment_scale("d", namespace, scale)
    assert replaced.spec.replicas == 1
    assert apps.read_namespaced_deployment("d", namespace).spec.replicas == 1

    patched = apps.patch_namespaced_deployment_scale("d", namespace, {"spec": {"replicas": 2}})
    assert patched.spec.replicas == 2
    deployment = apps.read_namespaced_deployment("d", namespace)
    assert deployment.spec.replicas == 2
    assert deployment.metadata.generation == 3

    sandbox.kubectl("scale", "deployment/d", "--replicas=0", "-n", namespace)
    assert apps.read_namespaced_deployment("d", namespace).spec.replicas == 0

    def scale_reports_no_pods() -> bool:
        current = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/d/scale").json()
        return bool(current["spec"]["replicas"] == 0 and current["status"].get("replicas", 0) == 0)

    wait_for(scale_reports_no_pods, timeout=20, what="the Deployment's Scale to report 0 replicas")
