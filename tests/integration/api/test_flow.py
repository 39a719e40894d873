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
