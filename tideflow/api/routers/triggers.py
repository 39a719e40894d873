"""Queue, email and event triggers: each stores its WorkflowRuns first, so none is lost while runtimes stop.

``enqueue`` and ``email-trigger`` store one run for one workflow; ``POST /events`` stores one run for every
active, deployed workflow of the caller's organization whose ``event_trigger`` matches. Runs wait as
Pending: a running runtime claims them (highest ``priority`` first, then in arrival order), and the
operator starts a runtime stopped by its lifecycle policy because a run waits for it. Queue runs are
named with the arrival time in microseconds, so runs of equal priority are claimed in arrival order
even within one second (the runtime breaks ties on ``creationTimestamp``, then on the name).
"""

from __future__ import annotations

import itertools
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import AliasChoices, Field, ValidationError

from tideflow.api import ids
from tideflow.api.auth import Executor, can_read
from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError, ErrorDetail, invalid, responses
from tideflow.api.schemas import REPLAYED, ApiModel, ExecutionStatus, IdempotencyKey, execution_out
from tideflow.api.store import JSON, get_workflow, store_run
from tideflow.core.naming import random_suffix

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["triggers"],
    responses=responses(
        401,
        403,
        404,
        409,
        422,
        e403="The key lacks the workflows:execute scope.",
        e409="The workflow is not active or not deployed.",
        e422="Invalid input, no trigger node of the type, or an idempotency key reused.",
    ),
)

_sequence = itertools.count()


def queue_run_name(workflow: str) -> str:
    """``<workflow>-q-<arrival time, 14 hex digits of µs><counter><random>``: names sort in arrival order."""
    micros = time.time_ns() // 1000
    return f"{workflow}-q-{micros:014x}{next(_sequence) % 4096:03x}{random_suffix(3)}"


def trigger_nodes(obj: JSON, node_type: str) -> list[JSON]:
    """The workflow's nodes of ``node_type``."""
    return [node for node in (obj.get("spec") or {}).get("nodes") or () if node.get("type") == node_type]


def require_trigger(obj: JSON, node_type: str, what: str) -> list[JSON]:
    """409 unless the workflow is active and deployed; 422 unless it has a ``node_type`` node."""
    spec = obj.get("spec") or {}
    state = str(spec.get("state") or "Draft")
    if state != "Active":
        raise ApiError(409, f"the workflow is {state.lower()}; only active workflows take {what}")
    if not spec.get("deployed"):
        raise ApiError(409, f"the workflow is not deployed; deploy it to take {what}")
    nodes = trigger_nodes(obj, node_type)
    if not nodes:
        raise ApiError(
            422,
            f"the workflow has no {node_type} node, so it takes no {what}",
            details=[ErrorDetail(path="spec.nodes", message=f"no node of type {node_type}")],
        )
    return nodes


class Queued(ApiModel):
    """A stored run of a queue, email or event trigger."""

    execution_id: str
    trigger_type: str = Field(alias="trigger_type")
    status: ExecutionStatus
    priority: int = 0


def _queued(obj: JSON) -> Queued:
    out = execution_out(obj)
    priority = (obj.get("spec") or {}).get("priority")
    return Queued(
        execution_id=out.execution_id,
        trigger_type=out.trigger_type,
        status=out.status,
        priority=priority if isinstance(priority, int) else 0,
    )


class EnqueueMeta(ApiModel):
    """The envelope fields of ``POST /{id}/enqueue``; any other body is the message itself."""

    message: Any = Field(default=None, validation_alias=AliasChoices("message", "data"))
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    source: str | None = Field(default=None, max_length=253, description="Who sent the message.")


@router.post(
    "/{workflow_id}/enqueue",
    status_code=201,
    response_model=Queued,
    summary="Queue a message for the workflow's queue_trigger (stored first; runs by priority)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "`message` (alias `data`), `priority` and `source`; a body without "
                        "`message`/`data` is the message itself.",
                        "additionalProperties": True,
                    }
                }
            }
        }
    },
)
async def enqueue(
    context: ContextDep,
    principal: Executor,
    workflow_id: str,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    obj = await get_workflow(context, principal, workflow_id)
    require_trigger(obj, "queue_trigger", "queue messages")
    raw = await _json_body(request)
    envelope = isinstance(raw, dict) and ("message" in raw or "data" in raw)
    if envelope:
        meta = _validated(EnqueueMeta, raw)
        message = meta.message
    else:
        fields = (
            {key: raw.pop(key) for key in ("priority", "source") if key in raw}
            if isinstance(raw, dict)
            else {}
        )
        meta = _validated(EnqueueMeta, fields)
        message = raw
    inputs: JSON = {"message": message, "priority": meta.priority}
    if meta.source is not None:
        inputs["source"] = meta.source
    stored = await store_run(
        context,
        principal,
        ids.workflow_name(workflow_id),
        {"triggerType": "queue", "inputs": inputs, "priority": meta.priority},
        idempotency_key=idempotency_key,
        compare=("triggerType", "inputs", "priority"),
        name=queue_run_name,
    )
    return JSONResponse(
        _queued(stored.obj).model_dump(mode="json", by_alias=True),
        status_code=201,
        headers=REPLAYED if stored.replayed else None,
    )


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if not body:
        return {}
    try:
        return await request.json()
    except ValueError:
        raise ApiError(
            422, "the body is not JSON", details=[ErrorDetail(path="body", message="invalid JSON")]
        ) from None


def _validated(model: type[EnqueueMeta], data: Any) -> EnqueueMeta:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, "body") from None


class Attachment(ApiModel):
    """An attachment of a parsed email (its metadata; contents travel by reference)."""

    filename: str = Field(max_length=1024)
    content_type: str | None = Field(default=None, max_length=255)
    size: int | None = Field(default=None, ge=0)
    url: str | None = Field(default=None, max_length=4096, description="Where the content can be fetched.")


class EmailIn(ApiModel):
    """A parsed email, as an inbound mail service posts it."""

    from_: str = Field(alias="from", min_length=1, max_length=1024, description="Sender address.")
    to: list[str] = Field(default_factory=list, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field(default="", max_length=4096)
    body_text: str | None = Field(
        default=None, validation_alias=AliasChoices("bodyText", "body_text", "text"), max_length=262_144
    )
    body_html: str | None = Field(
        default=None, validation_alias=AliasChoices("bodyHtml", "body_html", "html"), max_length=262_144
    )
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    message_id: str | None = Field(default=None, max_length=1024)
    received_at: str | None = Field(default=None, max_length=64)


@router.post(
    "/{workflow_id}/email-trigger",
    status_code=201,
    response_model=Queued,
    summary="Deliver a parsed email to the workflow's email_trigger",
)
async def email_trigger(
    context: ContextDep,
    principal: Executor,
    workflow_id: str,
    body: EmailIn,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    obj = await get_workflow(context, principal, workflow_id)
    nodes = require_trigger(obj, "email_trigger", "emails")
    addresses = [str((node.get("config") or {}).get("address") or "").lower() for node in nodes]
    recipients = {address.lower() for address in [*body.to, *body.cc]}
    if all(addresses) and not set(addresses) & recipients:  # a node without an address takes any email
        raise ApiError(
            422,
            f"the email is not addressed to {', '.join(sorted(set(addresses)))}",
            details=[ErrorDetail(path="body.to", message="does not include the trigger's address")],
        )
    stored = await store_run(
        context,
        principal,
        ids.workflow_name(workflow_id),
        {"triggerType": "email", "inputs": body.model_dump(mode="json", by_alias=True, exclude_none=True)},
        idempotency_key=idempotency_key,
        name=queue_run_name,
    )
    return JSONResponse(
        _queued(stored.obj).model_dump(mode="json", by_alias=True),
        status_code=201,
        headers=REPLAYED if stored.replayed else None,
    )


class EventIn(ApiModel):
    """An event for every workflow whose event_trigger matches it."""

    event_type: str = Field(alias="event_type", min_length=1, max_length=253)
    event_data: Any = Field(default=None, alias="event_data")
    source: str | None = Field(default=None, max_length=253)


class EventResult(ApiModel):
    """What happened for one matching workflow."""

    workflow_id: str
    execution_id: str | None = None
    status: str = Field(description="queued, or failed with the error.")
    error: str | None = None


class EventsOut(ApiModel):
    """The answer of ``POST /events``."""

    workflows_triggered: int = Field(alias="workflows_triggered")
    workflows_failed: int = Field(alias="workflows_failed")
    results: list[EventResult]


def event_matches(obj: JSON, event: EventIn) -> bool:
    """Whether an event_trigger of the workflow takes the event (unset ``eventType``/``source``: any)."""
    for node in trigger_nodes(obj, "event_trigger"):
        config = node.get("config") or {}
        wanted_type = config.get("eventType")
        wanted_source = config.get("source")
        if wanted_type not in (None, "", event.event_type):
            continue
        if wanted_source not in (None, "") and wanted_source != event.source:
            continue
        return True
    return False


@router.post(
    "/events",
    response_model=EventsOut,
    summary="Run every active deployed workflow whose event_trigger matches the event",
)
async def events(
    context: ContextDep,
    principal: Executor,
    body: Annotated[EventIn, Body()],
    idempotency_key: IdempotencyKey = None,
) -> EventsOut:
    workflows = await context.workflows.list(principal.org)
    matching = [
        obj
        for obj in workflows
        if can_read(principal, obj)
        and (obj.get("spec") or {}).get("state") == "Active"
        and (obj.get("spec") or {}).get("deployed")
        and event_matches(obj, body)
    ]
    inputs = {"eventType": body.event_type, "data": body.event_data, "source": body.source}
    results: list[EventResult] = []
    for obj in sorted(matching, key=lambda o: str(o["metadata"]["name"])):
        name = str(obj["metadata"]["name"])
        try:
            stored = await store_run(
                context,
                principal,
                name,
                {"triggerType": "event", "inputs": inputs},
                idempotency_key=idempotency_key,
                name=queue_run_name,
            )
        except ApiError as exc:
            results.append(EventResult(workflow_id=ids.workflow_id(name), status="failed", error=exc.message))
            continue
        results.append(
            EventResult(
                workflow_id=ids.workflow_id(name), execution_id=ids.execution_id(stored.name), status="queued"
            )
        )
    failed = sum(1 for result in results if result.status == "failed")
    return EventsOut(workflows_triggered=len(results) - failed, workflows_failed=failed, results=results)
