"""Executions: draft runs (execute), triggers proxied to runtimes, run status and logs, approvals, cancel.

Every execution is a WorkflowRun. ``execute`` stores a draft run itself (the definition travels in the
run); ``trigger`` forwards to the workflow's runtime, which stores the run before it answers, starting
the runtime first when the lifecycle policy allows (see :mod:`tideflow.api.proxy`). With an
``Idempotency-Key``, the run's name is derived from (workflow, key), so a retry finds the original run
(answered again, with ``Idempotent-Replayed: true``) and the same key with a different body is a 422.
Keys are remembered as long as the run exists (at least 24 hours under the default retention).
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from tideflow.api import ids
from tideflow.api.auth import Executor, Reader
from tideflow.api.context import Context, ContextDep
from tideflow.api.errors import ApiError, ErrorDetail, invalid_graph, responses
from tideflow.api.keys import Principal
from tideflow.api.proxy import RuntimeProxy, runtime_error
from tideflow.api.schemas import (
    REPLAYED,
    ApiModel,
    ExecutionList,
    ExecutionOut,
    ExecutionStatus,
    IdempotencyKey,
    execution_out,
)
from tideflow.api.store import JSON, get_run, get_workflow, same_request, store_run, wait_for
from tideflow.core import names
from tideflow.core.clock import format_time
from tideflow.core.kube import WORKFLOWRUNS, Conflict
from tideflow.core.models import TriggerType, WorkflowDefinition
from tideflow.core.naming import idempotent_run_name
from tideflow.core.validation import validate_workflow

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["executions"],
    responses=responses(
        401,
        403,
        404,
        409,
        422,
        503,
        e404="No such workflow or execution visible to the caller.",
        e409="The workflow or run is not in a state that allows it.",
        e422="Invalid input, or an idempotency key reused with another body.",
    ),
)


def _answer(
    model: ApiModel | ExecutionOut, status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status, headers=headers)


class ExecuteRequest(ApiModel):
    """``POST /{id}/execute``: run a draft, optionally of another definition than the stored one."""

    definition: WorkflowDefinition | None = Field(
        default=None, description="The graph to run instead of the stored one (an editor's draft)."
    )
    trigger_inputs: dict[str, Any] = Field(default_factory=dict, description="The run's inputs.")


class ExecutionCreated(ApiModel):
    """The answer of execute: the new (or original) run."""

    execution_id: str
    status: ExecutionStatus


@router.post(
    "/{workflow_id}/execute",
    status_code=201,
    response_model=ExecutionCreated,
    summary="Run a draft of the workflow (its runtime is started for it)",
)
async def execute(
    context: ContextDep,
    principal: Executor,
    workflow_id: str,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[ExecuteRequest | None, Body()] = None,
) -> JSONResponse:
    obj = await get_workflow(context, principal, workflow_id)
    body = body or ExecuteRequest()
    if (obj.get("spec") or {}).get("state") == "Archived":
        raise ApiError(409, "an archived workflow cannot be executed")
    spec = obj.get("spec") or {}
    definition = body.definition or WorkflowDefinition.model_validate(
        {k: spec[k] for k in ("nodes", "connections", "settings") if k in spec}
    )
    result = validate_workflow(definition, prefix="body.definition")
    if not result.valid:
        raise invalid_graph(result.errors, "the definition is not valid")
    stored = await store_run(
        context,
        principal,
        ids.workflow_name(workflow_id),
        {
            "triggerType": TriggerType.MANUAL.value,
            "inputs": body.trigger_inputs,
            "definition": definition.to_dict(),
        },
        idempotency_key=idempotency_key,
        compare=("triggerType", "inputs", "definition"),
    )
    answer = ExecutionCreated(
        execution_id=ids.execution_id(stored.name), status=execution_out(stored.obj).status
    )
    return _answer(answer, 201, REPLAYED if stored.replayed else None)


class TriggerRequest(ApiModel):
    """``POST /{id}/trigger``."""

    trigger_type: TriggerType = Field(default=TriggerType.API, alias="trigger_type")
    inputs: dict[str, Any] = Field(default_factory=dict)
    sync: bool = Field(default=False, description="Wait for the run to finish and answer with its result.")
    priority: int = Field(default=0, ge=-1000, le=1000)


class TriggerAccepted(ApiModel):
    """The answer of an async trigger."""

    execution_id: str
    status: ExecutionStatus
    created: bool = Field(description="False when an Idempotency-Key found the original run.")


async def _finished(context: Context, principal: Principal, name: str) -> JSON:
    async def fetch() -> JSON:
        return await context.kube.get(WORKFLOWRUNS, principal.org, name)

    def done(run: JSON) -> bool:
        return ExecutionStatus.of((run.get("status") or {}).get("phase")) in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
            ExecutionStatus.AWAITING_UI_INTERACTION,
        )

    return await wait_for(context, fetch, done, context.settings.sync_timeout_seconds, interval=0.05)


async def _trigger_answer(
    context: Context,
    principal: Principal,
    name: str,
    *,
    created: bool,
    sync: bool,
    replayed: bool,
    phase: str | None = None,
) -> JSONResponse:
    """The answer to a trigger: the finished execution (sync), else the accepted run and its status
    (``phase`` as the runtime reported it, or as the run says when it is not given)."""
    headers = REPLAYED if replayed else None
    if sync:
        run = await _finished(context, principal, name)
        out = execution_out(run)
        return _answer(out, 200 if out.status.finished else 202, headers)
    if phase is None:
        phase = ((await context.kube.get(WORKFLOWRUNS, principal.org, name)).get("status") or {}).get("phase")
    accepted = TriggerAccepted(
        execution_id=ids.execution_id(name), status=ExecutionStatus.of(phase), created=created
    )
    return _answer(accepted, 202, headers)


@router.post(
    "/{workflow_id}/trigger",
    status_code=202,
    response_model=TriggerAccepted | ExecutionOut,
    responses={
        200: {"model": ExecutionOut, "description": "A sync trigger's finished run."},
        202: {
            "description": "Accepted: the stored run (async), or a sync trigger's run that is waiting for an "
            "approval or did not finish within the sync timeout (the execution so far)."
        },
    },
    summary="Trigger the deployed workflow through its runtime",
)
async def trigger(
    context: ContextDep,
    principal: Executor,
    workflow_id: str,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> JSONResponse:
    obj = await get_workflow(context, principal, workflow_id)
    body = body or TriggerRequest()
    if body.trigger_type is TriggerType.SCHEDULE:
        raise ApiError(
            422,
            "schedule runs are created by the operator",
            details=[ErrorDetail(path="body.trigger_type", message="must not be schedule")],
        )
    workflow = ids.workflow_name(workflow_id)
    if idempotency_key:
        existing = await context.kube.get_or_none(
            WORKFLOWRUNS, principal.org, idempotent_run_name(workflow, idempotency_key)
        )
        if existing is not None:
            same_request(existing, {"inputs": body.inputs, "triggerType": body.trigger_type.value})
            name = str(existing["metadata"]["name"])
            return await _trigger_answer(
                context, principal, name, created=False, sync=body.sync, replayed=True
            )
    payload = {
        "inputs": body.inputs,
        "triggerType": body.trigger_type.value,
        "sync": False,
        "priority": body.priority,
        **({"idempotencyKey": idempotency_key} if idempotency_key else {}),
    }
    response = await RuntimeProxy(context).post(obj, "/trigger", payload)
    if response.status_code >= 400:
        raise runtime_error(response)
    answer = response.json()
    name = str(answer["runId"])
    return await _trigger_answer(
        context,
        principal,
        name,
        created=bool(answer.get("created", True)),
        sync=body.sync,
        replayed=False,
        phase=answer.get("phase"),
    )


@router.get(
    "/{workflow_id}/executions",
    response_model=ExecutionList,
    summary="The workflow's executions, newest first",
)
async def list_executions(
    context: ContextDep,
    principal: Reader,
    workflow_id: str,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[ExecutionStatus | None, Query(description="Only executions in this status.")] = None,
) -> ExecutionList:
    await get_workflow(context, principal, workflow_id)
    runs = await context.kube.list_all(
        WORKFLOWRUNS, principal.org, label_selector=f"{names.LABEL_WORKFLOW}={ids.workflow_name(workflow_id)}"
    )
    shown = [execution_out(run) for run in runs]
    if status is not None:
        shown = [e for e in shown if e.status == status]
    shown.sort(key=lambda e: (e.created_at or "", e.execution_id), reverse=True)
    return ExecutionList(
        count=len(shown), limit=limit, offset=offset, executions=shown[offset : offset + limit]
    )


executions = APIRouter(prefix="/api/v1/workflows/executions", tags=["executions"], responses=router.responses)


@executions.get("/{execution_id}", response_model=ExecutionOut, summary="An execution with its per-node logs")
async def get_execution(context: ContextDep, principal: Reader, execution_id: str) -> ExecutionOut:
    run, _ = await get_run(context, principal, execution_id)
    return execution_out(run)


class DecisionRequest(ApiModel):
    """The optional body of resume and reject."""

    comment: str | None = Field(default=None, max_length=4096)
    node_id: str | None = Field(
        default=None, max_length=63, description="The approval node, if several wait."
    )


async def _decide(
    context: Context, principal: Principal, execution_id: str, action: str, body: DecisionRequest | None
) -> ExecutionOut:
    run, workflow = await get_run(context, principal, execution_id)
    if execution_out(run).status is not ExecutionStatus.AWAITING_UI_INTERACTION:
        raise ApiError(409, f"execution {execution_id} is not waiting for an approval")
    payload = {
        **(body or DecisionRequest()).model_dump(by_alias=True, exclude_none=True),
        "decidedBy": principal.user,
    }
    response = await RuntimeProxy(context).post(
        workflow, f"/runs/{run['metadata']['name']}/{action}", payload
    )
    if response.status_code >= 400:
        raise runtime_error(response)
    return execution_out(await context.kube.get(WORKFLOWRUNS, principal.org, run["metadata"]["name"]))


@executions.post("/{execution_id}/resume", response_model=ExecutionOut, summary="Approve a waiting execution")
async def resume(
    context: ContextDep,
    principal: Executor,
    execution_id: str,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> ExecutionOut:
    return await _decide(context, principal, execution_id, "resume", body)


@executions.post("/{execution_id}/reject", response_model=ExecutionOut, summary="Reject a waiting execution")
async def reject(
    context: ContextDep,
    principal: Executor,
    execution_id: str,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> ExecutionOut:
    return await _decide(context, principal, execution_id, "reject", body)


class CancelRequest(ApiModel):
    """The optional body of cancel."""

    reason: str = Field(default="cancelled by request", min_length=1, max_length=1024)


@executions.post(
    "/{execution_id}/cancel",
    response_model=ExecutionOut,
    responses={202: {"model": ExecutionOut, "description": "Cancellation asked; not finished yet."}},
    summary="Cancel an execution that has not finished",
)
async def cancel(
    context: ContextDep,
    principal: Executor,
    execution_id: str,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> JSONResponse:
    run, _ = await get_run(context, principal, execution_id)
    if execution_out(run).status.finished:
        raise ApiError(409, f"execution {execution_id} has already finished")
    name = str(run["metadata"]["name"])
    reason = (body or CancelRequest()).reason
    marked = await context.kube.patch(
        WORKFLOWRUNS, principal.org, name, {"metadata": {"annotations": {names.ANNOTATION_CANCEL: reason}}}
    )
    if (marked.get("status") or {}).get("phase") in (None, "Pending", "AwaitingInteraction"):
        # Nobody executes it: cancel it now rather than wait for a runtime (perhaps scaled to zero) to
        # read the annotation. The resourceVersion makes this a no-op if a runtime claimed it meanwhile,
        # and the annotation then has that runtime cancel it.
        cancelled = {
            "metadata": {"resourceVersion": marked["metadata"]["resourceVersion"]},
            "status": {"phase": "Cancelled", "error": reason, "completedAt": format_time(context.clock())},
        }
        with contextlib.suppress(Conflict):
            await context.kube.patch(WORKFLOWRUNS, principal.org, name, cancelled, subresource="status")

    async def fetch() -> JSON:
        return await context.kube.get(WORKFLOWRUNS, principal.org, name)

    def done(obj: JSON) -> bool:
        return execution_out(obj).status.finished

    after = await wait_for(context, fetch, done, context.settings.operator_wait_seconds)
    out = execution_out(after)
    return _answer(out, 200 if out.status.finished else 202)
