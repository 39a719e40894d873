"""Request and response models of every route, and how resources are rendered into them.

Bodies are camelCase (``isPublic``, ``triggerInputs``) as the Workflows API has them, with the few
snake_case names it keeps (``trigger_type``, ``duration_in_seconds``). Requests refuse unknown fields, so
a typo is a 422 with its path instead of being ignored. Workflow graphs reuse the resource models of
:mod:`tideflow.core.models`, so the API and the CRD can never disagree on what a node is.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tideflow.api import ids
from tideflow.core import names
from tideflow.core.models import (
    Connection,
    Lifecycle,
    Node,
    RunPhase,
    Schedule,
    TriggerType,
    ValidationIssue,
    WorkflowSettings,
    WorkflowState,
)

__all__ = [
    "REPLAYED",
    "ApiModel",
    "DeploymentOut",
    "ExecutionList",
    "ExecutionOut",
    "ExecutionStatus",
    "IdempotencyKey",
    "WorkflowCreate",
    "WorkflowList",
    "WorkflowOut",
    "WorkflowStatusValue",
    "WorkflowUpdate",
    "execution_out",
    "workflow_out",
]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=256,
        description="Retries with the same key return the original run (kept at least 24 hours).",
    ),
]
"""The ``Idempotency-Key`` request header of the routes that create runs."""
REPLAYED: Final = {"Idempotent-Replayed": "true"}
"""The header of an answer that an idempotency key replayed."""


class ApiModel(BaseModel):
    """camelCase on the wire, either spelling accepted, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class WorkflowStatusValue(StrEnum):
    """The workflow's editorial status (``spec.state`` of the resource, lower-cased)."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"

    @property
    def state(self) -> WorkflowState:
        return WorkflowState(self.value.capitalize())

    @classmethod
    def of(cls, state: str | None) -> WorkflowStatusValue:
        return cls((state or "Draft").lower())


class _WorkflowFields(ApiModel):
    description: str | None = Field(default=None, max_length=4096)
    tags: list[str] | None = Field(default=None, max_length=64)
    nodes: list[Node] | None = Field(default=None, max_length=500)
    connections: list[Connection] | None = Field(default=None, max_length=2000)
    settings: WorkflowSettings | None = None
    schedule: Schedule | None = None
    lifecycle: Lifecycle | None = None
    shared_with: list[str] | None = Field(default=None, max_length=256)
    is_public: bool | None = None
    is_template: bool | None = None


APP_ID_PATTERN: Final = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
"""A label value: what ``appId`` may be (stored as the ``tideflow.io/app-id`` label)."""


class WorkflowCreate(_WorkflowFields):
    """``POST /workflows``: the new workflow; it starts as a draft unless ``status`` says otherwise."""

    name: str = Field(min_length=1, max_length=253, description="Display name.")
    status: WorkflowStatusValue = WorkflowStatusValue.DRAFT
    app_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=APP_ID_PATTERN,
        description="The application it serves.",
    )


class WorkflowUpdate(_WorkflowFields):
    """``PUT /workflows/{id}``: only the fields given change; ``null`` clears ``schedule``."""

    name: str | None = Field(default=None, min_length=1, max_length=253, description="Display name.")
    app_id: str | None = Field(
        default=None,
        max_length=63,
        pattern=APP_ID_PATTERN,
        description="The application it serves; an empty string or null removes it.",
    )


class WorkflowCreated(ApiModel):
    workflow_id: str


class DeploymentOut(ApiModel):
    """What the operator reports about the workflow's runtime."""

    status: str = Field(description="NotDeployed, Starting, Running, Stopped or Failed.")
    ready: bool = Field(description="Whether the runtime accepts triggers now.")
    replicas: int = Field(description="Desired runtime replicas (spec.replicas).")
    ready_replicas: int = 0
    endpoint: str | None = None
    webhook_path: str | None = None
    stopped_reason: str | None = None
    next_transition_at: str | None = None
    observed: bool = Field(description="Whether the status reflects the latest spec (observedGeneration).")


class WorkflowOut(ApiModel):
    """A workflow as the API shows it."""

    id: str
    name: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    app_id: str | None = Field(
        default=None, description="The application it serves (label tideflow.io/app-id)."
    )
    shared_with: list[str] = Field(default_factory=list)
    is_public: bool = False
    is_template: bool = False
    status: WorkflowStatusValue
    nodes: list[dict[str, Any]] = Field(default_factory=list)
    connections: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    deployed: bool = False
    deployment: DeploymentOut
    required_scopes: list[str] | None = Field(
        default=None, description="What the nodes reach outside the workflow, once computed (compute-scopes)."
    )
    valid: bool | None = Field(default=None, description="The operator's Valid condition, if reported.")
    errors: list[ValidationIssue] = Field(default_factory=list)
    warnings: list[ValidationIssue] = Field(default_factory=list)
    next_run_at: str | None = None
    last_run_at: str | None = None
    last_activity_at: str | None = None
    created_at: str | None = None
    resource_version: str | None = None


class WorkflowList(ApiModel):
    """WorkflowList"""

    count: int = Field(description="Workflows matching the filters, before paging.")
    limit: int
    offset: int
    workflows: list[WorkflowOut]


class ExecutionStatus(StrEnum):
    """A run's status as the Workflows API names it (the WorkflowRun phase)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    AWAITING_UI_INTERACTION = "awaiting_ui_interaction"
    CANCELLED = "cancelled"

    @classmethod
    def of(cls, phase: str | None) -> ExecutionStatus:
        return {
            RunPhase.RUNNING.value: cls.RUNNING,
            RunPhase.COMPLETED.value: cls.COMPLETED,
            RunPhase.FAILED.value: cls.FAILED,
            RunPhase.AWAITING_INTERACTION.value: cls.AWAITING_UI_INTERACTION,
            RunPhase.CANCELLED.value: cls.CANCELLED,
        }.get(phase or "", cls.PENDING)

    @property
    def finished(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class NodeLog(ApiModel):
    node_id: str
    component_id: str | None = None
    status: str
    attempts: int = 0
    output: Any = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class ExecutionOut(ApiModel):
    """One execution (a WorkflowRun)."""

    execution_id: str
    workflow_id: str
    status: ExecutionStatus
    trigger_type: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    draft: bool = Field(default=False, description="Whether it ran a draft definition (execute).")
    scheduled_time: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_in_seconds: float | None = Field(default=None, alias="duration_in_seconds")
    error: str | None = None
    output: Any = None
    logs: list[NodeLog] = Field(default_factory=list, description="Per-node log, in execution order.")


class ExecutionList(ApiModel):
    """A page of executions."""

    count: int
    limit: int
    offset: int
    executions: list[ExecutionOut]


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == kind:
            return dict(condition)
    return None


def deployment_out(obj: dict[str, Any]) -> DeploymentOut:
    spec = obj.get("spec") or {}
    status = _status(obj)
    ready = _condition(status, "Ready")
    generation = (obj.get("metadata") or {}).get("generation")
    return DeploymentOut(
        status=str(status.get("deploymentStatus") or ("Starting" if spec.get("deployed") else "NotDeployed")),
        ready=bool(ready and ready.get("status") == "True") and bool(status.get("readyReplicas")),
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        endpoint=status.get("endpoint"),
        webhook_path=status.get("webhookPath"),
        stopped_reason=status.get("stoppedReason"),
        next_transition_at=status.get("nextTransitionAt"),
        observed=generation is not None and status.get("observedGeneration") == generation,
    )


def workflow_out(obj: dict[str, Any]) -> WorkflowOut:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = _status(obj)
    valid = _condition(status, "Valid")
    return WorkflowOut(
        id=ids.workflow_id(str(meta.get("name"))),
        name=str(spec.get("displayName") or meta.get("name")),
        description=spec.get("description"),
        tags=list(spec.get("tags") or ()),
        owner=spec.get("owner"),
        app_id=(meta.get("labels") or {}).get(names.LABEL_APP_ID),
        shared_with=list(spec.get("sharedWith") or ()),
        is_public=bool(spec.get("isPublic")),
        is_template=bool(spec.get("isTemplate")),
        status=WorkflowStatusValue.of(spec.get("state")),
        nodes=list(spec.get("nodes") or ()),
        connections=list(spec.get("connections") or ()),
        settings=spec.get("settings"),
        schedule=spec.get("schedule"),
        lifecycle=spec.get("lifecycle"),
        deployed=bool(spec.get("deployed")),
        deployment=deployment_out(obj),
        required_scopes=spec.get("requiredScopes"),
        valid=None if valid is None else valid.get("status") == "True",
        errors=[ValidationIssue.model_validate(e) for e in status.get("errors") or ()],
        warnings=[ValidationIssue.model_validate(w) for w in status.get("warnings") or ()],
        next_run_at=status.get("nextRunAt"),
        last_run_at=status.get("lastRunAt"),
        last_activity_at=status.get("lastActivityAt"),
        created_at=meta.get("creationTimestamp"),
        resource_version=meta.get("resourceVersion"),
    )


def execution_out(obj: dict[str, Any]) -> ExecutionOut:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = _status(obj)
    return ExecutionOut(
        execution_id=ids.execution_id(str(meta.get("name"))),
        workflow_id=ids.workflow_id(str((spec.get("workflowRef") or {}).get("name"))),
        status=ExecutionStatus.of(status.get("phase")),
        trigger_type=str(spec.get("triggerType") or TriggerType.MANUAL.value),
        inputs=dict(spec.get("inputs") or {}),
        draft=spec.get("definition") is not None,
        scheduled_time=spec.get("scheduledTime"),
        created_at=meta.get("creationTimestamp"),
        started_at=status.get("startedAt"),
        completed_at=status.get("completedAt"),
        duration_in_seconds=status.get("durationSeconds"),
        error=status.get("error"),
        output=status.get("output"),
        logs=[NodeLog.model_validate(n) for n in status.get("nodes") or ()],
    )
