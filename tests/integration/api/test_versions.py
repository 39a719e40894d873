"""Versions over HTTP: snapshot, list, read, restore and delete, and every bad request a clear 4xx.

Versions are immutable ConfigMaps owned by their Workflow; the tests check that on the sandbox too
(``immutable`` refuses a change, the garbage collector removes them with the workflow).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.integration.api.conftest import Stack, workflow_body
from tests.support import wait_for

JSON = dict[str, Any]


def _create(client: httpx.Client, **fields: Any) -> str:
    answer = client.post("/api/v1/workflows", json=workflow_body(**fields))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowId"])


def _version_maps(stack: Stack, workflow_id: str) -> list[JSON]:
    name = workflow_id.removeprefix("wf_")
    with httpx.Client(base_url=stack.sandbox.url) as kube:
        answer = kube.get(
            f"/api/v1/namespaces/{stack.org}/configmaps",
            params={"labelSelector": f"tideflow.io/version-of={name}"},
        )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def _resource(stack: Stack, workflow_id: str) -> JSON:
    name = workflow_id.removeprefix("wf_")
    with httpx.Client(base_url=stack.sandbox.url) as kube:
        answer = kube.get(f"/apis/tideflow.io/v1alpha1/namespaces/{stack.org}/workflows/{name}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_snapshot_list_read_and_restore(stack: Stack) -> None:
    with stack.client(stack.key("vera")) as vera:
        workflow_id = _create(
            vera,
            name="Versioned",
            description="first",
            schedule={"type": "interval", "value": "5 minutes"},
            sharedWith=["someone"],
        )
        original = vera.get(f"/api/v1/workflows/{workflow_id}").json()

        v1 = vera.post(
            f"/api/v1/workflows/{workflow_id}/versions",
            json={"versionTag": "v1", "description": "the first cut"},
        )
        assert v1.status_code == 201, v1.text
        assert v1.json() | {"createdAt": None, "workflowGeneration": None} == {
            "workflowId": workflow_id,
            "versionTag": "v1",
            "description": "the first cut",
            "createdBy": "vera",
            "createdAt": None,
            "workflowGeneration": None,
            "nodeCount": 2,
            "connectionCount": 1,
        }
        assert v1.json()["createdAt"].endswith("Z")

        changed_nodes = [*original["nodes"], {"id": "note", "type": "log", "config": {"message": "hi"}}]
        edit = vera.put(
            f"/api/v1/workflows/{workflow_id}",
            json={
                "name": "Versioned, edited",
                "description": "second",
                "nodes": changed_nodes,
                "schedule": None,
                "isPublic": True,
                "tags": ["edited"],
            },
        )
        assert edit.status_code == 200, edit.text
        v2 = vera.post(f"/api/v1/workflows/{workflow_id}/versions", json={"versionTag": "2.0.0-rc_1"})
        assert v2.status_code == 201, v2.text
        assert v2.json()["nodeCount"] == 3
        assert v2.json()["description"] is None

        listed = vera.get(f"/api/v1/workflows/{workflow_id}/versions").json()
        assert listed["count"] == 2
        assert [v["versionTag"] for v in listed["versions"]] == ["2.0.0-rc_1", "v1"]

        detail = vera.get(f"/api/v1/workflows/{workflow_id}/versions/v1").json()
        assert detail["spec"]["nodes"] == original["nodes"]
        assert detail["spec"]["schedule"] == original["schedule"]
        assert detail["spec"]["displayName"] == "Versioned"
        assert set(detail["spec"]) == {
            "displayName",
            "description",
            "nodes",
            "connections",
            "settings",
            "schedule",
        }

        restored = vera.post(f"/api/v1/workflows/{workflow_id}/versions/v1/restore")
        assert restored.status_code == 200, restored.text
        body = restored.json()
        assert (body["restoredVersion"], body["changed"]) == ("v1", True)
        now = vera.get(f"/api/v1/workflows/{workflow_id}").json()
        assert body["workflow"]["nodes"] == now["nodes"]
        # The definition is back; access, tags and deployment are as they were just before the restore.
        for field in ("name", "description", "nodes", "connections", "settings", "schedule"):
            assert now[field] == original[field], field
        assert (now["isPublic"], now["tags"], now["sharedWith"], now["owner"]) == (
            True,
            ["edited"],
            ["someone"],
            "vera",
        )
        # Restoring what is already current changes nothing (the operator's status writes do not count).
        generation = _resource(stack, workflow_id)["metadata"]["generation"]
        again = vera.post(f"/api/v1/workflows/{workflow_id}/versions/v1/restore")
        assert again.status_code == 200, again.text
        assert again.json()["changed"] is False
        assert _resource(stack, workflow_id)["metadata"]["generation"] == generation
        # And the later version still brings the edit back.
        forward = vera.post(f"/api/v1/workflows/{workflow_id}/versions/2.0.0-rc_1/restore").json()
        assert forward["changed"] is True
        assert [n["id"] for n in forward["workflow"]["nodes"]] == ["start", "echo", "note"]
        assert forward["workflow"]["schedule"] is None


def test_a_version_is_an_immutable_configmap_owned_by_the_workflow(stack: Stack) -> None:
    with stack.client(stack.key("olga")) as olga:
        workflow_id = _create(olga, name="Owned versions")
        for tag in ("a", "b"):
            assert (
                olga.post(f"/api/v1/workflows/{workflow_id}/versions", json={"versionTag": tag}).status_code
                == 201
            )
        uid = _resource(stack, workflow_id)["metadata"]["uid"]
        maps = _version_maps(stack, workflow_id)
        assert sorted(m["metadata"]["labels"]["tideflow.io/version"] for m in maps) == ["a", "b"]
        for config_map in maps:
            assert config_map["immutable"] is True
            assert [ref["uid"] for ref in config_map["metadata"]["ownerReferences"]] == [uid]
            assert "." in config_map["metadata"]["name"]
            assert config_map["metadata"]["annotations"]["tideflow.io/created-by"] == "olga"

        # The API server refuses to change a version (the sandbox honours `immutable` as Kubernetes does).
        tampered = copy.deepcopy(maps[0])
        tampered["data"]["spec.json"] = "{}"
        with httpx.Client(base_url=stack.sandbox.url) as kube:
            refused = kube.put(
                f"/api/v1/namespaces/{stack.org}/configmaps/{tampered['metadata']['name']}", json=tampered
            )
        assert refused.status_code == 422, refused.text
        assert olga.get(f"/api/v1/workflows/{workflow_id}/versions/a").json()["spec"]["nodes"]

        # Deleting a version leaves the workflow alone, and frees the tag.
        generation_before = _resource(stack, workflow_id)["metadata"]["generation"]
        assert olga.delete(f"/api/v1/workflows/{workflow_id}/versions/a").status_code == 204
        assert [
            v["versionTag"] for v in olga.get(f"/api/v1/workflows/{workflow_id}/versions").json()["versions"]
        ] == ["b"]
        assert _resource(stack, workflow_id)["metadata"]["generation"] == generation_before
        assert (
            olga.post(f"/api/v1/workflows/{workflow_id}/versions", json={"versionTag": "a"}).status_code
            == 201
        )

        # The versions go with the workflow (owner references, garbage collector).
        assert olga.delete(f"/api/v1/workflows/{workflow_id}").status_code == 204
        wait_for(lambda: not _version_maps(stack, workflow_id), timeout=30, what="versions to be collected")


def test_bad_version_requests_are_clear_4xx_that_change_nothing(stack: Stack) -> None:
    owner = stack.client(stack.key("nina"))
    shared = stack.client(stack.key("sam"))
    stranger = stack.client(stack.key("tess"))
    reader = stack.client(stack.key("nina", ("workflows:read",)))
    with owner, shared, stranger, reader:
        workflow_id = _create(owner, name="Guarded", sharedWith=["sam"])
        url = f"/api/v1/workflows/{workflow_id}/versions"
        first = owner.post(url, json={"versionTag": "v1", "description": "original"})
        assert first.status_code == 201, first.text
        generation = _resource(stack, workflow_id)["metadata"]["generation"]
        maps_before = _version_maps(stack, workflow_id)

        duplicate = owner.post(url, json={"versionTag": "v1", "description": "again"})
        assert duplicate.status_code == 409, duplicate.text
        assert duplicate.json()["error"]["code"] == "conflict"
        assert "v1" in duplicate.json()["error"]["message"]
        assert duplicate.json()["error"]["details"][0]["path"] == "body.versionTag"

        for body, path in (
            ({}, "body.versionTag"),
            ({"versionTag": "has space"}, "body.versionTag"),
            ({"versionTag": "-v2"}, "body.versionTag"),
            ({"versionTag": "x" * 64}, "body.versionTag"),
            ({"versionTag": "v2", "description": "d" * 1025}, "body.description"),
            ({"versionTag": "v2", "spec": {}}, "body.spec"),
        ):
            answer = owner.post(url, json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["details"][0]["path"] == path, answer.text

        missing = owner.post(f"{url}/v9/restore")
        assert missing.status_code == 404, missing.text
        assert "v9" in missing.json()["error"]["message"]
        assert owner.get(f"{url}/v9").status_code == 404
        assert owner.delete(f"{url}/v9").status_code == 404
        assert owner.post(f"{url}/{'x' * 64}/restore").status_code == 422
        assert (
            owner.post(
                "/api/v1/workflows/wf_no-such-workflow/versions", json={"versionTag": "v1"}
            ).status_code
            == 404
        )

        # A user it is shared with may read versions but not make, restore or delete them.
        assert shared.get(url).json()["count"] == 1
        assert shared.get(f"{url}/v1").status_code == 200
        assert shared.post(url, json={"versionTag": "sams"}).status_code == 403
        assert shared.post(f"{url}/v1/restore").status_code == 403
        assert shared.delete(f"{url}/v1").status_code == 403
        # Anyone else does not see the workflow at all; a read-only key cannot write.
        for answer in (
            stranger.get(url),
            stranger.post(url, json={"versionTag": "t"}),
            stranger.post(f"{url}/v1/restore"),
        ):
            assert answer.status_code == 404, answer.text
        assert reader.post(url, json={"versionTag": "r"}).status_code == 403
        assert reader.post(f"{url}/v1/restore").status_code == 403

        assert _resource(stack, workflow_id)["metadata"]["generation"] == generation
        assert _version_maps(stack, workflow_id) == maps_before
        assert owner.get(f"{url}/v1").json()["description"] == "original"
