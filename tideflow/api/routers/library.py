"""``/api/v1/workflows/templates``, ``/stats`` and ``/discover``: views across an organization's workflows.

- **Templates**: the workflows marked ``isTemplate`` that the caller can see, plus the built-in templates
  that ship with Tideflow (``tideflow/api/templates/*.yaml``, each a Workflow manifest that also applies
  with kubectl). ``POST /templates/{id}/instantiate`` makes a new draft from one.
- **Stats**: counts by editorial state, deployment and execution phase over the workflows the caller
  can see (every workflow of the organization for an admin).
- **Discover**: the active, deployed workflows labelled ``tideflow.io/app-id=<appId>`` that the caller
  can see, with the in-cluster URLs an application calls to trigger them.

These routes must be included before the workflows router, whose ``GET /{workflow_id}`` would
otherwise answer ``GET /templates`` with a 404.
"""

from __future__ import annotations

import functools
from collections import Counter
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Final, Literal

import yaml
from fastapi import APIRouter, Body, Path, Query
from pydantic import Field

from tideflow.api import ids
from tideflow.api.auth import Reader, Writer, can_read
from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError, ErrorResponse, responses
from tideflow.api.routers.workflows import create_workflow
from tideflow.api.schemas import (
    ApiModel,
    ExecutionStatus,
    WorkflowCreate,
    WorkflowCreated,
    WorkflowStatusValue,
    deployment_out,
)
from tideflow.api.store import JSON, get_workflow
from tideflow.core import names
from tideflow.core.kube import WORKFLOWRUNS
from tideflow.core.models import DeploymentStatus, Workflow

__all__ = [
    "LABEL_APP_ID",
    "TEMPLATE_PREFIX",
    "builtin_templates",
    "deployment_name",
    "router",
    "webhook_paths",
]

LABEL_APP_ID: Final = names.LABEL_APP_ID
"""The label that ties a Workflow to an application (``appId`` in the API, or ``kubectl label``)."""
TEMPLATE_PREFIX: Final = "tpl_"
"""Ids of built-in templates: ``tpl_`` + the manifest's ``metadata.name``."""
LABEL_VALUE_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
RUNTIME_TRIGGER_PATH: Final = "/trigger"
_COPIED_FIELDS: Final = ("description", "tags", "nodes", "connections", "settings", "schedule", "lifecycle")

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["library"],
    responses=responses(401, 403, 422, e403="The key lacks the scope."),
)


# ------------------------------------------------------------------------------------------------
# Templates


class TemplateSource(StrEnum):
    """Where a template comes from."""

    BUILTIN = "builtin"
    WORKFLOW = "workflow"


class TemplateOut(ApiModel):
    """A template: a workflow definition to start from."""

    id: str = Field(description="``tpl_<name>`` for a built-in template, the workflow's id otherwise.")
    name: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    source: TemplateSource
    owner: str | None = Field(default=None, description="The owner of a workflow template.")
    trigger_types: list[str] = Field(description="The node types that start it (``webhook_trigger``, ...).")
    nodes: list[dict[str, Any]] = Field(default_factory=list)
    connections: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None


class TemplateList(ApiModel):
    """Built-in templates first (by id), then the visible workflow templates (by name)."""

    count: int
    templates: list[TemplateOut]


class TemplateUse(ApiModel):
    """``POST /templates/{id}/instantiate``: the new workflow's name (default: the template's)."""

    name: str | None = Field(default=None, min_length=1, max_length=253, description="Display name.")
    description: str | None = Field(default=None, max_length=4096)


@functools.cache
def builtin_templates() -> dict[str, JSON]:
    """The built-in templates by id, each a validated Workflow spec (read once per process)."""
    found: dict[str, JSON] = {}
    folder = resources.files("tideflow.api").joinpath("templates")
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".yaml"):
            continue
        workflow = Workflow.model_validate(yaml.safe_load(entry.read_text(encoding="utf-8")))
        found[TEMPLATE_PREFIX + str(workflow.metadata["name"])] = workflow.spec.to_dict()
    return found


def _template_out(template_id: str, spec: JSON, source: TemplateSource) -> TemplateOut:
    nodes = list(spec.get("nodes") or ())
    return TemplateOut(
        id=template_id,
        name=str(spec.get("displayName") or template_id),
        description=spec.get("description"),
        tags=list(spec.get("tags") or ()),
        source=source,
        owner=spec.get("owner") if source is TemplateSource.WORKFLOW else None,
        trigger_types=sorted({str(n.get("type")) for n in nodes if str(n.get("type")).endswith("_trigger")}),
        nodes=nodes,
        connections=list(spec.get("connections") or ()),
        settings=spec.get("settings"),
        schedule=spec.get("schedule"),
        lifecycle=spec.get("lifecycle"),
    )


@router.get("/templates", response_model=TemplateList, summary="Built-in and workflow templates")
async def list_templates(
    context: ContextDep,
    principal: Reader,
    tag: Annotated[str | None, Query(max_length=63, description="Only templates with this tag.")] = None,
) -> TemplateList:
    shown = [
        _template_out(template_id, spec, TemplateSource.BUILTIN)
        for template_id, spec in builtin_templates().items()
    ]
    workflows = [
        _template_out(
            ids.workflow_id(str(obj["metadata"]["name"])), obj.get("spec") or {}, TemplateSource.WORKFLOW
        )
        for obj in await context.workflows.list(principal.org)
        if (obj.get("spec") or {}).get("isTemplate") and can_read(principal, obj)
    ]
    shown += sorted(workflows, key=lambda t: (t.name.casefold(), t.id))
    if tag is not None:
        shown = [t for t in shown if tag in t.tags]
    return TemplateList(count=len(shown), templates=shown)


@router.post(
    "/templates/{template_id}/instantiate",
    status_code=201,
    response_model=WorkflowCreated,
    summary="Create a draft workflow from a template, owned by the caller",
    responses={404: {"model": ErrorResponse, "description": "No such template visible to the caller."}},
)
async def instantiate_template(
    context: ContextDep,
    principal: Writer,
    template_id: Annotated[str, Path(max_length=80, description="``tpl_<name>`` or a workflow id.")],
    body: Annotated[TemplateUse | None, Body()] = None,
) -> WorkflowCreated:
    if template_id.startswith(TEMPLATE_PREFIX):
        spec = builtin_templates().get(template_id)
        if spec is None:
            raise ApiError(404, f"template {template_id} not found")
    else:
        obj = await get_workflow(context, principal, template_id)
        spec = obj.get("spec") or {}
        if not spec.get("isTemplate"):
            raise ApiError(404, f"template {template_id} not found: the workflow is not marked isTemplate")
    use = body or TemplateUse()
    fields = {key: spec[key] for key in _COPIED_FIELDS if spec.get(key) is not None}
    if use.description is not None:
        fields["description"] = use.description
    name = use.name or str(spec.get("displayName") or template_id)
    return await create_workflow(context, principal, WorkflowCreate.model_validate({"name": name, **fields}))


# ------------------------------------------------------------------------------------------------
# Stats


class StateCounts(ApiModel):
    """Workflows by editorial status."""

    draft: int = 0
    active: int = 0
    paused: int = 0
    archived: int = 0


class ExecutionCounts(ApiModel):
    """Executions (WorkflowRuns that exist now: old ones are pruned) by status."""

    total: int
    by_status: dict[str, int] = Field(description="Every execution status, zero included.")


class WorkflowStats(ApiModel):
    """Totals over the workflows the caller can see (all of the organization's for an admin)."""

    organization: str
    scope: Literal["visible", "all"] = Field(description="``all`` for an admin, else ``visible``.")
    total: int
    by_status: StateCounts
    deployed: int = Field(description="Workflows with spec.deployed.")
    running: int = Field(description="Deployed workflows whose runtime the operator reports Running.")
    by_deployment_status: dict[str, int] = Field(
        description="NotDeployed, Starting, Running, Stopped and Failed, zero included."
    )
    templates: int = Field(description="Workflows marked isTemplate.")
    executions: ExecutionCounts


@router.get("/stats", response_model=WorkflowStats, summary="Totals by state for the caller's organization")
async def stats(context: ContextDep, principal: Reader) -> WorkflowStats:
    objs = await context.workflows.list(principal.org)
    visible = [obj for obj in objs if can_read(principal, obj)]
    states: Counter[str] = Counter()
    deployments: Counter[str] = Counter({status.value: 0 for status in DeploymentStatus})
    deployed = templates = 0
    for obj in visible:
        spec = obj.get("spec") or {}
        states[WorkflowStatusValue.of(spec.get("state")).value] += 1
        deployments[deployment_out(obj).status] += 1
        deployed += bool(spec.get("deployed"))
        templates += bool(spec.get("isTemplate"))
    names_seen = {str(obj["metadata"]["name"]) for obj in visible}
    runs = await context.kube.list_all(WORKFLOWRUNS, principal.org)
    counted: Counter[str] = Counter({status.value: 0 for status in ExecutionStatus})
    for run in runs:
        workflow = str(((run.get("spec") or {}).get("workflowRef") or {}).get("name") or "")
        if principal.admin or workflow in names_seen:
            counted[ExecutionStatus.of((run.get("status") or {}).get("phase")).value] += 1
    return WorkflowStats(
        organization=principal.org,
        scope="all" if principal.admin else "visible",
        total=len(visible),
        by_status=StateCounts(**states),
        deployed=deployed,
        running=deployments[DeploymentStatus.RUNNING.value],
        by_deployment_status=dict(deployments),
        templates=templates,
        executions=ExecutionCounts(total=sum(counted.values()), by_status=dict(counted)),
    )


# ------------------------------------------------------------------------------------------------
# Discover


class TriggerEndpoint(ApiModel):
    """The runtime's trigger route (body as ``POST /api/v1/workflows/{id}/trigger``'s)."""

    url: str | None = Field(description="In-cluster URL; null until the operator reports the endpoint.")
    path: str = RUNTIME_TRIGGER_PATH
    method: str = "POST"


class WebhookEndpoint(ApiModel):
    """One ``webhook_trigger`` node's route on the runtime."""

    node_id: str
    path: str = Field(description="``/webhooks/<path>`` on the runtime.")
    url: str | None = Field(description="In-cluster URL; null until the operator reports the endpoint.")
    method: str = Field(description="The configured method, POST when the node accepts any.")
    any_method: bool = Field(description="Whether the node accepts every method (no ``method`` set).")
    authenticated: bool = Field(description="Whether the node checks a bearer token or an HMAC signature.")


class DeploymentIdentity(ApiModel):
    """The runtime Deployment (and Service) of the workflow, and what the operator reports of it."""

    kind: Literal["Deployment"] = "Deployment"
    name: str
    namespace: str
    service: str = Field(description="The Service in front of the runtime pods (same name).")
    status: str = Field(description="NotDeployed, Starting, Running, Stopped or Failed.")
    ready: bool
    replicas: int
    ready_replicas: int


class DiscoveredWorkflow(ApiModel):
    """An active, deployed workflow of the application, and how to trigger it in the cluster."""

    workflow_id: str
    name: str
    description: str | None = None
    app_id: str
    endpoint: str | None = Field(description="status.endpoint: the runtime Service's in-cluster URL.")
    trigger: TriggerEndpoint
    webhooks: list[WebhookEndpoint]
    deployment: DeploymentIdentity


class DiscoverOut(ApiModel):
    """The application's workflows, by name."""

    app_id: str
    count: int
    workflows: list[DiscoveredWorkflow]


def deployment_name(workflow_name: str) -> str:
    """The name the operator gives the runtime's Deployment and Service: the Workflow's own."""
    return workflow_name


def webhook_paths(spec: JSON) -> list[tuple[str, str, str | None, bool]]:
    """``(node id, path, method or None, authenticated)`` of each webhook trigger, as the runtime routes them.

    The path is the node's ``config.path`` (else its id) without leading or trailing slashes.
    """
    found = []
    for node in spec.get("nodes") or ():
        if node.get("type") != "webhook_trigger":
            continue
        config = node.get("config") or {}
        raw = config.get("path") or node.get("id")
        method = config.get("method")
        if isinstance(raw, str) and raw.strip().strip("/"):
            found.append(
                (
                    str(node.get("id")),
                    raw.strip().strip("/"),
                    method.upper() if isinstance(method, str) else None,
                    config.get("auth") is not None,
                )
            )
    return found


def _discovered(obj: JSON, app_id: str) -> DiscoveredWorkflow:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    deployment = deployment_out(obj)
    endpoint = deployment.endpoint.rstrip("/") if deployment.endpoint else None
    hooks = [
        WebhookEndpoint(
            node_id=node_id,
            path=f"/webhooks/{path}",
            url=f"{endpoint}/webhooks/{path}" if endpoint else None,
            method=method or "POST",
            any_method=method is None,
            authenticated=authenticated,
        )
        for node_id, path, method, authenticated in webhook_paths(spec)
    ]
    name = str(meta.get("name"))
    return DiscoveredWorkflow(
        workflow_id=ids.workflow_id(name),
        name=str(spec.get("displayName") or name),
        description=spec.get("description"),
        app_id=app_id,
        endpoint=endpoint,
        trigger=TriggerEndpoint(url=f"{endpoint}{RUNTIME_TRIGGER_PATH}" if endpoint else None),
        webhooks=hooks,
        deployment=DeploymentIdentity(
            name=deployment_name(name),
            namespace=str(meta.get("namespace") or ""),
            service=deployment_name(name),
            status=deployment.status,
            ready=deployment.ready,
            replicas=deployment.replicas,
            ready_replicas=deployment.ready_replicas,
        ),
    )


@router.get(
    "/discover",
    response_model=DiscoverOut,
    summary="Active deployed workflows of an application, with their in-cluster trigger endpoints",
)
async def discover(
    context: ContextDep,
    principal: Reader,
    app_id: Annotated[
        str,
        Query(
            alias="appId",
            pattern=LABEL_VALUE_PATTERN,
            description="The application id: the value of the workflows' tideflow.io/app-id label.",
        ),
    ],
) -> DiscoverOut:
    labelled = [
        obj
        for obj in await context.workflows.list(principal.org)
        if ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_APP_ID) == app_id
    ]
    found = [
        _discovered(obj, app_id)
        for obj in labelled
        if can_read(principal, obj)
        and (obj.get("spec") or {}).get("deployed")
        and (obj.get("spec") or {}).get("state") == "Active"
    ]
    found.sort(key=lambda w: (w.name.casefold(), w.workflow_id))
    return DiscoverOut(app_id=app_id, count=len(found), workflows=found)
