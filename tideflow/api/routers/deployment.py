"""Deployment and lifecycle of a workflow's runtime: deploy, undeploy, stop, start and the lifecycle policy.

These routes change ``spec.deployed``, ``spec.replicas`` and ``spec.lifecycle`` of the Workflow; the
operator does the rest. Each waits up to ``TIDEFLOW_OPERATOR_WAIT_SECONDS`` for the operator to
observe the change (``status.observedGeneration``) and answers with what it reports, so the answer
shows the new state when the operator is quick, and says ``observed: false`` when it was not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import Field

from tideflow.api import ids
from tideflow.api.auth import Reader, Writer
from tideflow.api.context import Context, ContextDep
from tideflow.api.errors import ApiError, invalid_graph, responses
from tideflow.api.keys import Principal
from tideflow.api.schemas import ApiModel, DeploymentOut, WorkflowStatusValue, deployment_out
from tideflow.api.store import JSON, get_workflow, update_spec, wait_for
from tideflow.core.kube import WORKFLOWS
from tideflow.core.models import Lifecycle, WorkflowDefinition
from tideflow.core.validation import validate_workflow

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["deployment"],
    responses=responses(401, 403, 404, 409, 422),
)


class DeploymentAnswer(ApiModel):
    """The answer of deploy, undeploy, stop and start."""

    workflow_id: str
    deployed: bool
    status: WorkflowStatusValue
    deployment: DeploymentOut
    message: str


async def _observed(context: Context, principal: Principal, written: JSON) -> JSON:
    """The Workflow once the operator has observed ``written``'s generation (or when the wait is over)."""
    name = str(written["metadata"]["name"])
    generation = written["metadata"].get("generation")

    async def fetch() -> JSON:
        return await context.kube.get(WORKFLOWS, principal.org, name)

    def observed(obj: JSON) -> bool:
        return bool((obj.get("status") or {}).get("observedGeneration") == generation)

    return await wait_for(context, fetch, observed, context.settings.operator_wait_seconds)


def _answer(obj: JSON, message: str) -> DeploymentAnswer:
    spec = obj.get("spec") or {}
    return DeploymentAnswer(
        workflow_id=ids.workflow_id(str(obj["metadata"]["name"])),
        deployed=bool(spec.get("deployed")),
        status=WorkflowStatusValue.of(spec.get("state")),
        deployment=deployment_out(obj),
        message=message,
    )


def _refuse_inactive(obj: JSON, action: str) -> None:
    state = str((obj.get("spec") or {}).get("state") or "Draft")
    if state in ("Paused", "Archived"):
        raise ApiError(409, f"a {state.lower()} workflow cannot be {action}; set its status to active first")


def _require_deployed(obj: JSON, action: str) -> None:
    if not (obj.get("spec") or {}).get("deployed"):
        raise ApiError(409, f"the workflow is not deployed, so it cannot be {action}; deploy it first")


@router.post(
    "/{workflow_id}/deploy", response_model=DeploymentAnswer, summary="Deploy the workflow's runtime"
)
async def deploy(context: ContextDep, principal: Writer, workflow_id: str) -> DeploymentAnswer:
    obj = await get_workflow(context, principal, workflow_id, write=True)
    _refuse_inactive(obj, "deployed")
    spec = obj.get("spec") or {}
    result = validate_workflow(
        WorkflowDefinition.model_validate(
            {k: spec[k] for k in ("nodes", "connections", "settings") if k in spec}
        )
    )
    if not result.valid:
        raise invalid_graph(result.errors, "the workflow is not valid")

    def change(spec: JSON) -> None:
        spec["deployed"] = True
        if spec.get("state", "Draft") == "Draft":
            spec["state"] = "Active"

    written = await update_spec(context, principal, workflow_id, change)
    return _answer(await _observed(context, principal, written), "Deployed; the operator starts the runtime.")


@router.post(
    "/{workflow_id}/undeploy", response_model=DeploymentAnswer, summary="Remove the workflow's runtime"
)
async def undeploy(context: ContextDep, principal: Writer, workflow_id: str) -> DeploymentAnswer:
    def change(spec: JSON) -> None:
        spec["deployed"] = False

    written = await update_spec(context, principal, workflow_id, change)
    return _answer(await _observed(context, principal, written), "Undeployed; the runtime is removed.")


@router.post("/{workflow_id}/stop", response_model=DeploymentAnswer, summary="Scale the runtime to zero")
async def stop(context: ContextDep, principal: Writer, workflow_id: str) -> DeploymentAnswer:
    _require_deployed(await get_workflow(context, principal, workflow_id, write=True), "stopped")

    def change(spec: JSON) -> None:
        spec["replicas"] = 0

    written = await update_spec(context, principal, workflow_id, change)
    return _answer(
        await _observed(context, principal, written), "Stopped; it stays stopped until started again."
    )


class StartRequest(ApiModel):
    """The optional body of start."""

    replicas: int = Field(default=1, ge=1, le=100, description="Runtime replicas to run.")


@router.post("/{workflow_id}/start", response_model=DeploymentAnswer, summary="Start the runtime again")
async def start(
    context: ContextDep,
    principal: Writer,
    workflow_id: str,
    body: Annotated[StartRequest | None, Body()] = None,
) -> DeploymentAnswer:
    obj = await get_workflow(context, principal, workflow_id, write=True)
    _require_deployed(obj, "started")
    _refuse_inactive(obj, "started")
    replicas = (body or StartRequest()).replicas

    def change(spec: JSON) -> None:
        spec["replicas"] = replicas

    written = await update_spec(context, principal, workflow_id, change)
    return _answer(
        await _observed(context, principal, written),
        f"Started with {replicas} replica(s); the lifecycle policy decides when it runs.",
    )


class LifecycleAnswer(ApiModel):
    """The lifecycle policy and what the operator reports."""

    workflow_id: str
    lifecycle: Lifecycle
    deployment: DeploymentOut


@router.get(
    "/{workflow_id}/lifecycle",
    response_model=LifecycleAnswer,
    response_model_exclude_none=True,
    summary="The lifecycle policy",
)
async def get_lifecycle(context: ContextDep, principal: Reader, workflow_id: str) -> LifecycleAnswer:
    obj = await get_workflow(context, principal, workflow_id)
    return LifecycleAnswer(
        workflow_id=workflow_id,
        lifecycle=Lifecycle.model_validate((obj.get("spec") or {}).get("lifecycle") or {}),
        deployment=deployment_out(obj),
    )


@router.put(
    "/{workflow_id}/lifecycle",
    response_model=LifecycleAnswer,
    response_model_exclude_none=True,
    summary="Change the lifecycle policy",
)
async def put_lifecycle(
    context: ContextDep, principal: Writer, workflow_id: str, body: Lifecycle
) -> LifecycleAnswer:
    def change(spec: JSON) -> None:
        spec["lifecycle"] = body.to_dict()

    written = await update_spec(context, principal, workflow_id, change)
    obj = await _observed(context, principal, written)
    return LifecycleAnswer(workflow_id=workflow_id, lifecycle=body, deployment=deployment_out(obj))
