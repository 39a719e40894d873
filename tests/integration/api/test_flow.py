"""The main path over HTTP: create, deploy, trigger (sync and async), read the execution and its logs."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import Stack, workflow_body
from tests.support import wait_for


def _ready(client: httpx.Client, workflow_id: str) -> bool:
    answer = client.get(f"/api/v1/workflows/{workflow_id}")
    return bool(answer.json()["deployment"]["ready"])


def test_create_deploy_trigger_and_read_the_execution(stack: Stack) -> None:
    with stack.admin() as api:
        created = api.post("/api/v1/workflows", json=workflow_body("Greeter", tags=["demo"]))
        assert created.status_code == 201, created.text
        workflow_id = created.json()["workflowId"]
        assert workflow_id.startswith("wf_greeter-")

        shown = api.get(f"/api/v1/workflows/{workflow_id}").json()
        assert shown["status"] == "draft"
        assert shown["deployed"] is False
        assert shown["owner"] == "admin"

        deployed = api.post(f"/api/v1/workflows/{workflow_id}/deploy")
        assert deployed.status_code == 200, deployed.text
        assert deployed.json()["deployed"] is True
        assert deployed.json()["status"] == "active"
        wait_for(lambda: _ready(api, workflow_id), timeout=60, what="the runtime to be ready")

        sync = api.post(
            f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "sync"}, "sync": True}
        )
        assert sync.status_code == 200, sync.text
        run = sync.json()
        assert run["status"] == "completed"
        assert run["executionId"].startswith("exec_")
        assert run["duration_in_seconds"] is not None
        echo = next(log for log in run["logs"] if log["nodeId"] == "echo")
        assert echo["status"] == "Succeeded" or echo["status"].lower() in ("completed", "succeeded")
        assert echo["output"] == {"greeting": "hello sync"}

        queued = api.post(f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "async"}})
        assert queued.status_code == 202, queued.text
        execution_id = queued.json()["executionId"]

        def finished() -> dict[str, object] | None:
            body = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
            return body if body["status"] == "completed" else None

        execution = wait_for(finished, timeout=30, what="the async run to complete")
        assert execution["workflowId"] == workflow_id
        assert execution["inputs"] == {"who": "async"}
        assert execution["startedAt"]
        assert execution["completedAt"]

        listed = api.get(f"/api/v1/workflows/{workflow_id}/executions").json()
        assert listed["count"] == 2
        assert {e["executionId"] for e in listed["executions"]} == {run["executionId"], execution_id}


def test_health_metrics_and_access_log(stack: Stack) -> None:
    with stack.client() as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok", "kubernetes": "reachable"}
        assert anonymous.get("/api/v1/workflows/wf_missing").status_code == 401
    with stack.admin() as api:
        assert api.get("/api/v1/workflows/wf_missing").status_code == 404
        metrics = api.get("/metrics").text
    assert (
        'tideflow_api_requests_total{method="GET",route="/api/v1/workflows/{workflow_id}",status="404"}'
        in metrics
    )
    assert 'tideflow_api_auth_failures_total{reason="missing"}' in metrics
    assert "wf_missing" not in metrics  # labelled by route template, never by raw path
    lines = [
        line for line in stack.log("api").splitlines() if '"route": "/api/v1/workflows/{workflow_id}"' in line
    ]
    assert any('"status": 404' in line and '"path": "/api/v1/workflows/wf_missing"' in line for line in lines)


def test_openapi_documents_every_route_with_models(stack: Stack) -> None:
    with stack.client() as anonymous:
        document = anonymous.get("/openapi.json").json()
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) >= 25
    for path, method, operation in operations:
        success = [code for code in operation["responses"] if code.startswith("2")]
        assert success, f"{method.upper()} {path} documents no success answer"
        assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        if path.startswith("/api/v1/workflows"):
            assert "401" in operation["responses"], f"{method.upper()} {path} does not document 401"
