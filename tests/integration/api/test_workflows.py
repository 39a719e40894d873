"""Workflow CRUD over HTTP: list filters, sort and paging, partial updates, duplicate, status, delete."""

from __future__ import annotations

from tests.integration.api.conftest import Stack, workflow_body


def test_list_filters_sorts_and_pages(stack: Stack) -> None:
    with stack.client(stack.key("lister")) as api:
        ids = []
        for index, tag in enumerate(["red", "red", "blue"]):
            answer = api.post("/api/v1/workflows", json=workflow_body(f"listed {index} zebra", tags=[tag]))
            ids.append(answer.json()["workflowId"])
        api.put(f"/api/v1/workflows/{ids[2]}/status", json={"status": "paused"})

        red = api.get("/api/v1/workflows", params={"tag": "red"}).json()
        assert {w["id"] for w in red["workflows"]} == set(ids[:2])
        assert red["count"] == 2

        paused = api.get("/api/v1/workflows", params={"status": "paused"}).json()["workflows"]
        assert [w["id"] for w in paused] == [ids[2]]

        found = api.get("/api/v1/workflows", params={"search": "ZEBRA", "sort": "name:asc"}).json()
        assert [w["name"] for w in found["workflows"]] == [
            "listed 0 zebra",
            "listed 1 zebra",
            "listed 2 zebra",
        ]

        page = api.get(
            "/api/v1/workflows", params={"search": "zebra", "sort": "name:desc", "limit": 2, "offset": 1}
        )
        body = page.json()
        assert (body["count"], body["limit"], body["offset"]) == (3, 2, 1)
        assert [w["name"] for w in body["workflows"]] == ["listed 1 zebra", "listed 0 zebra"]

        bad = api.get("/api/v1/workflows", params={"limit": 0, "sort": "colour"})
        assert bad.status_code == 422
        assert {d["path"] for d in bad.json()["error"]["details"]} == {"query.limit", "query.sort"}


def test_update_duplicate_status_and_delete(stack: Stack) -> None:
    with stack.client(stack.key("editor")) as api:
        workflow_id = api.post("/api/v1/workflows", json=workflow_body("Editable")).json()["workflowId"]
        updated = api.put(
            f"/api/v1/workflows/{workflow_id}", json={"description": "new words", "tags": ["x"]}
        )
        assert updated.status_code == 200
        body = updated.json()
        assert (body["description"], body["tags"], body["name"]) == ("new words", ["x"], "Editable")
        assert len(body["nodes"]) == 2  # untouched fields stay

        bad = api.put(
            f"/api/v1/workflows/{workflow_id}", json={"nodes": [{"id": "Bad Id", "type": "transform"}]}
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["path"].startswith("body.nodes[0]")
        assert api.get(f"/api/v1/workflows/{workflow_id}").json()["description"] == "new words"

        copy = api.post(f"/api/v1/workflows/{workflow_id}/duplicate")
        assert copy.status_code == 201
        duplicate = api.get(f"/api/v1/workflows/{copy.json()['workflowId']}").json()
        assert duplicate["name"] == "Editable (copy)"
        assert duplicate["status"] == "draft"
        assert duplicate["owner"] == "editor"
        assert duplicate["nodes"] == body["nodes"]

        changed = api.put(f"/api/v1/workflows/{workflow_id}/status", json={"status": "archived"})
        assert changed.json() == {"workflowId": workflow_id, "status": "archived", "previousStatus": "draft"}
        assert api.put(f"/api/v1/workflows/{workflow_id}/status", json={"status": "gone"}).status_code == 422

        assert api.delete(f"/api/v1/workflows/{workflow_id}").status_code == 204
        missing = api.get(f"/api/v1/workflows/{workflow_id}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert api.get("/api/v1/workflows/not-an-id").status_code == 404


def test_validate_reports_errors_with_paths_and_previews_the_schedule(stack: Stack) -> None:
    with stack.client(stack.key("validator")) as api:
        schedule = {"type": "cron", "value": "*/15 * * * *", "timezone": "Europe/Paris"}
        workflow_id = api.post("/api/v1/workflows", json=workflow_body("Checked", schedule=schedule)).json()[
            "workflowId"
        ]
        result = api.post(f"/api/v1/workflows/{workflow_id}/validate").json()
        assert result["valid"] is True
        assert (result["nodeCount"], result["connectionCount"]) == (2, 1)
        preview = result["schedule"]
        assert preview["active"] is False
        assert preview["reason"] == "The workflow is not deployed."
        assert len(preview["nextFireTimes"]) == 5
        assert all(t.endswith("Z") and t[14:16] in ("00", "15", "30", "45") for t in preview["nextFireTimes"])

        draft = {"connections": [{"id": "c1", "source": "start", "target": "nowhere"}]}
        broken = api.post(f"/api/v1/workflows/{workflow_id}/validate", json=draft).json()
        assert broken["valid"] is False
        assert any(e["path"].startswith("spec.connections[0]") for e in broken["errors"])
        reset = api.post(
            f"/api/v1/workflows/{workflow_id}/validate", json={"settings": None, "schedule": None}
        )
        assert reset.status_code == 200, reset.text
        assert (reset.json()["valid"], reset.json()["schedule"]) == (True, None)


def test_app_id_is_the_app_id_label(stack: Stack) -> None:
    import httpx

    with stack.client(stack.key("app-owner")) as api:
        workflow_id = api.post(
            "/api/v1/workflows", json=workflow_body("Billing hook", appId="billing")
        ).json()["workflowId"]
        assert api.get(f"/api/v1/workflows/{workflow_id}").json()["appId"] == "billing"
        with httpx.Client(base_url=stack.sandbox.url) as kube:
            path = f"/apis/tideflow.io/v1alpha1/namespaces/{stack.org}/workflows/{workflow_id[3:]}"
            assert kube.get(path).json()["metadata"]["labels"]["tideflow.io/app-id"] == "billing"
            moved = api.put(f"/api/v1/workflows/{workflow_id}", json={"appId": "invoices"})
            assert moved.json()["appId"] == "invoices"
            bad = api.put(f"/api/v1/workflows/{workflow_id}", json={"appId": "not a label!"})
            assert bad.status_code == 422
            assert bad.json()["error"]["details"][0]["path"] == "body.appId"
            cleared = api.put(f"/api/v1/workflows/{workflow_id}", json={"appId": None})
            assert cleared.json()["appId"] is None
            assert "tideflow.io/app-id" not in kube.get(path).json()["metadata"].get("labels", {})
