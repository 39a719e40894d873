"""Executions over HTTP: lifecycle get/put, on-demand auto-start, idempotent retries, approvals, cancel."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conftest import Stack, workflow_body
from tests.support import wait_for


def _deployed(api: httpx.Client, body: dict[str, Any], *, ready: bool = True) -> str:
    workflow_id = str(api.post("/api/v1/workflows", json=body).json()["workflowId"])
    answer = api.post(f"/api/v1/workflows/{workflow_id}/deploy")
    assert answer.status_code == 200, answer.text
    if ready:
        wait_for(
            lambda: api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["ready"],
            timeout=60,
            what="the runtime to be ready",
        )
    return workflow_id


def _execution(api: httpx.Client, execution_id: str, *statuses: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
        return body if body["status"] in statuses else None

    result: dict[str, Any] = wait_for(probe, timeout=60, what=f"execution {execution_id} to be {statuses}")
    return result


def test_lifecycle_get_put_and_bad_policies(stack: Stack) -> None:
    with stack.client(stack.key("lifecycler")) as api:
        workflow_id = api.post("/api/v1/workflows", json=workflow_body("Lifecycled")).json()["workflowId"]
        current = api.get(f"/api/v1/workflows/{workflow_id}/lifecycle").json()
        assert current["lifecycle"]["type"] == "always-on"
        assert current["deployment"]["status"] in ("NotDeployed",)

        changed = api.put(
            f"/api/v1/workflows/{workflow_id}/lifecycle",
            json={"type": "idle-shutdown", "idleTimeoutMinutes": 15},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["lifecycle"] == {"type": "idle-shutdown", "idleTimeoutMinutes": 15}
        shown = api.get(f"/api/v1/workflows/{workflow_id}").json()["lifecycle"]
        assert shown == {"type": "idle-shutdown", "idleTimeoutMinutes": 15}

        too_short = api.put(
            f"/api/v1/workflows/{workflow_id}/lifecycle",
            json={"type": "idle-shutdown", "idleTimeoutMinutes": 1},
        )
        assert too_short.status_code == 422
        assert too_short.json()["error"]["details"][0]["path"] == "body.idleTimeoutMinutes"
        unknown = api.put(f"/api/v1/workflows/{workflow_id}/lifecycle", json={"type": "sometimes"})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["details"][0]["path"] == "body.type"
        no_windows = api.put(f"/api/v1/workflows/{workflow_id}/lifecycle", json={"type": "scheduled-window"})
        assert no_windows.status_code == 422
        # Nothing was written by the refused requests.
        assert (
            api.get(f"/api/v1/workflows/{workflow_id}/lifecycle").json()["lifecycle"]["idleTimeoutMinutes"]
            == 15
        )


def test_stop_then_trigger_an_on_demand_workflow_starts_it_and_the_run_completes(stack: Stack) -> None:
    with stack.client(stack.key("waker")) as api:
        workflow_id = _deployed(api, workflow_body("Waker"))
        stopped = api.post(f"/api/v1/workflows/{workflow_id}/stop")
        assert stopped.json()["deployment"]["replicas"] == 0
        refused = api.post(f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "nobody"}})
        assert refused.status_code == 409
        assert "stopped by its user" in refused.json()["error"]["message"]

        api.put(
            f"/api/v1/workflows/{workflow_id}/lifecycle", json={"type": "on-demand", "idleTimeoutMinutes": 5}
        )
        api.post(f"/api/v1/workflows/{workflow_id}/start")
        wait_for(
            lambda: api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["status"] == "Stopped",
            timeout=60,
            what="the on-demand runtime to scale to zero",
        )
        answer = api.post(
            f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "sleeper"}, "sync": True}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "completed"
        assert answer.json()["logs"][-1]["output"] == {"greeting": "hello sleeper"}

        api.put(f"/api/v1/workflows/{workflow_id}/status", json={"status": "paused"})
        paused = api.post(f"/api/v1/workflows/{workflow_id}/trigger", json={})
        assert paused.status_code == 409


def test_idempotent_trigger_and_execute(stack: Stack) -> None:
    with stack.client(stack.key("retrier")) as api:
        workflow_id = _deployed(api, workflow_body("Retried"))
        headers = {"Idempotency-Key": "order-42"}
        first = api.post(
            f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "a"}}, headers=headers
        )
        assert first.status_code == 202, first.text
        again = api.post(
            f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "a"}}, headers=headers
        )
        assert again.status_code == 202
        assert again.json()["executionId"] == first.json()["executionId"]
        assert again.json()["created"] is False
        assert again.headers["Idempotent-Replayed"] == "true"
        other = api.post(
            f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"who": "b"}}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"

        runs = api.get(f"/api/v1/workflows/{workflow_id}/executions").json()
        assert runs["count"] == 1

        # A key names one request per workflow: reusing the trigger's key for an execute is another body.
        reused = api.post(f"/api/v1/workflows/{workflow_id}/execute", json={}, headers=headers)
        assert reused.status_code == 422
        headers = {"Idempotency-Key": "draft-7"}
        executed = api.post(
            f"/api/v1/workflows/{workflow_id}/execute",
            json={"triggerInputs": {"who": "draft"}},
            headers=headers,
        )
        assert executed.status_code == 201
        repeat = api.post(
            f"/api/v1/workflows/{workflow_id}/execute",
            json={"triggerInputs": {"who": "draft"}},
            headers=headers,
        )
        assert repeat.json()["executionId"] == executed.json()["executionId"]
        assert repeat.headers["Idempotent-Replayed"] == "true"
        changed = api.post(
            f"/api/v1/workflows/{workflow_id}/execute",
            json={"triggerInputs": {"who": "other"}},
            headers=headers,
        )
        assert changed.status_code == 422

        run = _execution(api, executed.json()["executionId"], "completed")
        assert run["draft"] is True
        assert run["logs"][-1]["output"] == {"greeting": "hello draft"}


def test_execute_a_draft_definition_override(stack: Stack) -> None:
    with stack.client(stack.key("drafter")) as api:
        workflow_id = _deployed(api, workflow_body("Drafted"))
        draft = workflow_body()
        draft["nodes"][1]["config"] = {"set": {"greeting": "draft says {{ start.inputs.who }}"}}
        definition = {"nodes": draft["nodes"], "connections": draft["connections"]}
        executed = api.post(
            f"/api/v1/workflows/{workflow_id}/execute",
            json={"definition": definition, "triggerInputs": {"who": "hi"}},
        )
        assert executed.status_code == 201, executed.text
        run = _execution(api, executed.json()["executionId"], "completed")
        assert run["logs"][-1]["output"] == {"greeting": "draft says hi"}

        definition["connections"] = [{"id": "c1", "source": "start", "target": "ghost"}]
        invalid = api.post(f"/api/v1/workflows/{workflow_id}/execute", json={"definition": definition})
        assert invalid.status_code == 422
        assert invalid.json()["error"]["details"][0]["path"].startswith("body.definition.connections[0]")


def test_approvals_resume_and_reject(stack: Stack) -> None:
    body = workflow_body(
        "Approved",
        nodes=[
            {"id": "start", "type": "manual_trigger"},
            {"id": "gate", "type": "approval", "config": {"message": "ship it?"}},
            {"id": "shipped", "type": "transform", "config": {"set": {"shipped": True}}},
        ],
        connections=[
            {"id": "c1", "source": "start", "target": "gate"},
            {"id": "c2", "source": "gate", "sourcePort": "approved", "target": "shipped"},
        ],
    )
    with stack.client(stack.key("approver")) as api:
        workflow_id = _deployed(api, body)
        outcomes = {}
        for action in ("resume", "reject"):
            queued = api.post(f"/api/v1/workflows/{workflow_id}/trigger", json={})
            execution_id = queued.json()["executionId"]
            _execution(api, execution_id, "awaiting_ui_interaction")
            decided = api.post(
                f"/api/v1/workflows/executions/{execution_id}/{action}", json={"comment": "ok"}
            )
            assert decided.status_code == 200, decided.text
            outcomes[action] = _execution(api, execution_id, "completed", "failed")
            twice = api.post(f"/api/v1/workflows/executions/{execution_id}/{action}", json={})
            assert twice.status_code == 409
        resumed = {log["nodeId"]: log["status"] for log in outcomes["resume"]["logs"]}
        rejected = {log["nodeId"]: log["status"] for log in outcomes["reject"]["logs"]}
        assert resumed["shipped"].lower() in ("succeeded", "completed")
        assert rejected["shipped"].lower() not in ("succeeded", "completed")


def test_cancel_a_waiting_execution(stack: Stack) -> None:
    body = workflow_body(
        "Cancelled",
        nodes=[
            {"id": "start", "type": "manual_trigger"},
            {"id": "wait", "type": "delay", "config": {"seconds": 600}},
        ],
        connections=[{"id": "c1", "source": "start", "target": "wait"}],
    )
    with stack.client(stack.key("canceller")) as api:
        workflow_id = _deployed(api, body)
        execution_id = api.post(f"/api/v1/workflows/{workflow_id}/trigger", json={}).json()["executionId"]
        _execution(api, execution_id, "running")
        cancelled = api.post(
            f"/api/v1/workflows/executions/{execution_id}/cancel", json={"reason": "changed my mind"}
        )
        assert cancelled.status_code in (200, 202), cancelled.text
        final = _execution(api, execution_id, "cancelled")
        assert "changed my mind" in (final["error"] or "")
        assert api.post(f"/api/v1/workflows/executions/{execution_id}/cancel").status_code == 409


def test_cancel_a_pending_execution_of_a_stopped_workflow_at_once(stack: Stack) -> None:
    with stack.client(stack.key("early-canceller")) as api:
        workflow_id = _deployed(api, workflow_body("Stopped early"))
        api.post(f"/api/v1/workflows/{workflow_id}/stop")
        execution_id = api.post(f"/api/v1/workflows/{workflow_id}/execute", json={}).json()["executionId"]
        assert api.get(f"/api/v1/workflows/executions/{execution_id}").json()["status"] == "pending"
        cancelled = api.post(
            f"/api/v1/workflows/executions/{execution_id}/cancel", json={"reason": "not needed"}
        )
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["status"], cancelled.json()["error"]) == ("cancelled", "not needed")
        api.post(f"/api/v1/workflows/{workflow_id}/start")
        wait_for(
            lambda: api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["ready"],
            timeout=60,
            what="the runtime to be ready again",
        )
        # The runtime that starts finds it cancelled and leaves it so.
        assert api.get(f"/api/v1/workflows/executions/{execution_id}").json()["status"] == "cancelled"
