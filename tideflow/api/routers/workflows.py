"""``/api/v1/workflows``: list, create, read, update, delete, duplicate, status and validate.

Each route is a thin mapping onto the Workflow resource: the caller's organization is the namespace,
the owner is the caller, and the display name, editorial status and graph live in the spec.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import Field

from tideflow.api import ids
from tideflow.api.auth import Reader, Writer, can_read
from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError, responses
from tideflow.api.schemas import (
    ApiModel,
    WorkflowCreate,
    WorkflowCreated,
    WorkflowList,
    WorkflowOut,
    WorkflowStatusValue,
    WorkflowUpdate,
    workflow_out,
)
from tideflow.api.store import JSON, get_workflow, update_spec, validated_spec
from tideflow.core import names
from tideflow.core import schedules as schedule_math
from tideflow.core.kube import WORKFLOWS, Conflict
from tideflow.core.models import (
    Connection,
    Node,
    Schedule,
    ValidationIssue,
    WorkflowDefinition,
    WorkflowSettings,
)
from tideflow.core.validation import validate_workflow

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["workflows"],
    responses=responses(401, 403, 404, 422),
)


def _spec(obj: JSON) -> JSON:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _title(obj: JSON) -> str:
    """The display name, as ``workflow_out`` shows it."""
    return str(_spec(obj).get("displayName") or obj["metadata"]["name"])


def _searched(obj: JSON) -> tuple[str, str]:
    """What ``search`` looks in: the display name and the description."""
    return _title(obj), str(_spec(obj).get("description") or "")


_SORT_KEYS: dict[str, Callable[[JSON], str]] = {
    "createdAt": lambda obj: str(obj["metadata"].get("creationTimestamp") or ""),
    "name": _title,
    "status": lambda obj: str(_spec(obj).get("state") or "Draft").lower(),
}
_PREVIEW_COUNT = 5


def _new_spec(body: WorkflowCreate | WorkflowUpdate, spec: JSON) -> None:
    """Write the fields the body sets into a resource spec (camelCase, as the CRD has them)."""
    given = body.model_fields_set
    for field in ("description", "tags", "shared_with", "is_public", "is_template"):
        if field in given:
            spec[WorkflowCreate.model_fields[field].alias or field] = getattr(body, field)
    for field in ("nodes", "connections", "settings", "schedule", "lifecycle"):
        if field in given:
            value = getattr(body, field)
            if value is None and field != "schedule":
                continue
            spec[field] = (
                [item.to_dict() for item in value]
                if isinstance(value, list)
                else (value.to_dict() if value is not None else None)
            )
    if "name" in given and body.name is not None:
        spec["displayName"] = body.name
    for key in [k for k, v in spec.items() if v is None]:
        del spec[key]


@router.get("", response_model=WorkflowList, summary="List the workflows the caller can see")
async def list_workflows(
    context: ContextDep,
    principal: Reader,
    status: Annotated[WorkflowStatusValue | None, Query(description="Only this status.")] = None,
    tag: Annotated[str | None, Query(max_length=63, description="Only workflows with this tag.")] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Case-insensitive text in the name or description.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sort: Annotated[
        str, Query(pattern=r"^(createdAt|name|status)(:(asc|desc))?$", description="``field[:asc|desc]``.")
    ] = "createdAt:desc",
) -> WorkflowList:
    objs = [obj for obj in await context.workflows.list(principal.org) if can_read(principal, obj)]
    # Filter and sort the raw objects; only the page returned is rendered.
    if status is not None:
        objs = [obj for obj in objs if _spec(obj).get("state", "Draft") == status.state.value]
    if tag is not None:
        objs = [obj for obj in objs if tag in (_spec(obj).get("tags") or ())]
    if search:
        needle = search.casefold()
        objs = [obj for obj in objs if any(needle in text.casefold() for text in _searched(obj))]
    field, _, direction = sort.partition(":")
    objs.sort(key=lambda obj: (_SORT_KEYS[field](obj), obj["metadata"]["name"]), reverse=direction != "asc")
    shown = [workflow_out(obj) for obj in objs[offset : offset + limit]]
    return WorkflowList(count=len(objs), limit=limit, offset=offset, workflows=shown)


@router.post(
    "", status_code=201, response_model=WorkflowCreated, summary="Create a workflow (a draft by default)"
)
async def create_workflow(context: ContextDep, principal: Writer, body: WorkflowCreate) -> WorkflowCreated:
    spec: JSON = {"owner": principal.user, "state": body.status.state.value, "deployed": False}
    _new_spec(body, spec)
    spec = validated_spec(spec)
    for _ in range(5):
        name = ids.new_workflow_name(body.name)
        resource = {
            "apiVersion": names.API_VERSION,
            "kind": names.WORKFLOW_KIND,
            "metadata": {
                "name": name,
                "labels": {
                    names.LABEL_PART_OF: names.PART_OF,
                    **({names.LABEL_APP_ID: body.app_id} if body.app_id else {}),
                },
            },
            "spec": spec,
        }
        try:
            context.workflows.observe(await context.kube.create(WORKFLOWS, principal.org, resource))
        except Conflict:
            continue  # the random suffix is taken: draw another
        return WorkflowCreated(workflow_id=ids.workflow_id(name))
    raise ApiError(503, "could not find a free workflow name; retry", headers={"Retry-After": "1"})


@router.get("/{workflow_id}", response_model=WorkflowOut, summary="Get a workflow")
async def get(context: ContextDep, principal: Reader, workflow_id: str) -> WorkflowOut:
    return workflow_out(await get_workflow(context, principal, workflow_id))


@router.put("/{workflow_id}", response_model=WorkflowOut, summary="Change some fields of a workflow")
async def update(
    context: ContextDep, principal: Writer, workflow_id: str, body: WorkflowUpdate
) -> WorkflowOut:
    labels = {names.LABEL_APP_ID: body.app_id or None} if "app_id" in body.model_fields_set else None
    return workflow_out(
        await update_spec(context, principal, workflow_id, lambda spec: _new_spec(body, spec), labels=labels)
    )


@router.delete("/{workflow_id}", status_code=204, response_class=Response, summary="Delete a workflow")
async def delete(context: ContextDep, principal: Writer, workflow_id: str) -> Response:
    await get_workflow(context, principal, workflow_id, write=True)
    await context.kube.delete(WORKFLOWS, principal.org, ids.workflow_name(workflow_id))
    context.workflows.observe_deleted(principal.org, ids.workflow_name(workflow_id))
    return Response(status_code=204)


@router.post(
    "/{workflow_id}/duplicate",
    status_code=201,
    response_model=WorkflowCreated,
    summary="Copy a workflow as a new draft owned by the caller",
)
async def duplicate(context: ContextDep, principal: Writer, workflow_id: str) -> WorkflowCreated:
    source = await get_workflow(context, principal, workflow_id)
    spec = source.get("spec") or {}
    title = str(spec.get("displayName") or source["metadata"]["name"])
    copied = ("description", "tags", "nodes", "connections", "settings", "schedule", "lifecycle")
    body = WorkflowCreate.model_validate(
        {"name": f"{title} (copy)"[:253], **{key: spec[key] for key in copied if key in spec}}
    )
    return await create_workflow(context, principal, body)


class StatusChange(ApiModel):
    """The body of PUT /{id}/status."""

    status: WorkflowStatusValue


class StatusChanged(ApiModel):
    """The answer of PUT /{id}/status."""

    workflow_id: str
    status: WorkflowStatusValue
    previous_status: WorkflowStatusValue


@router.put(
    "/{workflow_id}/status", response_model=StatusChanged, summary="Set draft, active, paused or archived"
)
async def set_status(
    context: ContextDep, principal: Writer, workflow_id: str, body: StatusChange
) -> StatusChanged:
    before = await get_workflow(context, principal, workflow_id, write=True)

    def change(spec: JSON) -> None:
        spec["state"] = body.status.state.value

    await update_spec(context, principal, workflow_id, change)
    return StatusChanged(
        workflow_id=workflow_id,
        status=body.status,
        previous_status=WorkflowStatusValue.of((before.get("spec") or {}).get("state")),
    )


class ValidateRequest(ApiModel):
    """Optional: validate these instead of the stored graph (an editor's unsaved changes)."""

    nodes: list[Node] | None = None
    connections: list[Connection] | None = None
    settings: WorkflowSettings | None = None
    schedule: Schedule | None = None


class SchedulePreview(ApiModel):
    """Whether the schedule is active, why, and its next fire times."""

    type: str
    timezone: str
    active: bool = Field(description="Whether the schedule fires on its own now (deployed, active, valid).")
    reason: str = Field(description="Why it is (not) active.")
    next_fire_times: list[str] = Field(default_factory=list, description="The next fire times, RFC 3339 UTC.")


class ValidationOut(ApiModel):
    """The answer of validate."""

    valid: bool
    errors: list[ValidationIssue]
    warnings: list[ValidationIssue]
    node_count: int
    connection_count: int
    schedule: SchedulePreview | None = None


def _preview(
    spec: JSON, schedule: Schedule, now: dt.datetime
) -> tuple[SchedulePreview, list[ValidationIssue]]:
    problems = [
        ValidationIssue(path=f"spec.schedule.{field}", message=message)
        for field, message in schedule_math.issues(schedule)
    ]
    times = [] if problems else schedule_math.preview(schedule, now, _PREVIEW_COUNT)
    if problems:
        active, reason = False, "The schedule is invalid."
    elif schedule.type.value == "manual":
        active, reason = False, "Manual: runs only when triggered."
    elif not spec.get("deployed"):
        active, reason = False, "The workflow is not deployed."
    elif spec.get("state") != "Active":
        active, reason = False, f"The workflow is {str(spec.get('state') or 'Draft').lower()}, not active."
    else:
        active, reason = True, "The schedule fires on its own."
    preview = SchedulePreview(
        type=schedule.type.value,
        timezone=schedule.timezone,
        active=active,
        reason=reason,
        next_fire_times=[t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") for t in times],
    )
    return preview, problems


@router.post("/{workflow_id}/validate", response_model=ValidationOut, summary="Validate a workflow's graph")
async def validate(
    context: ContextDep,
    principal: Reader,
    workflow_id: str,
    body: Annotated[ValidateRequest | None, Body()] = None,
) -> ValidationOut:
    spec: dict[str, Any] = dict((await get_workflow(context, principal, workflow_id)).get("spec") or {})
    if body is not None:
        for field in body.model_fields_set:
            value = getattr(body, field)
            if value is None:
                spec.pop(field, None)  # null: validate as if the field were unset (its default)
            else:
                spec[field] = [v.to_dict() for v in value] if isinstance(value, list) else value.to_dict()
    definition = WorkflowDefinition.model_validate(
        {k: spec[k] for k in ("nodes", "connections", "settings") if k in spec}
    )
    result = validate_workflow(definition)
    errors = list(result.errors)
    preview = None
    if spec.get("schedule"):
        preview, problems = _preview(spec, Schedule.model_validate(spec["schedule"]), context.clock())
        errors.extend(problems)
    return ValidationOut(
        valid=not errors,
        errors=errors,
        warnings=result.warnings,
        node_count=result.node_count,
        connection_count=result.connection_count,
        schedule=preview,
    )
