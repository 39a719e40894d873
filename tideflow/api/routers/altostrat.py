"""The Altostrat-shaped routes under ``/workflows``: snake_case bodies, ``Authorization: Bearer`` keys.

Create and read a workflow, execute it (202 with the run, ``fl_run_...``) and read a run. They map onto
the same Workflow and WorkflowRun resources as ``/api/v1/workflows``, with the same keys, scopes,
visibility, error shape and ``Idempotency-Key`` rules; only the shapes differ (see
:mod:`tideflow.api.altostrat`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import Field

from tideflow.api import ids
from tideflow.api.altostrat import (
    AUTHORIZATION_ANNOTATION,
    FlowModel,
    FlowRun,
    FlowWorkflow,
    FlowWorkflowCreate,
    flow_run,
    flow_workflow,
    run_name,
    spec_from_flow,
)
from tideflow.api.auth import Executor, Reader, Writer
from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError, ErrorResponse, invalid_graph, responses
from tideflow.api.schemas import REPLAYED, IdempotencyKey
from tideflow.api.store import get_workflow, store_run, validated_spec
from tideflow.core import names
from tideflow.core.kube import WORKFLOWRUNS, WORKFLOWS, Conflict, NotFound
from tideflow.core.models import WorkflowDefinition
from tideflow.core.validation import validate_workflow

router = APIRouter(
    prefix="/workflows",
    tags=["altostrat"],
    responses=responses(
        401,
        403,
        404,
        422,
        e403="The key lacks the scope.",
        e404="No such workflow or run visible to the caller.",
    ),
)


@router.post("", status_code=201, response_model=FlowWorkflow, summary="Create a workflow (Altostrat shape)")
async def create(context: ContextDep, principal: Writer, body: FlowWorkflowCreate) -> FlowWorkflow:
    spec = validated_spec(spec_from_flow(body, principal.user))
    if body.is_active:
        result = validate_workflow(
            WorkflowDefinition.model_validate({k: spec[k] for k in ("nodes", "connections") if k in spec})
        )
        if not result.valid:
            raise invalid_graph(result.errors, "an active workflow must be valid")
    annotations = {AUTHORIZATION_ANNOTATION: body.authorization_id} if body.authorization_id else {}
    for _ in range(5):
        name = ids.new_workflow_name(body.name)
        resource = {
            "apiVersion": names.API_VERSION,
            "kind": names.WORKFLOW_KIND,
            "metadata": {
                "name": name,
                "labels": {names.LABEL_PART_OF: names.PART_OF},
                **({"annotations": annotations} if annotations else {}),
            },
            "spec": spec,
        }
        try:
            created = await context.kube.create(WORKFLOWS, principal.org, resource)
            context.workflows.observe(created)
            return flow_workflow(created)
        except Conflict:
            continue
    raise ApiError(503, "could not find a free workflow name; retry", headers={"Retry-After": "1"})


@router.get("/{workflow_id}", response_model=FlowWorkflow, summary="Get a workflow (Altostrat shape)")
async def retrieve(context: ContextDep, principal: Reader, workflow_id: str) -> FlowWorkflow:
    return flow_workflow(await get_workflow(context, principal, workflow_id))


class FlowExecute(FlowModel):
    """``POST /workflows/{id}/execute``: the run's context becomes its inputs."""

    context: dict[str, Any] = Field(default_factory=dict)


@router.post(
    "/{workflow_id}/execute",
    status_code=202,
    response_model=FlowRun,
    responses={409: {"model": ErrorResponse, "description": "The workflow is paused or archived."}},
    summary="Run the workflow with a context (stored first; 202 with the run)",
)
async def execute(
    context: ContextDep,
    principal: Executor,
    workflow_id: str,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[FlowExecute | None, Body()] = None,
) -> JSONResponse:
    obj = await get_workflow(context, principal, workflow_id)
    state = str((obj.get("spec") or {}).get("state") or "Draft")
    if state in ("Paused", "Archived"):
        raise ApiError(409, f"the workflow is {state.lower()}; make it active to run it")
    stored = await store_run(
        context,
        principal,
        ids.workflow_name(workflow_id),
        {"triggerType": "api", "inputs": (body or FlowExecute()).context},
        idempotency_key=idempotency_key,
    )
    return JSONResponse(
        flow_run(stored.obj).model_dump(mode="json"),
        status_code=202,
        headers=REPLAYED if stored.replayed else None,
    )


@router.get("/{workflow_id}/runs/{run_id}", response_model=FlowRun, summary="Get a run (Altostrat shape)")
async def get_run(context: ContextDep, principal: Reader, workflow_id: str, run_id: str) -> FlowRun:
    await get_workflow(context, principal, workflow_id)
    name = run_name(run_id)
    try:
        run = await context.kube.get(WORKFLOWRUNS, principal.org, name)
    except NotFound:
        raise ApiError(404, f"run {run_id} not found") from None
    if ((run.get("spec") or {}).get("workflowRef") or {}).get("name") != ids.workflow_name(workflow_id):
        raise ApiError(404, f"run {run_id} is not a run of workflow {workflow_id}")
    return flow_run(run)
