"""Fidelity of deletion: finalizers, garbage collection, propagation policies, namespaces, preconditions.

As documented for kube-apiserver and the garbage collector: an object with finalizers gets a
``deletionTimestamp`` and stays until they are removed (and no new finalizer may be added then);
``Background`` deletion removes the owner at once and collects its dependents; ``Foreground`` keeps
the owner, with the ``foregroundDeletion`` finalizer, until dependents with ``blockOwnerDeletion`` are
gone; ``Orphan`` removes the owner and strips its ownerReference from the dependents; deleting a
namespace removes its content and then the namespace; delete preconditions that do not hold are 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from tests.support import wait_for

JSON = dict[str, Any]

MERGE = {"Content-Type": "application/merge-patch+json"}
HOLD = "fidelity.test.io/hold"


def _cm_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _owner_ref(owner: JSON, block: bool = False) -> JSON:
    ref: JSON = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def _create(
    http: httpx.Client,
    namespace: str,
    name: str,
    *,
    owners: list[JSON] | None = None,
    finalizers: list[str] | None = None,
) -> JSON:
    meta: JSON = {"name": name}
    if owners:
        meta["ownerReferences"] = owners
    if finalizers:
        meta["finalizers"] = finalizers
    response = http.post(
        _cm_path(namespace), json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}
    )
    assert response.status_code == 201, response.text
    result: JSON = response.json()
    return result


def _get(http: httpx.Client, namespace: str, name: str) -> JSON | None:
    response = http.get(_cm_path(namespace, name))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    result: JSON = response.json()
    return result


def _gone(http: httpx.Client, namespace: str, *names: str) -> bool:
    return all(_get(http, namespace, name) is None for name in names)


def _delete(http: httpx.Client, namespace: str, name: str, policy: str | None = None) -> httpx.Response:
    params = {"propagationPolicy": policy} if policy else {}
    response = http.delete(_cm_path(namespace, name), params=params)
    assert response.status_code in (200, 202), response.text
    return response


def _release(http: httpx.Client, namespace: str, name: str) -> None:
    response = http.patch(_cm_path(namespace, name), json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert response.status_code == 200, response.text


# ----------------------------------------------------------------------------------------------
# Finalizers


def test_finalizer_keeps_the_object_with_a_deletion_timestamp_until_removed(
    http: httpx.Client, namespace: str
) -> None:
    _create(http, namespace, "held", finalizers=[HOLD])
    _delete(http, namespace, "held")

    held = _get(http, namespace, "held")
    assert held is not None, "an object with finalizers must outlive its DELETE"
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == [HOLD]

    # Other changes are still allowed while it is being deleted...
    labelled = http.patch(
        _cm_path(namespace, "held"), json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE
    )
    assert labelled.status_code == 200, labelled.text
    # ...but a second DELETE changes nothing and keeps the object.
    _delete(http, namespace, "held")
    again = _get(http, namespace, "held")
    assert again is not None
    assert again["metadata"]["deletionTimestamp"] == held["metadata"]["deletionTimestamp"]

    _release(http, namespace, "held")
    wait_for(lambda: _gone(http, namespace, "held"), timeout=10, what="the object to go once unfinalized")


def test_no_new_finalizer_can_be_added_once_deleting(http: httpx.Client, namespace: str) -> None:
    _create(http, namespace, "held", finalizers=[HOLD])
    _delete(http, namespace, "held")
    response = http.patch(
        _cm_path(namespace, "held"),
        json={"metadata": {"finalizers": [HOLD, "fidelity.test.io/other"]}},
        headers=MERGE,
    )
    assert response.status_code == 422, response.text
    assert "metadata.finalizers" in [c.get("field") for c in response.json()["details"]["causes"]]
    _release(http, namespace, "held")


# ----------------------------------------------------------------------------------------------
# Garbage collection and propagation policies


@pytest.mark.parametrize("policy", ["Background", None], ids=["background", "default"])
def test_background_deletion_collects_dependents(
    http: httpx.Client, namespace: str, policy: str | None
) -> None:
    owner = _create(http, namespace, "owner")
    other = _create(http, namespace, "other-owner")
    _create(http, namespace, "child-1", owners=[_owner_ref(owner)])
    _create(http, namespace, "child-2", owners=[_owner_ref(owner, block=True)])
    _create(http, namespace, "shared", owners=[_owner_ref(owner), _owner_ref(other)])

    _delete(http, namespace, "owner", policy)
    assert _get(http, namespace, "owner") is None, "Background deletion removes the owner at once"
    wait_for(
        lambda: _gone(http, namespace, "child-1", "child-2"),
        timeout=10,
        what="the dependents to be collected",
    )

    # A dependent with another live owner is kept, minus the reference to the deleted owner.
    def shared_lost_dangling_reference() -> bool:
        shared = _get(http, namespace, "shared")
        assert shared is not None, "a dependent with a live owner must not be collected"
        return [r["uid"] for r in shared["metadata"].get("ownerReferences", [])] == [other["metadata"]["uid"]]

    wait_for(shared_lost_dangling_reference, timeout=10, what="the dangling ownerReference to be removed")


def test_dependent_of_a_missing_owner_is_collected(http: httpx.Client, namespace: str) -> None:
    ghost = {"metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    _create(http, namespace, "orphaned", owners=[_owner_ref(ghost)])
    wait_for(
        lambda: _gone(http, namespace, "orphaned"), timeout=10, what="a dependent of a missing owner to go"
    )


def test_foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone(
    http: httpx.Client, namespace: str
) -> None:
    owner = _create(http, namespace, "owner")
    _create(http, namespace, "blocker", owners=[_owner_ref(owner, block=True)], finalizers=[HOLD])
    _create(http, namespace, "plain", owners=[_owner_ref(owner)])

    _delete(http, namespace, "owner", "Foreground")
    held = _get(http, namespace, "owner")
    assert held is not None, "Foreground deletion keeps the owner while dependents remain"
    assert held["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held["metadata"]["finalizers"]

    def blocker_is_being_deleted() -> bool:
        blocker = _get(http, namespace, "blocker")
        assert blocker is not None
        return bool(blocker["metadata"].get("deletionTimestamp"))

    wait_for(blocker_is_being_deleted, timeout=10, what="the blocking dependent to be deleted")
    wait_for(lambda: _gone(http, namespace, "plain"), timeout=10, what="the non-blocking dependent to go")
    still = _get(http, namespace, "owner")
    assert still is not None, "the owner must wait for its blockOwnerDeletion dependent"
    assert "foregroundDeletion" in still["metadata"]["finalizers"]

    _release(http, namespace, "blocker")
    wait_for(
        lambda: _gone(http, namespace, "blocker", "owner"),
        timeout=10,
        what="the owner to go once its blocking dependent is gone",
    )


def test_orphan_deletion_leaves_dependents_without_the_owner_reference(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str
) -> None:
    owner = _create(http, namespace, "owner")
    other = _create(http, namespace, "other-owner")
    _create(http, namespace, "child", owners=[_owner_ref(owner)])
    _create(http, namespace, "shared", owners=[_owner_ref(owner), _owner_ref(other)])

    core = kubernetes.client.CoreV1Api(api_client)
    core.delete_namespaced_config_map(
        "owner", namespace, body=kubernetes.client.V1DeleteOptions(propagation_policy="Orphan")
    )
    wait_for(lambda: _gone(http, namespace, "owner"), timeout=10, what="the orphaning owner to go")

    def references_stripped() -> bool:
        child = _get(http, namespace, "child")
        shared = _get(http, namespace, "shared")
        assert child is not None, "Orphan must not delete dependents"
        assert shared is not None, "Orphan must not delete dependents"
        return not child["metadata"].get("ownerReferences") and [
            r["uid"] for r in shared["metadata"].get("ownerReferences", [])
        ] == [other["metadata"]["uid"]]

    wait_for(
        references_stripped, timeout=10, what="the owner's references to be stripped from its dependents"
    )


def test_delete_collection_removes_only_the_selected_objects(http: httpx.Client, namespace: str) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        response = http.post(
            _cm_path(namespace),
            json={
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"tier": tier}},
            },
        )
        assert response.status_code == 201, response.text
    deleted = http.delete(_cm_path(namespace), params={"labelSelector": "tier=web"})
    assert deleted.status_code == 200, deleted.text
    wait_for(lambda: _gone(http, namespace, "a", "b"), timeout=10, what="the selected objects to go")
    assert _get(http, namespace, "c") is not None


# ----------------------------------------------------------------------------------------------
# Namespaces


@pytest.fixture
def own_namespace(http: httpx.Client) -> Iterator[str]:
    """A namespace this test deletes itself (the shared ``namespace`` fixture deletes its own at teardown)."""
    name = f"t-del-{uuid.uuid4().hex[:8]}"
    response = http.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert response.status_code == 201, response.text
    yield name
    http.patch(_cm_path(name, "held"), json={"metadata": {"finalizers": None}}, headers=MERGE)
    http.delete(f"/api/v1/namespaces/{name}")


def test_deleting_a_namespace_removes_its_content_and_then_the_namespace(
    http: httpx.Client, own_namespace: str
) -> None:
    ns = own_namespace
    _create(http, ns, "plain")
    _create(http, ns, "held", finalizers=[HOLD])
    secret = http.post(
        f"/api/v1/namespaces/{ns}/secrets",
        json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}},
    )
    assert secret.status_code == 201, secret.text

    deleted = http.delete(f"/api/v1/namespaces/{ns}")
    assert deleted.status_code in (200, 202), deleted.text

    def terminating() -> JSON | None:
        got = http.get(f"/api/v1/namespaces/{ns}")
        assert got.status_code == 200, "a namespace whose content has finalizers must stay Terminating"
        body: JSON = got.json()
        return body if body["status"].get("phase") == "Terminating" else None

    namespace_obj = wait_for(terminating, timeout=10, what="the namespace to be Terminating")
    assert namespace_obj["metadata"]["deletionTimestamp"]

    wait_for(
        lambda: (
            _gone(http, ns, "plain") and http.get(f"/api/v1/namespaces/{ns}/secrets/s").status_code == 404
        ),
        timeout=10,
        what="the namespace's content to be deleted",
    )
    held = _get(http, ns, "held")
    assert held is not None
    assert held["metadata"]["deletionTimestamp"]

    refused = http.post(
        _cm_path(ns), json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["reason"] == "Forbidden"

    _release(http, ns, "held")
    wait_for(
        lambda: http.get(f"/api/v1/namespaces/{ns}").status_code == 404,
        timeout=15,
        what="the namespace to go once empty",
    )
    listing = http.get(_cm_path(ns))
    assert listing.status_code == 200
    assert listing.json()["items"] == []


@pytest.mark.parametrize("name", ["default", "kube-system"])
def test_system_namespaces_cannot_be_deleted(http: httpx.Client, name: str) -> None:
    # Refused by admission even for a dry run, which keeps the shared sandbox intact if it is not.
    response = http.delete(f"/api/v1/namespaces/{name}", params={"dryRun": "All"})
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "Forbidden"


# ----------------------------------------------------------------------------------------------
# Preconditions


def test_delete_preconditions_that_do_not_hold_are_409(http: httpx.Client, namespace: str) -> None:
    created = _create(http, namespace, "guarded")
    uid = created["metadata"]["uid"]
    rv = created["metadata"]["resourceVersion"]

    wrong_uid = http.request(
        "DELETE",
        _cm_path(namespace, "guarded"),
        json={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": str(uuid.uuid4())}},
    )
    assert wrong_uid.status_code == 409, wrong_uid.text
    assert wrong_uid.json()["kind"] == "Status"
    assert wrong_uid.json()["reason"] == "Conflict"
    assert _get(http, namespace, "guarded") is not None

    http.patch(_cm_path(namespace, "guarded"), json={"data": {"k": "v"}}, headers=MERGE).raise_for_status()
    stale_rv = http.request(
        "DELETE",
        _cm_path(namespace, "guarded"),
        json={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"resourceVersion": rv}},
    )
    assert stale_rv.status_code == 409, stale_rv.text
    assert _get(http, namespace, "guarded") is not None

    right = http.request(
        "DELETE",
        _cm_path(namespace, "guarded"),
        json={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}},
    )
    assert right.status_code == 200, right.text
    assert _get(http, namespace, "guarded") is None


def test_delete_of_a_missing_object_is_404(http: httpx.Client, namespace: str) -> None:
    response = http.delete(_cm_path(namespace, "never-was"))
    assert response.status_code == 404, response.text
    assert response.json()["reason"] == "NotFound"
