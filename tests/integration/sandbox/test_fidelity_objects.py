"""Fidelity of object metadata, writes, lists, selectors and patches against the kube-apiserver contract.

Every assertion here is documented kube-apiserver behaviour (API concepts, the Status conventions and
the custom resource strategy): server-set ``uid``/``resourceVersion``/``creationTimestamp``,
``generation`` that moves only on changes outside ``metadata`` (and ``status`` behind a status
subresource), 201 on create, 409 AlreadyExists/Conflict with a ``Status`` body, optimistic concurrency
on PUT and PATCH, no-op writes that keep the resourceVersion, ``generateName``, typed lists with
pagination, label and field selectors, the three PATCH flavours and ``dryRun=All``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Sandbox
from tests.integration.sandbox import installed_crd

JSON = dict[str, Any]

GROUP = "fidelity.test.io"
VERSION = "v1"
PLURAL = "objwidgets"
KIND = "ObjWidget"
CRD_NAME = f"{PLURAL}.{GROUP}"

MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}

RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _crd() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "objwidget", "kind": KIND, "listKind": f"{KIND}List"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer"},
                                        "items": {"type": "array", "items": {"type": "string"}},
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "properties": {"phase": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widgets(sandbox: Sandbox) -> Iterator[str]:
    """Install this module's own small CRD; yield the collection path prefix ``/apis/<group>/<version>``."""
    with installed_crd(sandbox, _crd()) as prefix:
        yield prefix


def _cm_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> JSON:
    meta: JSON = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def _create(http: httpx.Client, path: str, body: JSON) -> JSON:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    result: JSON = response.json()
    return result


def _assert_status(response: httpx.Response, code: int, reason: str) -> JSON:
    assert response.status_code == code, response.text
    body: JSON = response.json()
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == code, body
    assert body["reason"] == reason, body
    return body


def _deployment(name: str) -> JSON:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"tier": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "example.invalid/a:1"},
                        {"name": "b", "image": "example.invalid/b:1"},
                    ]
                },
            },
        },
    }


# ----------------------------------------------------------------------------------------------
# Server-set metadata and create semantics


def test_create_answers_201_with_server_set_metadata(http: httpx.Client, namespace: str) -> None:
    response = http.post(
        _cm_path(namespace),
        json={
            **_configmap("meta", a="1"),
            # Client-supplied system fields are overwritten on create.
            "metadata": {"name": "meta", "uid": "not-a-uid", "creationTimestamp": "2001-01-01T00:00:00Z"},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["kind"] == "ConfigMap"
    assert created["apiVersion"] == "v1"
    meta = created["metadata"]
    assert meta["name"] == "meta"
    assert meta["namespace"] == namespace
    assert str(uuid.UUID(meta["uid"])) == meta["uid"]
    assert isinstance(meta["resourceVersion"], str)
    assert meta["resourceVersion"]
    assert RFC3339_SECONDS.match(meta["creationTimestamp"]), meta["creationTimestamp"]
    assert meta["creationTimestamp"] != "2001-01-01T00:00:00Z"

    fetched = http.get(_cm_path(namespace, "meta"))
    assert fetched.status_code == 200
    got = fetched.json()
    assert got["kind"] == "ConfigMap"
    assert got["apiVersion"] == "v1"
    assert got["metadata"]["uid"] == meta["uid"]
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    assert got["metadata"]["creationTimestamp"] == meta["creationTimestamp"]


def test_each_create_gets_its_own_uid_and_resource_version(http: httpx.Client, namespace: str) -> None:
    first = _create(http, _cm_path(namespace), _configmap("one"))["metadata"]
    second = _create(http, _cm_path(namespace), _configmap("two"))["metadata"]
    assert first["uid"] != second["uid"]
    assert first["resourceVersion"] != second["resourceVersion"]


def test_create_of_an_existing_name_is_409_already_exists(http: httpx.Client, namespace: str) -> None:
    _create(http, _cm_path(namespace), _configmap("dup", a="1"))
    response = http.post(_cm_path(namespace), json=_configmap("dup", a="2"))
    body = _assert_status(response, 409, "AlreadyExists")
    assert body["details"]["name"] == "dup"
    assert body["details"]["kind"] == "configmaps"
    assert http.get(_cm_path(namespace, "dup")).json()["data"] == {"a": "1"}


def test_get_of_a_missing_object_is_404_not_found(http: httpx.Client, namespace: str) -> None:
    body = _assert_status(http.get(_cm_path(namespace, "missing")), 404, "NotFound")
    assert body["details"]["name"] == "missing"


def test_create_with_a_namespace_other_than_the_url_is_400(http: httpx.Client, namespace: str) -> None:
    body = _configmap("elsewhere")
    body["metadata"]["namespace"] = "kube-system"
    _assert_status(http.post(_cm_path(namespace), json=body), 400, "BadRequest")
    assert http.get("/api/v1/namespaces/kube-system/configmaps/elsewhere").status_code == 404


def test_create_of_another_kind_on_a_collection_is_400(http: httpx.Client, namespace: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "misplaced"},
        "stringData": {"k": "v"},
    }
    _assert_status(http.post(_cm_path(namespace), json=secret), 400, "BadRequest")
    assert http.get(_cm_path(namespace, "misplaced")).status_code == 404


def test_generate_name_appends_a_random_suffix(http: httpx.Client, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    first = _create(http, _cm_path(namespace), body)["metadata"]
    second = _create(http, _cm_path(namespace), body)["metadata"]
    for meta in (first, second):
        assert re.fullmatch(r"gen-[a-z0-9]{5}", meta["name"]), meta["name"]
        assert meta["generateName"] == "gen-"
    assert first["name"] != second["name"]
    assert http.get(_cm_path(namespace, first["name"])).status_code == 200


def test_create_in_a_missing_namespace_is_404(http: httpx.Client) -> None:
    response = http.post(_cm_path(f"missing-{uuid.uuid4().hex[:8]}"), json=_configmap("orphan"))
    _assert_status(response, 404, "NotFound")


def test_create_with_an_invalid_name_is_422(http: httpx.Client, namespace: str) -> None:
    response = http.post(_cm_path(namespace), json=_configmap("Not_A_Valid_Name"))
    body = _assert_status(response, 422, "Invalid")
    assert "metadata.name" in [c.get("field") for c in body["details"]["causes"]]


# ----------------------------------------------------------------------------------------------
# Updates: resourceVersion, optimistic concurrency, no-op writes, generation


def test_update_moves_resource_version_and_keeps_uid_and_creation_timestamp(
    http: httpx.Client, namespace: str
) -> None:
    created = _create(http, _cm_path(namespace), _configmap("upd", a="1"))
    created["data"] = {"a": "2"}
    response = http.put(_cm_path(namespace, "upd"), json=created)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["data"] == {"a": "2"}
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]


def test_put_with_a_stale_resource_version_is_409_conflict(http: httpx.Client, namespace: str) -> None:
    created = _create(http, _cm_path(namespace), _configmap("stale", a="1"))
    fresh = http.put(_cm_path(namespace, "stale"), json={**created, "data": {"a": "2"}})
    assert fresh.status_code == 200, fresh.text

    response = http.put(_cm_path(namespace, "stale"), json={**created, "data": {"a": "3"}})
    body = _assert_status(response, 409, "Conflict")
    assert body["details"]["name"] == "stale"
    current = http.get(_cm_path(namespace, "stale")).json()
    assert current["data"] == {"a": "2"}
    assert current["metadata"]["resourceVersion"] == fresh.json()["metadata"]["resourceVersion"]


def test_patch_carrying_a_stale_resource_version_is_409_conflict(http: httpx.Client, namespace: str) -> None:
    created = _create(http, _cm_path(namespace), _configmap("stalepatch", a="1"))
    stale_rv = created["metadata"]["resourceVersion"]
    first = http.patch(
        _cm_path(namespace, "stalepatch"),
        json={"metadata": {"resourceVersion": stale_rv}, "data": {"a": "2"}},
        headers=MERGE,
    )
    assert first.status_code == 200, first.text

    response = http.patch(
        _cm_path(namespace, "stalepatch"),
        json={"metadata": {"resourceVersion": stale_rv}, "data": {"a": "3"}},
        headers=MERGE,
    )
    _assert_status(response, 409, "Conflict")
    assert http.get(_cm_path(namespace, "stalepatch")).json()["data"] == {"a": "2"}


def test_put_of_a_missing_object_is_404(http: httpx.Client, namespace: str) -> None:
    response = http.put(_cm_path(namespace, "absent"), json=_configmap("absent", a="1"))
    _assert_status(response, 404, "NotFound")
    assert http.get(_cm_path(namespace, "absent")).status_code == 404


def test_patch_of_a_missing_object_is_404(http: httpx.Client, namespace: str) -> None:
    response = http.patch(_cm_path(namespace, "absent"), json={"data": {"a": "1"}}, headers=MERGE)
    _assert_status(response, 404, "NotFound")


def test_put_with_a_name_other_than_the_url_is_400(http: httpx.Client, namespace: str) -> None:
    created = _create(http, _cm_path(namespace), _configmap("named", a="1"))
    renamed = {**created, "metadata": {**created["metadata"], "name": "renamed"}}
    response = http.put(_cm_path(namespace, "named"), json=renamed)
    _assert_status(response, 400, "BadRequest")
    assert http.get(_cm_path(namespace, "renamed")).status_code == 404


def test_put_with_another_uid_is_409(http: httpx.Client, namespace: str) -> None:
    created = _create(http, _cm_path(namespace), _configmap("uid", a="1"))
    other = {**created, "metadata": {**created["metadata"], "uid": str(uuid.uuid4())}, "data": {"a": "2"}}
    response = http.put(_cm_path(namespace, "uid"), json=other)
    _assert_status(response, 409, "Conflict")
    assert http.get(_cm_path(namespace, "uid")).json()["data"] == {"a": "1"}


def test_immutable_configmap_data_cannot_change(http: httpx.Client, namespace: str) -> None:
    body = {**_configmap("frozen", a="1"), "immutable": True}
    _create(http, _cm_path(namespace), body)
    response = http.patch(_cm_path(namespace, "frozen"), json={"data": {"a": "2"}}, headers=MERGE)
    invalid = _assert_status(response, 422, "Invalid")
    assert "data" in [c.get("field") for c in invalid["details"]["causes"]]
    assert http.get(_cm_path(namespace, "frozen")).json()["data"] == {"a": "1"}
    labelled = http.patch(
        _cm_path(namespace, "frozen"), json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE
    )
    assert labelled.status_code == 200, labelled.text


def test_patch_without_resource_version_is_unconditional(http: httpx.Client, namespace: str) -> None:
    _create(http, _cm_path(namespace), _configmap("uncond", a="1"))
    http.patch(_cm_path(namespace, "uncond"), json={"data": {"a": "2"}}, headers=MERGE).raise_for_status()
    response = http.patch(_cm_path(namespace, "uncond"), json={"data": {"b": "3"}}, headers=MERGE)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"a": "2", "b": "3"}


def test_put_of_a_custom_resource_without_resource_version_is_422(
    http: httpx.Client, namespace: str, widgets: str
) -> None:
    # Custom resources do not allow unconditional updates (the CR strategy's AllowUnconditionalUpdate).
    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    created = _create(
        http,
        path,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "w"}, "spec": {"size": 1}},
    )
    body = {**created, "metadata": {"name": "w"}, "spec": {"size": 2}}
    response = http.put(f"{path}/w", json=body)
    invalid = _assert_status(response, 422, "Invalid")
    assert "metadata.resourceVersion" in [c.get("field") for c in invalid["details"]["causes"]]
    assert http.get(f"{path}/w").json()["spec"] == {"size": 1}


def test_noop_writes_keep_the_resource_version(http: httpx.Client, namespace: str) -> None:
    created = _create(http, _cm_path(namespace), _configmap("noop", {"k": "v"}, a="1"))
    rv = created["metadata"]["resourceVersion"]

    put = http.put(_cm_path(namespace, "noop"), json=created)
    assert put.status_code == 200, put.text
    assert put.json()["metadata"]["resourceVersion"] == rv

    patch = http.patch(_cm_path(namespace, "noop"), json={"data": {"a": "1"}}, headers=MERGE)
    assert patch.status_code == 200, patch.text
    assert patch.json()["metadata"]["resourceVersion"] == rv
    assert http.get(_cm_path(namespace, "noop")).json()["metadata"]["resourceVersion"] == rv


def test_generation_of_a_custom_resource_moves_only_on_spec_changes(
    http: httpx.Client, namespace: str, widgets: str
) -> None:
    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    created = _create(
        http,
        path,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "gen"}, "spec": {"size": 1}},
    )
    assert created["metadata"]["generation"] == 1
    rv = created["metadata"]["resourceVersion"]

    labelled = http.patch(f"{path}/gen", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE).json()
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["resourceVersion"] != rv

    status = http.patch(f"{path}/gen/status", json={"status": {"phase": "Busy"}}, headers=MERGE)
    assert status.status_code == 200, status.text
    assert status.json()["status"] == {"phase": "Busy"}
    assert status.json()["metadata"]["generation"] == 1

    spec = http.patch(f"{path}/gen", json={"spec": {"size": 2}}, headers=MERGE).json()
    assert spec["metadata"]["generation"] == 2
    again = http.patch(f"{path}/gen", json={"spec": {"size": 3}}, headers=MERGE).json()
    assert again["metadata"]["generation"] == 3


def test_generation_of_a_deployment_moves_only_on_spec_changes(http: httpx.Client, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = _create(http, path, _deployment("gen"))
    assert created["metadata"]["generation"] == 1
    labelled = http.patch(f"{path}/gen", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE)
    assert labelled.status_code == 200, labelled.text
    assert labelled.json()["metadata"]["generation"] == 1
    spec = http.patch(f"{path}/gen", json={"spec": {"minReadySeconds": 5}}, headers=MERGE)
    assert spec.status_code == 200, spec.text
    assert spec.json()["metadata"]["generation"] == 2


# ----------------------------------------------------------------------------------------------
# Lists: typing, pagination and selectors


def test_list_has_kind_api_version_and_resource_version(
    http: httpx.Client, namespace: str, widgets: str
) -> None:
    _create(http, _cm_path(namespace), _configmap("listed"))
    listing = http.get(_cm_path(namespace)).json()
    assert listing["kind"] == "ConfigMapList"
    assert listing["apiVersion"] == "v1"
    assert listing["metadata"]["resourceVersion"]
    assert "listed" in [item["metadata"]["name"] for item in listing["items"]]

    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    _create(
        http,
        path,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "w"}, "spec": {"size": 1}},
    )
    custom = http.get(path).json()
    assert custom["kind"] == f"{KIND}List"
    assert custom["apiVersion"] == f"{GROUP}/{VERSION}"
    assert custom["metadata"]["resourceVersion"]
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in custom["items"]] == [
        (KIND, f"{GROUP}/{VERSION}", "w")
    ]

    deployments = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()
    assert deployments["kind"] == "DeploymentList"
    assert deployments["apiVersion"] == "apps/v1"
    assert deployments["items"] == []


def test_list_pagination_with_limit_and_continue(http: httpx.Client, namespace: str) -> None:
    names = {f"page-{i}" for i in range(5)}
    for name in sorted(names):
        _create(http, _cm_path(namespace), _configmap(name, {"suite": "paging"}))

    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2, "labelSelector": "suite=paging"}
    pages = 0
    while True:
        response = http.get(_cm_path(namespace), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen.extend(item["metadata"]["name"] for item in page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
        assert pages < 10, "pagination does not terminate"
        params = {"limit": 2, "labelSelector": "suite=paging", "continue": token}
    assert pages == 3
    assert sorted(seen) == sorted(names), "every object exactly once"


def test_list_pagination_reports_remaining_items_only_without_selectors(
    http: httpx.Client, namespace: str, widgets: str
) -> None:
    # ListMeta.remainingItemCount: set on a paginated list, left unset when a selector was given.
    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    for i in range(3):
        _create(
            http,
            path,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "metadata": {"name": f"r-{i}", "labels": {"suite": "remaining"}},
                "spec": {"size": i},
            },
        )
    page = http.get(path, params={"limit": 1}).json()
    assert len(page["items"]) == 1
    assert page["metadata"]["continue"]
    assert page["metadata"].get("remainingItemCount") == 2

    selected = http.get(path, params={"limit": 1, "labelSelector": "suite=remaining"}).json()
    assert len(selected["items"]) == 1
    assert selected["metadata"]["continue"]
    assert "remainingItemCount" not in selected["metadata"]


def test_paginated_list_is_a_snapshot_of_the_first_page(http: httpx.Client, namespace: str) -> None:
    # The pages of a list are served as of the first page's resourceVersion: later writes do not show.
    for i in range(4):
        _create(http, _cm_path(namespace), _configmap(f"snap-{i}", {"suite": "snapshot"}))
    first = http.get(_cm_path(namespace), params={"limit": 2, "labelSelector": "suite=snapshot"}).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["snap-0", "snap-1"]
    _create(http, _cm_path(namespace), _configmap("snap-9", {"suite": "snapshot"}))
    assert http.delete(_cm_path(namespace, "snap-3")).status_code == 200
    http.patch(
        _cm_path(namespace, "snap-2"), json={"data": {"late": "write"}}, headers=MERGE
    ).raise_for_status()

    rest = http.get(
        _cm_path(namespace),
        params={"limit": 10, "labelSelector": "suite=snapshot", "continue": first["metadata"]["continue"]},
    ).json()
    assert [i["metadata"]["name"] for i in rest["items"]] == ["snap-2", "snap-3"]
    assert "data" not in rest["items"][0] or rest["items"][0]["data"] in ({}, None)
    assert not rest["metadata"].get("continue")


def test_continue_token_older_than_the_history_is_410(http: httpx.Client, namespace: str) -> None:
    for i in range(3):
        _create(http, _cm_path(namespace), _configmap(f"old-{i}", {"suite": "expired"}))
    first = http.get(_cm_path(namespace), params={"limit": 1, "labelSelector": "suite=expired"}).json()
    http.patch(_cm_path(namespace, "old-0"), json={"data": {"k": "v"}}, headers=MERGE).raise_for_status()
    assert http.post("/_sandbox/compact").status_code == 200
    response = http.get(
        _cm_path(namespace),
        params={"limit": 1, "labelSelector": "suite=expired", "continue": first["metadata"]["continue"]},
    )
    _assert_status(response, 410, "Expired")

    exact = http.get(
        _cm_path(namespace),
        params={"resourceVersion": first["metadata"]["resourceVersion"], "resourceVersionMatch": "Exact"},
    )
    _assert_status(exact, 410, "Expired")


def test_label_selectors_equality_and_set_based(http: httpx.Client, namespace: str) -> None:
    objects = {
        "a": {"suite": "sel", "tier": "web", "env": "prod"},
        "b": {"suite": "sel", "tier": "db", "env": "prod"},
        "c": {"suite": "sel", "tier": "web"},
        "d": {"suite": "sel"},
    }
    for name, labels in objects.items():
        _create(http, _cm_path(namespace), _configmap(name, labels))

    cases = {
        "suite=sel,tier=web": ["a", "c"],
        "suite=sel,tier==web": ["a", "c"],
        "suite=sel,tier!=web": ["b", "d"],
        "suite=sel,tier in (web,db)": ["a", "b", "c"],
        "suite=sel,tier notin (web)": ["b", "d"],
        "suite=sel,env": ["a", "b"],
        "suite=sel,!env": ["c", "d"],
        "suite=sel,env=prod,tier=db": ["b"],
        "suite=other": [],
    }
    for selector, expected in cases.items():
        response = http.get(_cm_path(namespace), params={"labelSelector": selector})
        assert response.status_code == 200, f"{selector}: {response.text}"
        got = sorted(item["metadata"]["name"] for item in response.json()["items"])
        assert got == expected, f"labelSelector={selector!r}"

    # The same selectors work on the cluster-wide collection.
    everywhere = http.get("/api/v1/configmaps", params={"labelSelector": "suite=sel,!env"}).json()
    assert everywhere["kind"] == "ConfigMapList"
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]) == [
        (namespace, "c"),
        (namespace, "d"),
    ]


def test_invalid_label_selector_is_400(http: httpx.Client, namespace: str) -> None:
    response = http.get(_cm_path(namespace), params={"labelSelector": "tier in (web"})
    _assert_status(response, 400, "BadRequest")


def test_field_selector_on_metadata_name(http: httpx.Client, namespace: str, widgets: str) -> None:
    for name in ("x", "y", "z"):
        _create(http, _cm_path(namespace), _configmap(name, {"suite": "fields"}))
    exact = http.get(_cm_path(namespace), params={"fieldSelector": "metadata.name=y"}).json()
    assert [i["metadata"]["name"] for i in exact["items"]] == ["y"]
    others = http.get(
        _cm_path(namespace), params={"fieldSelector": "metadata.name!=y", "labelSelector": "suite=fields"}
    ).json()
    assert sorted(i["metadata"]["name"] for i in others["items"]) == ["x", "z"]

    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    for name in ("p", "q"):
        _create(
            http,
            path,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "metadata": {"name": name},
                "spec": {"size": 1},
            },
        )
    custom = http.get(path, params={"fieldSelector": "metadata.name=q"}).json()
    assert [i["metadata"]["name"] for i in custom["items"]] == ["q"]
    # Custom resources support only metadata.name and metadata.namespace as field selectors.
    unsupported = http.get(path, params={"fieldSelector": "spec.size=1"})
    _assert_status(unsupported, 400, "BadRequest")


# ----------------------------------------------------------------------------------------------
# Patch flavours


def test_merge_patch_replaces_lists_and_null_deletes(http: httpx.Client, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    _create(http, path, _deployment("merge"))
    patch = {
        "metadata": {"labels": {"tier": None, "team": "core"}},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "example.invalid/b:2"}]}}},
    }
    response = http.patch(f"{path}/merge", json=patch, headers=MERGE)
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["metadata"]["labels"] == {"team": "core"}
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("b", "example.invalid/b:2")]


def test_strategic_merge_patch_merges_containers_by_name(http: httpx.Client, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    _create(http, path, _deployment("smp"))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "example.invalid/b:2"}]}}}}
    response = http.patch(f"{path}/smp", json=patch, headers=STRATEGIC)
    assert response.status_code == 200, response.text
    containers = response.json()["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [
        ("a", "example.invalid/a:1"),
        ("b", "example.invalid/b:2"),
    ]

    delete = {"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}}}
    response = http.patch(f"{path}/smp", json=delete, headers=STRATEGIC)
    assert response.status_code == 200, response.text
    containers = response.json()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["b"]


def test_json_patch_applies_operations_and_a_failing_test_op_is_422(
    http: httpx.Client, namespace: str
) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    _create(http, path, _deployment("jp"))

    failing = [
        {"op": "test", "path": "/metadata/labels/tier", "value": "db"},
        {"op": "replace", "path": "/metadata/labels/tier", "value": "cache"},
    ]
    response = http.patch(f"{path}/jp", json=failing, headers=JSON_PATCH)
    assert response.status_code == 422, response.text
    assert response.json()["kind"] == "Status"
    unchanged = http.get(f"{path}/jp").json()
    assert unchanged["metadata"]["labels"] == {"tier": "web"}
    assert unchanged["metadata"]["generation"] == 1

    passing = [
        {"op": "test", "path": "/metadata/labels/tier", "value": "web"},
        {"op": "replace", "path": "/metadata/labels/tier", "value": "cache"},
        {
            "op": "add",
            "path": "/spec/template/spec/containers/-",
            "value": {"name": "c", "image": "example.invalid/c:1"},
        },
        {"op": "remove", "path": "/spec/template/spec/containers/0"},
    ]
    response = http.patch(f"{path}/jp", json=passing, headers=JSON_PATCH)
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["metadata"]["labels"] == {"tier": "cache"}
    assert [c["name"] for c in patched["spec"]["template"]["spec"]["containers"]] == ["b", "c"]


def test_custom_resource_takes_merge_and_json_patch_but_strategic_merge_is_415(
    http: httpx.Client, namespace: str, widgets: str
) -> None:
    path = f"{widgets}/namespaces/{namespace}/{PLURAL}"
    _create(
        http,
        path,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": "p"},
            "spec": {"size": 1, "items": ["x", "y"]},
        },
    )
    merged = http.patch(f"{path}/p", json={"spec": {"items": ["z"]}}, headers=MERGE)
    assert merged.status_code == 200, merged.text
    assert merged.json()["spec"] == {"size": 1, "items": ["z"]}

    jp = http.patch(
        f"{path}/p", json=[{"op": "replace", "path": "/spec/size", "value": 4}], headers=JSON_PATCH
    )
    assert jp.status_code == 200, jp.text
    assert jp.json()["spec"]["size"] == 4

    smp = http.patch(f"{path}/p", json={"spec": {"size": 9}}, headers=STRATEGIC)
    _assert_status(smp, 415, "UnsupportedMediaType")
    assert http.get(f"{path}/p").json()["spec"]["size"] == 4


# ----------------------------------------------------------------------------------------------
# dryRun


def test_dry_run_all_persists_nothing(http: httpx.Client, namespace: str) -> None:
    created = http.post(_cm_path(namespace), params={"dryRun": "All"}, json=_configmap("dry", a="1"))
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["name"] == "dry"
    assert http.get(_cm_path(namespace, "dry")).status_code == 404
    assert "dry" not in [i["metadata"]["name"] for i in http.get(_cm_path(namespace)).json()["items"]]

    real = _create(http, _cm_path(namespace), _configmap("dry", a="1"))
    rv = real["metadata"]["resourceVersion"]

    put = http.put(_cm_path(namespace, "dry"), params={"dryRun": "All"}, json={**real, "data": {"a": "2"}})
    assert put.status_code == 200, put.text
    assert put.json()["data"] == {"a": "2"}
    patch = http.patch(
        _cm_path(namespace, "dry"), params={"dryRun": "All"}, json={"data": {"a": "3"}}, headers=MERGE
    )
    assert patch.status_code == 200, patch.text
    assert patch.json()["data"] == {"a": "3"}
    deleted = http.delete(_cm_path(namespace, "dry"), params={"dryRun": "All"})
    assert deleted.status_code == 200, deleted.text

    current = http.get(_cm_path(namespace, "dry"))
    assert current.status_code == 200
    assert current.json()["data"] == {"a": "1"}
    assert current.json()["metadata"]["resourceVersion"] == rv


def test_dry_run_delete_collection_persists_nothing(http: httpx.Client, namespace: str) -> None:
    for name in ("keep-1", "keep-2"):
        _create(http, _cm_path(namespace), _configmap(name, {"suite": "drycollection"}))
    response = http.delete(
        _cm_path(namespace), params={"dryRun": "All", "labelSelector": "suite=drycollection"}
    )
    assert response.status_code == 200, response.text
    remaining = http.get(_cm_path(namespace), params={"labelSelector": "suite=drycollection"}).json()["items"]
    assert sorted(i["metadata"]["name"] for i in remaining) == ["keep-1", "keep-2"]
