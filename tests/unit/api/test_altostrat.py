"""The Altostrat mapping without a cluster: flat schedules both ways, graphs both ways, run shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.api.altostrat import (
    FlowWorkflowCreate,
    flow_run,
    flow_workflow,
    run_id,
    run_name,
    schedule_from_flat,
    spec_from_flow,
)
from tideflow.api.errors import ApiError
from tideflow.core.models import Schedule, ScheduleType, WorkflowSpec


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (ScheduleType.MANUAL, None, {}),
        (ScheduleType.INTERVAL, "5 minutes", {"value": "5 minutes"}),
        (ScheduleType.CRON, "*/5 * * * *", {"value": "*/5 * * * *"}),
        (ScheduleType.DAILY, "07:45", {"time": "07:45"}),
        (ScheduleType.WEEKLY, "mon,Wed,0 09:30", {"time": "09:30", "daysOfWeek": [0, 1, 3]}),
        (ScheduleType.MONTHLY, "15 23:59", {"time": "23:59", "dayOfMonth": 15}),
    ],
)
def test_flat_schedules_become_valid_resource_schedules(
    kind: ScheduleType, value: str | None, expected: dict[str, Any]
) -> None:
    schedule = schedule_from_flat(kind, value, "Asia/Tokyo")
    assert schedule == {"type": kind.value, "timezone": "Asia/Tokyo", **expected}
    Schedule.model_validate(schedule)  # the resource model accepts it as it is


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (ScheduleType.DAILY, "7:45"),
        (ScheduleType.DAILY, None),
        (ScheduleType.WEEKLY, "funday 09:00"),
        (ScheduleType.WEEKLY, "7 09:00"),
        (ScheduleType.MONTHLY, "last 09:00"),
        (ScheduleType.CRON, "  "),
    ],
)
def test_bad_flat_schedules_name_schedule_value(kind: ScheduleType, value: str | None) -> None:
    with pytest.raises(ApiError) as refused:
        schedule_from_flat(kind, value, "UTC")
    assert refused.value.status == 422
    assert refused.value.details[0].path == "body.schedule_value"


def test_a_flow_body_round_trips_through_the_resource() -> None:
    body = FlowWorkflowCreate.model_validate(
        {
            "name": "Flow",
            "nodes": [
                {"id": "a", "position": {"x": 1, "y": 2}, "data": {"componentId": "manual_trigger"}},
                {"id": "b", "data": {"componentId": "log", "label": "Say", "config": {"message": "hi"}}},
            ],
            "edges": [{"id": "e", "source": "a", "target": "b", "sourceHandle": "output"}],
            "schedule_type": "monthly",
            "schedule_value": "1 00:00",
            "is_active": True,
        }
    )
    spec = WorkflowSpec.model_validate(spec_from_flow(body, "ann")).to_dict()
    assert (spec["owner"], spec["state"], spec["deployed"]) == ("ann", "Active", True)
    shown = flow_workflow(
        {"metadata": {"name": "flow-x"}, "spec": spec, "status": {"endpoint": "http://s:8080"}}
    )
    assert shown.id == "wf_flow-x"
    assert [n.data.componentId for n in shown.nodes] == ["manual_trigger", "log"]
    assert shown.nodes[1].data.label == "Say"
    assert (shown.nodes[0].position.x, shown.nodes[0].position.y) == (1, 2)
    assert (shown.schedule_type, shown.schedule_value, shown.is_active) == ("monthly", "1 00:00", True)
    assert shown.webhook_url is None


def test_webhook_url_is_the_in_cluster_webhook_of_the_runtime() -> None:
    spec = {
        "state": "Active",
        "deployed": True,
        "nodes": [{"id": "hook", "type": "webhook_trigger", "config": {"path": "/orders/"}}],
    }
    shown = flow_workflow(
        {"metadata": {"name": "w"}, "spec": spec, "status": {"endpoint": "http://w.ns.svc:8080"}}
    )
    assert shown.webhook_url == "http://w.ns.svc:8080/webhooks/orders"


def test_run_ids_and_run_shape() -> None:
    assert run_name(run_id("w-abc")) == "w-abc"
    with pytest.raises(ApiError):
        run_name("exec_w-abc")
    run = flow_run(
        {
            "metadata": {"name": "w-abc"},
            "spec": {"workflowRef": {"name": "w"}},
            "status": {
                "phase": "Failed",
                "error": "boom",
                "nodes": [{"nodeId": "n", "componentId": "log", "status": "failed", "error": "boom"}],
            },
        }
    )
    dumped = run.model_dump(mode="json")
    assert (dumped["id"], dumped["workflow_id"], dumped["status"], dumped["error_message"]) == (
        "fl_run_w-abc",
        "wf_w",
        "failed",
        "boom",
    )
    assert dumped["logs"][0]["component_id"] == "log"
