"""The Altostrat-shaped routes over HTTP: snake_case React Flow bodies, Bearer keys, 202 runs."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import Stack
from tests.support import wait_for

EXAMPLE: dict[str, Any] = {
    "name": "Big orders",
    "description": "Flags large orders",
    "nodes": [
        {
            "id": "start",
            "type": "trigger",
            "position": {"x": 0, "y": 0},
            "data": {"componentId": "manual_trigger"},
        },
        {
            "id": "check",
            "type": "condition",
            "position": {"x": 250, "y": 0},
            "data": {
                "componentId": "condition",
                "label": "Over 100?",
                "config": {"field": "start.inputs.total", "operator": "greater_than", "value": 100},
            },
        },
        {
            "id": "big",
            "type": "action",
            "position": {"x": 500, "y": -80},
            "data": {"componentId": "transform", "config": {"set": {"size": "big"}}},
        },
        {
            "id": "small",
            "type": "action",
            "position": {"x": 500, "y": 80},
            "data": {"componentId": "transform", "config": {"set": {"size": "small"}}},
        },
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "check"},
        {"id": "e2", "source": "check", "target": "big", "sourceHandle": "true"},
        {"id": "e3", "source": "check", "target": "small", "sourceHandle": "false"},
    ],
    "schedule_type": "weekly",
    "schedule_value": "mon,fri 09:30",
    "timezone": "Europe/Berlin",
    "is_active": True,
    "authorization_id": "auth_123",
}


def test_create_retrieve_execute_and_read_a_run(stack: Stack) -> None:
    key = stack.key("flow-user")
    with stack.client(Authorization=f"Bearer {key}") as flow:
        created = flow.post("/workflows", json=EXAMPLE)
        assert created.status_code == 201, created.text
        workflow = created.json()
        workflow_id = workflow["id"]
        assert workflow["is_active"] is True
        assert workflow["authorization_id"] == "auth_123"
        assert (workflow["schedule_type"], workflow["schedule_value"]) == ("weekly", "1,5 09:30")
        assert [e["sourceHandle"] for e in workflow["edges"]] == ["output", "true", "false"]
        assert [n["data"]["componentId"] for n in workflow["nodes"]] == [
            "manual_trigger",
            "condition",
            "transform",
            "transform",
        ]
        assert workflow["nodes"][1]["data"]["label"] == "Over 100?"

        def scheduled() -> dict[str, Any] | None:
            body: dict[str, Any] = flow.get(f"/workflows/{workflow_id}").json()
            return body if body["next_run_at"] else None

        again = wait_for(scheduled, timeout=60, what="the operator to compute next_run_at")
        assert {k: again[k] for k in EXAMPLE if k not in ("nodes", "schedule_value")} == {
            k: v for k, v in EXAMPLE.items() if k not in ("nodes", "schedule_value")
        } | {"edges": workflow["edges"]}

        # The same workflow through the Workflows API.
        same = flow.get(f"/api/v1/workflows/{workflow_id}").json()
        assert (same["name"], same["status"], same["deployed"]) == ("Big orders", "active", True)
        assert same["schedule"] == {
            "type": "weekly",
            "time": "09:30",
            "daysOfWeek": [1, 5],
            "timezone": "Europe/Berlin",
            **{
                k: v
                for k, v in same["schedule"].items()
                if k not in ("type", "time", "daysOfWeek", "timezone")
            },
        }

        headers = {"Idempotency-Key": "flow-1"}
        run = flow.post(
            f"/workflows/{workflow_id}/execute", json={"context": {"total": 250}}, headers=headers
        )
        assert run.status_code == 202, run.text
        run_id = run.json()["id"]
        assert run_id.startswith("fl_run_")
        assert run.json()["status"] == "pending"
        repeat = flow.post(
            f"/workflows/{workflow_id}/execute", json={"context": {"total": 250}}, headers=headers
        )
        assert repeat.json()["id"] == run_id
        assert repeat.headers["Idempotent-Replayed"] == "true"

        def finished() -> dict[str, Any] | None:
            body: dict[str, Any] = flow.get(f"/workflows/{workflow_id}/runs/{run_id}").json()
            return body if body["status"] in ("completed", "failed") else None

        result = wait_for(finished, timeout=60, what="the run to finish")
        assert result["status"] == "completed", result
        assert result["error_message"] is None
        assert result["duration_in_seconds"] is not None
        logs = {log["node_id"]: log for log in result["logs"]}
        assert logs["big"]["component_id"] == "transform"
        assert logs["big"]["output"] == {"size": "big"}
        assert logs["small"]["status"] == "skipped"

        # The run through the Workflows API, and a run id of another workflow is a 404.
        execution = flow.get(f"/api/v1/workflows/executions/exec_{run_id[len('fl_run_') :]}").json()
        assert execution["status"] == "completed"
        other = flow.post("/workflows", json={**EXAMPLE, "is_active": False, "schedule_type": None}).json()
        assert flow.get(f"/workflows/{other['id']}/runs/{run_id}").status_code == 404
        assert other["is_active"] is False


def test_bad_altostrat_bodies_are_clear_422s_that_change_nothing(stack: Stack) -> None:
    key = stack.key("flow-checker")
    with stack.client(Authorization=f"Bearer {key}") as flow:
        before = flow.get("/api/v1/workflows", params={"limit": 100}).json()["count"]
        cases = [
            ({**EXAMPLE, "schedule_value": "someday 25:00"}, "body.schedule_value"),
            ({**EXAMPLE, "schedule_type": "daily", "schedule_value": None}, "body.schedule_value"),
            ({**EXAMPLE, "nodes": [{"id": "x", "data": {}}]}, "body.nodes[0].data.componentId"),
            (
                {**EXAMPLE, "edges": [{"id": "e", "source": "start", "target": "ghost"}]},
                "spec.connections[0].target",
            ),
            ({**EXAMPLE, "colour": "red"}, "body.colour"),
        ]
        for body, path in cases:
            answer = flow.post("/workflows", json=body)
            assert answer.status_code == 422, (path, answer.text)
            assert any(d["path"] == path for d in answer.json()["error"]["details"]), (path, answer.text)
        assert flow.get("/api/v1/workflows", params={"limit": 100}).json()["count"] == before
        assert flow.get("/workflows/wf_nothing-here").status_code == 404
        assert flow.get("/workflows/wf_nothing-here/runs/fl_run_x").status_code == 404
    with stack.client(Authorization="Bearer nonsense") as anonymous:
        assert anonymous.get("/workflows/wf_x").status_code == 401
