"""The Altostrat route family's shapes, and their one-to-one mapping onto the Workflow resource.

Altostrat clients speak snake_case and a React Flow graph: ``nodes`` carry the catalog type in
``data.componentId`` (with ``data.label`` and ``data.config``), ``edges`` connect them with
``sourceHandle``/``targetHandle`` (a condition's ``true``/``false``). The schedule is flattened into
``schedule_type`` and ``schedule_value``; ``is_active`` means active *and* deployed. Every field maps
onto the same Workflow spec the Workflows API uses, so a workflow created through either family is
the same object seen through both. Functions here are pure, so the mapping is tested without a cluster.

``schedule_value`` by ``schedule_type``: ``interval`` ``"5 minutes"``; ``cron`` a five-field
expression; ``daily`` ``"HH:MM"``; ``weekly`` ``"<days> HH:MM"`` with days ``0-6`` (0 = Sunday) or
names, comma-separated (``"mon,wed 09:30"``); ``monthly`` ``"<day of month> HH:MM"``; ``manual`` none.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tideflow.api import ids
from tideflow.api.errors import ApiError, ErrorDetail
from tideflow.api.schemas import ExecutionStatus, WorkflowStatusValue, execution_out
from tideflow.core import names
from tideflow.core.models import ScheduleType

__all__ = [
    "AUTHORIZATION_ANNOTATION",
    "FlowEdge",
    "FlowNode",
    "FlowRun",
    "FlowWorkflow",
    "FlowWorkflowCreate",
    "flow_run",
    "flow_workflow",
    "run_id",
    "run_name",
    "schedule_from_flat",
    "spec_from_flow",
]

AUTHORIZATION_ANNOTATION = f"{names.GROUP}/authorization-id"
RUN_PREFIX = "fl_run_"
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class FlowModel(BaseModel):
    """snake_case fields, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FlowNodeData(FlowModel):
    """What a node does: ``componentId`` is the catalog type."""

    componentId: str = Field(min_length=1, max_length=63, description="The node type in the catalog.")
    label: str | None = Field(default=None, max_length=253)
    config: dict[str, Any] = Field(default_factory=dict)


class FlowPosition(FlowModel):
    """Where the node is drawn."""

    x: float = 0.0
    y: float = 0.0


class FlowNode(FlowModel):
    """A React Flow node."""

    id: str = Field(min_length=1, max_length=63)
    type: str | None = Field(default=None, max_length=63, description="The editor's node kind; ignored.")
    position: FlowPosition = Field(default_factory=FlowPosition)
    data: FlowNodeData


class FlowEdge(FlowModel):
    """A React Flow edge; ``sourceHandle`` is the output port (``true``/``false`` of a condition)."""

    id: str = Field(min_length=1, max_length=253)
    source: str = Field(min_length=1, max_length=63)
    target: str = Field(min_length=1, max_length=63)
    sourceHandle: str | None = Field(default=None, max_length=63)
    targetHandle: str | None = Field(default=None, max_length=63)


class FlowWorkflowCreate(FlowModel):
    """``POST /workflows``."""

    name: str = Field(min_length=1, max_length=253)
    description: str | None = Field(default=None, max_length=4096)
    nodes: list[FlowNode] = Field(default_factory=list, max_length=500)
    edges: list[FlowEdge] = Field(default_factory=list, max_length=2000)
    schedule_type: ScheduleType | None = None
    schedule_value: str | None = Field(default=None, max_length=256)
    timezone: str = Field(default="UTC", max_length=64)
    is_active: bool = False
    authorization_id: str | None = Field(default=None, max_length=253)


class FlowWorkflow(FlowModel):
    """A workflow as the Altostrat routes show it."""

    id: str
    name: str
    description: str | None = None
    nodes: list[FlowNode]
    edges: list[FlowEdge]
    schedule_type: str | None = None
    schedule_value: str | None = None
    timezone: str | None = None
    next_run_at: str | None = None
    is_active: bool
    status: WorkflowStatusValue
    webhook_url: str | None = Field(default=None, description="The in-cluster URL of its webhook, if any.")
    authorization_id: str | None = None
    created_at: str | None = None


class FlowLog(FlowModel):
    """One node's part of a run."""

    component_id: str | None = None
    node_id: str
    status: str
    output: Any = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class FlowRun(FlowModel):
    """A run as the Altostrat routes show it."""

    id: str
    workflow_id: str
    status: ExecutionStatus
    error_message: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_in_seconds: float | None = None
    logs: list[FlowLog] = Field(default_factory=list)


def run_id(name: str) -> str:
    return RUN_PREFIX + name


def run_name(public: str) -> str:
    """The WorkflowRun name of an ``fl_run_`` id; 404 for anything that cannot be one."""
    return ids.run_name("exec_" + public[len(RUN_PREFIX) :] if public.startswith(RUN_PREFIX) else "")


def _bad(path: str, message: str) -> ApiError:
    return ApiError(422, f"{path}: {message}", details=[ErrorDetail(path=path, message=message)])


def _time(text: str, path: str) -> str:
    if not _TIME.match(text):
        raise _bad(path, f"{text!r} is not a time of day HH:MM")
    return text


def schedule_from_flat(kind: ScheduleType | None, value: str | None, timezone: str) -> dict[str, Any] | None:
    """``schedule_type``/``schedule_value`` as the resource's ``spec.schedule`` (422 naming the field)."""
    if kind is None:
        return None
    schedule: dict[str, Any] = {"type": kind.value, "timezone": timezone}
    path = "body.schedule_value"
    text = (value or "").strip()
    if kind is ScheduleType.MANUAL:
        return schedule
    if not text:
        raise _bad(path, f"a {kind.value} schedule needs a value")
    if kind in (ScheduleType.INTERVAL, ScheduleType.CRON):
        schedule["value"] = text
    elif kind is ScheduleType.DAILY:
        schedule["time"] = _time(text, path)
    else:
        head, _, at = text.rpartition(" ")
        schedule["time"] = _time(at, path)
        if kind is ScheduleType.WEEKLY:
            days: list[int] = []
            for part in head.replace(" ", "").lower().split(","):
                day = _DAYS.get(part[:3]) if not part.isdigit() else int(part)
                if day is None or not 0 <= day <= 6:
                    raise _bad(path, f"{part!r} is not a day (0-6 or mon..sun)")
                days.append(day)
            schedule["daysOfWeek"] = sorted(set(days))
        else:
            if not head.isdigit():
                raise _bad(path, f"{head!r} is not a day of the month")
            schedule["dayOfMonth"] = int(head)
    return schedule


def _flat_value(schedule: dict[str, Any]) -> str | None:
    kind = schedule.get("type")
    if kind in ("interval", "cron"):
        return schedule.get("value")
    if kind == "daily":
        return schedule.get("time")
    if kind == "weekly":
        return ",".join(str(d) for d in schedule.get("daysOfWeek") or ()) + f" {schedule.get('time')}"
    if kind == "monthly":
        return f"{schedule.get('dayOfMonth')} {schedule.get('time')}"
    return None


def spec_from_flow(body: FlowWorkflowCreate, owner: str) -> dict[str, Any]:
    """The Workflow spec of an Altostrat create body."""
    spec: dict[str, Any] = {
        "displayName": body.name,
        "owner": owner,
        "state": "Active" if body.is_active else "Draft",
        "deployed": body.is_active,
        "nodes": [
            {
                "id": node.id,
                "type": node.data.componentId,
                **({"label": node.data.label} if node.data.label else {}),
                "position": {"x": node.position.x, "y": node.position.y},
                "config": node.data.config,
            }
            for node in body.nodes
        ],
        "connections": [
            {
                "id": edge.id,
                "source": edge.source,
                "target": edge.target,
                "sourcePort": edge.sourceHandle or "output",
                "targetPort": edge.targetHandle or "input",
            }
            for edge in body.edges
        ],
    }
    if body.description is not None:
        spec["description"] = body.description
    schedule = schedule_from_flat(body.schedule_type, body.schedule_value, body.timezone)
    if schedule is not None:
        spec["schedule"] = schedule
    return spec


def _webhook_url(spec: dict[str, Any], status: dict[str, Any]) -> str | None:
    endpoint = status.get("endpoint")
    for node in spec.get("nodes") or ():
        if node.get("type") == "webhook_trigger" and endpoint:
            path = str((node.get("config") or {}).get("path") or node.get("id")).strip().strip("/")
            return f"{endpoint}/webhooks/{path}"
    return None


def flow_workflow(obj: dict[str, Any]) -> FlowWorkflow:
    """A Workflow resource in the Altostrat shape."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    schedule = spec.get("schedule") or {}
    return FlowWorkflow(
        id=ids.workflow_id(str(meta.get("name"))),
        name=str(spec.get("displayName") or meta.get("name")),
        description=spec.get("description"),
        nodes=[
            FlowNode(
                id=node["id"],
                type=node["type"],
                position=FlowPosition.model_validate(node.get("position") or {}),
                data=FlowNodeData(
                    componentId=node["type"], label=node.get("label"), config=node.get("config") or {}
                ),
            )
            for node in spec.get("nodes") or ()
        ],
        edges=[
            FlowEdge(
                id=connection["id"],
                source=connection["source"],
                target=connection["target"],
                sourceHandle=connection.get("sourcePort") or "output",
                targetHandle=connection.get("targetPort") or "input",
            )
            for connection in spec.get("connections") or ()
        ],
        schedule_type=schedule.get("type"),
        schedule_value=_flat_value(schedule) if schedule else None,
        timezone=schedule.get("timezone"),
        next_run_at=status.get("nextRunAt"),
        is_active=spec.get("state") == "Active" and bool(spec.get("deployed")),
        status=WorkflowStatusValue.of(spec.get("state")),
        webhook_url=_webhook_url(spec, status),
        authorization_id=(meta.get("annotations") or {}).get(AUTHORIZATION_ANNOTATION),
        created_at=meta.get("creationTimestamp"),
    )


def flow_run(obj: dict[str, Any]) -> FlowRun:
    """A WorkflowRun in the Altostrat shape."""
    out = execution_out(obj)
    return FlowRun(
        id=run_id(str(obj["metadata"]["name"])),
        workflow_id=out.workflow_id,
        status=out.status,
        error_message=out.error,
        created_at=out.created_at,
        started_at=out.started_at,
        completed_at=out.completed_at,
        duration_in_seconds=out.duration_in_seconds,
        logs=[
            FlowLog(
                component_id=log.component_id,
                node_id=log.node_id,
                status=log.status,
                output=log.output,
                error=log.error,
                started_at=log.started_at,
                finished_at=log.finished_at,
            )
            for log in out.logs
        ],
    )
