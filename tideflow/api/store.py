"""Reads and writes of Workflow and WorkflowRun resources on behalf of a caller.

Every route goes through here, so visibility (404 for what the caller may not see, 403 for what they
may see but not change) and optimistic concurrency (read, change, replace with the read
``resourceVersion``, retry on 409) are decided in one place. A change is checked against the resource
model before it is sent, so bad input is a 422 with the field path and nothing is written.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tideflow.api import ids
from tideflow.api.auth import can_read, can_write
from tideflow.api.context import Context
from tideflow.api.errors import ApiError, ErrorDetail, invalid
from tideflow.api.keys import Principal
from tideflow.core import names
from tideflow.core.kube import WORKFLOWRUNS, WORKFLOWS, Conflict, NotFound
from tideflow.core.models import WorkflowRunSpec, WorkflowSpec
from tideflow.core.naming import idempotent_run_name, random_run_name

__all__ = [
    "StoredRun",
    "get_run",
    "get_workflow",
    "same_request",
    "store_run",
    "update_spec",
    "validated_spec",
    "wait_for",
]

JSON = dict[str, Any]
_WRITE_ATTEMPTS = 5


def validated_spec(spec: Mapping[str, Any]) -> JSON:
    """The spec as the resource model normalizes it; 422 with ``spec.…`` paths when it is not valid."""
    try:
        return WorkflowSpec.model_validate(spec).to_dict()
    except ValidationError as exc:
        raise invalid(exc, "spec", "invalid workflow") from None


async def get_workflow(
    context: Context, principal: Principal, workflow_id: str, *, write: bool = False
) -> JSON:
    """The caller's workflow; 404 when it does not exist or is not visible, 403 when ``write`` is refused."""
    name = ids.workflow_name(workflow_id)
    try:
        obj = await context.kube.get(WORKFLOWS, principal.org, name)
    except NotFound:
        raise ApiError(404, f"workflow {workflow_id} not found") from None
    if not can_read(principal, obj):
        raise ApiError(404, f"workflow {workflow_id} not found")
    if write and not can_write(principal, obj):
        raise ApiError(403, f"only the owner of workflow {workflow_id} or an admin may change it")
    return obj


async def update_spec(
    context: Context,
    principal: Principal,
    workflow_id: str,
    change: Callable[[JSON], None],
    *,
    labels: Mapping[str, str | None] | None = None,
) -> JSON:
    """Apply ``change`` to a copy of the spec (and set or, with ``None``, remove ``labels``) and replace
    the resource, retrying on conflicting writes."""
    for _ in range(_WRITE_ATTEMPTS):
        obj = await get_workflow(context, principal, workflow_id, write=True)
        spec = copy.deepcopy(obj.get("spec") or {})
        change(spec)
        new_spec = validated_spec(spec)
        metadata = copy.deepcopy(obj["metadata"])
        current = metadata.setdefault("labels", {})
        for key, value in (labels or {}).items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        if new_spec == validated_spec(obj.get("spec") or {}) and metadata == obj["metadata"]:
            return obj
        body = {**obj, "metadata": metadata, "spec": new_spec}
        try:
            written = await context.kube.replace(
                WORKFLOWS, principal.org, ids.workflow_name(workflow_id), body
            )
            context.workflows.observe(written)
            return written
        except Conflict:
            continue  # someone else wrote in between: read again and re-apply the change
    raise ApiError(409, f"workflow {workflow_id} changed {_WRITE_ATTEMPTS} times while being updated; retry")


async def get_run(context: Context, principal: Principal, execution_id: str) -> tuple[JSON, JSON]:
    """``(run, its workflow)``; 404 unless the caller may see the workflow."""
    name = ids.run_name(execution_id)
    try:
        run = await context.kube.get(WORKFLOWRUNS, principal.org, name)
    except NotFound:
        raise ApiError(404, f"execution {execution_id} not found") from None
    workflow = str(((run.get("spec") or {}).get("workflowRef") or {}).get("name") or "")
    try:
        obj = await context.kube.get(WORKFLOWS, principal.org, workflow)
    except NotFound:
        obj = None
    if (obj is None or not can_read(principal, obj)) and not principal.admin:
        raise ApiError(404, f"execution {execution_id} not found")
    return run, obj or {}


async def wait_for(
    context: Context,
    fetch: Callable[[], Any],
    done: Callable[[JSON], bool],
    seconds: float,
    interval: float = 0.1,
) -> JSON:
    """Poll ``fetch`` until ``done`` holds or ``seconds`` pass; the last object either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    obj: JSON = await fetch()
    while not done(obj) and loop.time() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))
        obj = await fetch()
    return obj


@dataclass(frozen=True)
class StoredRun:
    """A WorkflowRun stored by :func:`store_run`; ``replayed`` when an idempotency key found it."""

    obj: JSON
    replayed: bool

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


async def store_run(
    context: Context,
    principal: Principal,
    workflow: str,
    spec: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    compare: tuple[str, ...] = ("triggerType", "inputs"),
    name: Callable[[str], str] = random_run_name,
) -> StoredRun:
    """Create a Pending WorkflowRun of ``workflow`` (store first: nothing runs before it exists).

    With an idempotency key the run is named :func:`idempotent_run_name` (``workflow``, key): a second
    request with the key finds the first run (``replayed``), and a 422 ``idempotency_key_reused`` names
    the ``compare`` fields of the spec that differ from it. Without one the name comes from ``name``.
    """
    try:
        run_spec = WorkflowRunSpec.model_validate(
            {**spec, "workflowRef": {"name": workflow}, "idempotencyKey": idempotency_key}
        ).to_dict()
    except ValidationError as exc:
        raise invalid(exc, "body", "invalid run") from None
    for _ in range(5):
        run_name = idempotent_run_name(workflow, idempotency_key) if idempotency_key else name(workflow)
        body = {
            "apiVersion": names.API_VERSION,
            "kind": names.WORKFLOWRUN_KIND,
            "metadata": {
                "name": run_name,
                "labels": {
                    names.LABEL_WORKFLOW: workflow,
                    names.LABEL_TRIGGER_TYPE: run_spec["triggerType"],
                    names.LABEL_PART_OF: names.PART_OF,
                },
            },
            "spec": run_spec,
        }
        try:
            return StoredRun(await context.kube.create(WORKFLOWRUNS, principal.org, body), replayed=False)
        except Conflict:
            if not idempotency_key:
                continue  # a random name that is taken: draw another
            try:
                existing = await context.kube.get(WORKFLOWRUNS, principal.org, run_name)
            except NotFound:
                continue  # deleted in between: create it again
            same_request(existing, {key: run_spec.get(key) for key in compare})
            return StoredRun(existing, replayed=True)
    raise ApiError(503, "could not find a free run name; retry", headers={"Retry-After": "1"})


def same_request(run: JSON, expected: Mapping[str, Any]) -> None:
    """422 when a run stored under an idempotency key was asked for with another body."""
    spec = run.get("spec") or {}
    differing = [key for key, value in expected.items() if spec.get(key) != value]
    if differing:
        raise ApiError(
            422,
            "this Idempotency-Key was used with a different request",
            code="idempotency_key_reused",
            details=[
                ErrorDetail(path=f"body.{key}", message="differs from the original request")
                for key in differing
            ],
        )
