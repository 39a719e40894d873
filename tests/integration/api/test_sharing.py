"""Sharing, templates, stats and discovery over HTTP, with every bad request a clear 4xx.

Sharing is checked where it matters: in what the other user can list and read. Discovery deploys a
labelled workflow and checks the Deployment it names exists on the sandbox.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.integration.api.conftest import Stack, workflow_body
from tests.support import wait_for

JSON = dict[str, Any]
BUILTIN = {"tpl_webhook-to-http", "tpl_scheduled-report", "tpl_approval-flow", "tpl_health-check"}


def _create(client: httpx.Client, **fields: Any) -> str:
    answer = client.post("/api/v1/workflows", json=workflow_body(**fields))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowId"])


def _listed(client: httpx.Client) -> set[str]:
    answer = client.get("/api/v1/workflows", params={"limit": 100})
    assert answer.status_code == 200, answer.text
    return {w["id"] for w in answer.json()["workflows"]}


def _generation(stack: Stack, workflow_id: str) -> int:
    """metadata.generation: what a spec change bumps (the operator's status writes do not)."""
    name = workflow_id.removeprefix("wf_")
    with httpx.Client(base_url=stack.sandbox.url) as kube:
        answer = kube.get(f"/apis/tideflow.io/v1alpha1/namespaces/{stack.org}/workflows/{name}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["metadata"]["generation"])


def test_sharing_shows_in_what_the_user_can_list_and_read(stack: Stack) -> None:
    alice = stack.client(stack.key("share-alice"))
    bob = stack.client(stack.key("share-bob"))
    with alice, bob:
        workflow_id = _create(alice, name="To share")
        url = f"/api/v1/workflows/{workflow_id}/share"
        assert alice.get(url).json() == {
            "workflowId": workflow_id,
            "owner": "share-alice",
            "sharedWith": [],
            "isPublic": False,
        }
        assert workflow_id not in _listed(bob)
        assert bob.get(f"/api/v1/workflows/{workflow_id}").status_code == 404

        shared = alice.post(url, json={"userId": "share-bob"})
        assert shared.status_code == 200, shared.text
        assert shared.json()["sharedWith"] == ["share-bob"]
        assert workflow_id in _listed(bob)
        assert bob.get(f"/api/v1/workflows/{workflow_id}").status_code == 200
        assert bob.get(url).json()["sharedWith"] == ["share-bob"]
        # Sharing twice is the same as once.
        assert alice.post(url, json={"user_id": "share-bob"}).json()["sharedWith"] == ["share-bob"]

        unshared = alice.delete(f"{url}/share-bob")
        assert unshared.status_code == 200, unshared.text
        assert unshared.json()["sharedWith"] == []
        assert workflow_id not in _listed(bob)
        assert bob.get(f"/api/v1/workflows/{workflow_id}").status_code == 404

        # An admin may share anyone's workflow.
        with stack.admin() as admin:
            assert admin.post(url, json={"userId": "share-bob"}).json()["sharedWith"] == ["share-bob"]
        assert workflow_id in _listed(bob)


def test_bad_share_requests_are_clear_4xx_that_change_nothing(stack: Stack) -> None:
    owner = stack.client(stack.key("share-owen"))
    friend = stack.client(stack.key("share-fred"))
    other = stack.client(stack.key("share-olly"))
    reader = stack.client(stack.key("share-owen", ("workflows:read",)))
    stack.key("share-elsewhere", org=stack.other)  # a user of the other organization only
    with owner, friend, other, reader:
        workflow_id = _create(owner, name="Share guard", sharedWith=["share-fred"])
        url = f"/api/v1/workflows/{workflow_id}/share"
        before = _generation(stack, workflow_id)

        for user in ("share-nobody", "share-elsewhere"):
            outsider = owner.post(url, json={"userId": user})
            assert outsider.status_code == 422, outsider.text
            error = outsider.json()["error"]
            assert error["code"] == "user_not_in_organization"
            assert user in error["message"]
            assert error["details"][0]["path"] == "body.userId"
        self_share = owner.post(url, json={"userId": "share-owen"})
        assert self_share.status_code == 422, self_share.text
        assert "owns" in self_share.json()["error"]["message"]
        for body, path in (
            ({}, "body.userId"),
            ({"userId": ""}, "body.userId"),
            ({"userId": "bad name"}, "body.userId"),
            ({"userId": "share-olly", "role": "editor"}, "body.role"),
        ):
            answer = owner.post(url, json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["error"]["details"][0]["path"] == path

        # Only the owner (or an admin) changes sharing; others see 403 (if they can read it) or 404.
        assert friend.post(url, json={"userId": "share-olly"}).status_code == 403
        assert friend.delete(f"{url}/share-fred").status_code == 403
        assert other.post(url, json={"userId": "share-olly"}).status_code == 404
        assert other.get(url).status_code == 404
        assert reader.post(url, json={"userId": "share-olly"}).status_code == 403
        not_shared = owner.delete(f"{url}/share-olly")
        assert not_shared.status_code == 404, not_shared.text
        assert "not shared" in not_shared.json()["error"]["message"]
        assert (
            owner.post("/api/v1/workflows/wf_missing-one/share", json={"userId": "share-olly"}).status_code
            == 404
        )

        assert _generation(stack, workflow_id) == before
        assert owner.get(url).json()["sharedWith"] == ["share-fred"]


def test_templates_are_built_in_plus_visible_workflow_templates(stack: Stack) -> None:
    tara = stack.client(stack.key("tpl-tara"))
    uma = stack.client(stack.key("tpl-uma"))
    with tara, uma:
        private = _create(tara, name="Tara private template", isTemplate=True, tags=["mine"])
        public = _create(tara, name="Tara public template", isTemplate=True, isPublic=True)
        plain = _create(tara, name="Not a template", isPublic=True)

        listed = tara.get("/api/v1/workflows/templates")
        assert listed.status_code == 200, listed.text
        by_id = {t["id"]: t for t in listed.json()["templates"]}
        assert listed.json()["count"] == len(by_id)
        assert set(by_id) >= BUILTIN
        assert {private, public} <= set(by_id)
        assert plain not in by_id
        assert {by_id[t]["source"] for t in BUILTIN} == {"builtin"}
        assert by_id[private]["source"] == "workflow"
        assert by_id[private]["owner"] == "tpl-tara"
        assert by_id["tpl_webhook-to-http"]["triggerTypes"] == ["webhook_trigger"]
        assert by_id["tpl_scheduled-report"]["schedule"]["type"] == "weekly"

        seen_by_uma = {t["id"] for t in uma.get("/api/v1/workflows/templates").json()["templates"]}
        assert public in seen_by_uma
        assert private not in seen_by_uma
        tagged = tara.get("/api/v1/workflows/templates", params={"tag": "mine"}).json()
        assert [t["id"] for t in tagged["templates"]] == [private]

        made = uma.post(
            "/api/v1/workflows/templates/tpl_webhook-to-http/instantiate", json={"name": "Uma's hook"}
        )
        assert made.status_code == 201, made.text
        workflow = uma.get(f"/api/v1/workflows/{made.json()['workflowId']}").json()
        assert (workflow["name"], workflow["owner"], workflow["status"]) == ("Uma's hook", "tpl-uma", "draft")
        assert (workflow["deployed"], workflow["isTemplate"]) == (False, False)
        assert workflow["nodes"] == by_id["tpl_webhook-to-http"]["nodes"]
        valid = uma.post(f"/api/v1/workflows/{made.json()['workflowId']}/validate").json()
        assert valid["valid"] is True, valid

        from_workflow = uma.post(f"/api/v1/workflows/templates/{public}/instantiate")
        assert from_workflow.status_code == 201, from_workflow.text
        copy = uma.get(f"/api/v1/workflows/{from_workflow.json()['workflowId']}").json()
        assert (copy["name"], copy["owner"]) == ("Tara public template", "tpl-uma")

        count = len(_listed(uma))
        for template_id, status in (
            ("tpl_no-such-template", 404),
            (private, 404),  # not visible to uma
            (plain, 404),  # visible, but not a template
            ("not-an-id", 404),
        ):
            answer = uma.post(f"/api/v1/workflows/templates/{template_id}/instantiate")
            assert answer.status_code == status, (template_id, answer.text)
        bad_body = uma.post("/api/v1/workflows/templates/tpl_approval-flow/instantiate", json={"nodes": []})
        assert bad_body.status_code == 422
        assert bad_body.json()["error"]["details"][0]["path"] == "body.nodes"
        with stack.client(stack.key("tpl-uma", ("workflows:read",))) as reader:
            assert reader.post("/api/v1/workflows/templates/tpl_approval-flow/instantiate").status_code == 403
        assert len(_listed(uma)) == count


def test_stats_count_what_the_caller_can_see(stack: Stack) -> None:
    with stack.client(stack.key("stats-sue")) as sue:
        ids = [_create(sue, name=f"Stats {n}") for n in range(3)]
        assert sue.put(f"/api/v1/workflows/{ids[1]}/status", json={"status": "paused"}).status_code == 200
        assert sue.put(f"/api/v1/workflows/{ids[2]}/status", json={"status": "archived"}).status_code == 200
        run = sue.post(f"/api/v1/workflows/{ids[0]}/execute", json={"triggerInputs": {"who": "stats"}})
        assert run.status_code == 201, run.text

        stats = sue.get("/api/v1/workflows/stats")
        assert stats.status_code == 200, stats.text
        body = stats.json()
        listed = sue.get("/api/v1/workflows", params={"limit": 100}).json()["workflows"]
        assert (body["organization"], body["scope"], body["total"]) == (stack.org, "visible", len(listed))
        expected = Counter({"draft": 0, "active": 0, "paused": 0, "archived": 0})
        expected.update(w["status"] for w in listed)
        assert body["byStatus"] == dict(expected)
        assert body["byStatus"]["paused"] >= 1
        assert body["byStatus"]["archived"] >= 1
        assert body["deployed"] == sum(w["deployed"] for w in listed)
        assert set(body["byDeploymentStatus"]) == {"NotDeployed", "Starting", "Running", "Stopped", "Failed"}
        assert sum(body["byDeploymentStatus"].values()) == body["total"]
        assert body["running"] == body["byDeploymentStatus"]["Running"]
        runs = sum(sue.get(f"/api/v1/workflows/{w['id']}/executions").json()["count"] for w in listed)
        assert body["executions"]["total"] == runs >= 1
        assert sum(body["executions"]["byStatus"].values()) == runs

        # One more draft is one more in the totals.
        _create(sue, name="Stats 4")
        after = sue.get("/api/v1/workflows/stats").json()
        assert (after["total"], after["byStatus"]["draft"]) == (
            body["total"] + 1,
            body["byStatus"]["draft"] + 1,
        )

    with stack.admin() as admin:
        everything = admin.get("/api/v1/workflows/stats").json()
        assert everything["scope"] == "all"
        assert everything["total"] >= after["total"]
    with stack.client(stack.key("stats-sue", ("workflows:execute",))) as no_read:
        assert no_read.get("/api/v1/workflows/stats").status_code == 403


def _label(stack: Stack, workflow_id: str, app_id: str) -> None:
    stack.sandbox.kubectl(
        "label", "-n", stack.org, "wf", workflow_id.removeprefix("wf_"), f"tideflow.io/app-id={app_id}"
    )


def test_discover_finds_the_apps_active_deployed_workflows(stack: Stack) -> None:
    hook = workflow_body(
        "Shop orders",
        nodes=[
            {"id": "incoming", "type": "webhook_trigger", "config": {"path": "/orders/", "method": "POST"}},
            {"id": "any", "type": "webhook_trigger"},
            {"id": "echo", "type": "transform", "config": {"set": {"ok": True}}},
        ],
        connections=[
            {"id": "c1", "source": "incoming", "target": "echo"},
            {"id": "c2", "source": "any", "target": "echo"},
        ],
    )
    with stack.client(stack.key("disco-dan")) as dan, stack.client(stack.key("disco-eve")) as eve:
        created = dan.post("/api/v1/workflows", json=hook)
        assert created.status_code == 201, created.text
        live = created.json()["workflowId"]
        undeployed = _create(dan, name="Shop draft")
        elsewhere = _create(dan, name="Other app")
        for workflow_id, app in ((live, "shop"), (undeployed, "shop"), (elsewhere, "blog")):
            _label(stack, workflow_id, app)
        for workflow_id in (live, elsewhere):
            assert dan.post(f"/api/v1/workflows/{workflow_id}/deploy").status_code == 200

        def endpoint() -> str | None:
            shown = dan.get(f"/api/v1/workflows/{live}").json()["deployment"]
            return str(shown["endpoint"]) if shown["endpoint"] else None

        service_url = wait_for(endpoint, timeout=60, what="the operator to report the endpoint")
        found = dan.get("/api/v1/workflows/discover", params={"appId": "shop"})
        assert found.status_code == 200, found.text
        body = found.json()
        assert (body["appId"], body["count"]) == ("shop", 1)
        (workflow,) = body["workflows"]
        assert (workflow["workflowId"], workflow["name"], workflow["appId"]) == (live, "Shop orders", "shop")
        assert workflow["endpoint"] == service_url
        assert workflow["trigger"] == {"url": f"{service_url}/trigger", "path": "/trigger", "method": "POST"}
        assert workflow["webhooks"] == [
            {
                "nodeId": "incoming",
                "path": "/webhooks/orders",
                "url": f"{service_url}/webhooks/orders",
                "method": "POST",
                "anyMethod": False,
                "authenticated": False,
            },
            {
                "nodeId": "any",
                "path": "/webhooks/any",
                "url": f"{service_url}/webhooks/any",
                "method": "POST",
                "anyMethod": True,
                "authenticated": False,
            },
        ]
        identity = workflow["deployment"]
        assert (identity["kind"], identity["namespace"]) == ("Deployment", stack.org)
        with httpx.Client(base_url=stack.sandbox.url) as kube:
            deployment = kube.get(f"/apis/apps/v1/namespaces/{stack.org}/deployments/{identity['name']}")
            service = kube.get(f"/api/v1/namespaces/{stack.org}/services/{identity['service']}")
        assert deployment.status_code == 200, deployment.text
        assert deployment.json()["metadata"]["labels"]["tideflow.io/workflow"] == live.removeprefix("wf_")
        assert service.status_code == 200, service.text
        assert service_url.startswith(f"http://{identity['service']}.{stack.org}.svc")

        # Visibility applies: eve sees none of dan's private workflows; made public, she sees it.
        assert eve.get("/api/v1/workflows/discover", params={"appId": "shop"}).json()["count"] == 0
        assert dan.put(f"/api/v1/workflows/{live}", json={"isPublic": True}).status_code == 200
        assert [
            w["workflowId"] for w in eve.get("/api/v1/workflows/discover?appId=shop").json()["workflows"]
        ] == [live]
        # Paused is not active: no longer discovered.
        assert dan.put(f"/api/v1/workflows/{live}/status", json={"status": "paused"}).status_code == 200
        assert dan.get("/api/v1/workflows/discover?appId=shop").json()["count"] == 0
        assert [
            w["workflowId"] for w in dan.get("/api/v1/workflows/discover?appId=blog").json()["workflows"]
        ] == [elsewhere]
        assert dan.get("/api/v1/workflows/discover?appId=nobody").json() == {
            "appId": "nobody",
            "count": 0,
            "workflows": [],
        }

        for params in ({}, {"appId": ""}, {"appId": "bad value"}, {"appId": "x" * 64}):
            refused = dan.get("/api/v1/workflows/discover", params=params)
            assert refused.status_code == 422, (params, refused.text)
            assert refused.json()["error"]["details"][0]["path"] == "query.appId"
        for workflow_id in (live, elsewhere):
            assert dan.post(f"/api/v1/workflows/{workflow_id}/undeploy").status_code == 200
