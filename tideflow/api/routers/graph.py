"""``/api/v1/workflows/{id}``: nodes, connections, layout and required scopes: editing the graph in place.

Every change is a read-modify-replace of the Workflow through :func:`tideflow.api.store.update_spec`
(optimistic concurrency on ``resourceVersion``), retried here with a randomized back-off when many
editors collide, so concurrent edits never lose one another. A change is checked before anything is
written: node types and ports against the catalog, configs against their type's schema, templates
with the shared validation; a refusal is a 4xx naming the field, and the Workflow is not touched.
The pure parts (ids, positions, layout, merge patches, scopes) are :mod:`tideflow.core.graph`.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, Field, StrictInt, ValidationError, model_validator

from tideflow.api.auth import Reader, Writer
from tideflow.api.context import Context, ContextDep
from tideflow.api.errors import ApiError, ErrorDetail, ErrorResponse, invalid, responses
from tideflow.api.keys import Principal
from tideflow.api.schemas import ApiModel
from tideflow.api.store import JSON, get_workflow, update_spec, validated_spec
from tideflow.core import graph
from tideflow.core.catalog import CATALOG, NodeType
from tideflow.core.models import (
    CONNECTION_ID_PATTERN,
    NODE_ID_PATTERN,
    Connection,
    Node,
    Position,
    WorkflowDefinition,
    WorkflowSpec,
)
from tideflow.core.validation import MAX_CONFIG_DEPTH, validate_workflow

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["graph"],
    responses=responses(401, 403, 404, 422, e404="No such workflow (or node, or connection)."),
)

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": "The id is taken, the connection exists, or other writers kept winning (retry).",
    }
}


_EDIT_ROUNDS = 8
"""Rounds of :func:`update_spec` (each up to 5 immediate attempts) before a 409 is answered."""
_BACKOFF_SECONDS = 0.05
_jitter = random.SystemRandom()

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class NodeOut(ApiModel):
    """A node of the workflow, with what the catalog says of its type and how it is connected."""

    id: str
    type: str = Field(description="Catalog id of the node type.")
    label: str | None = None
    version: str | None = None
    position: Position
    config: dict[str, Any] = Field(default_factory=dict)
    input_mappings: dict[str, Any] = Field(default_factory=dict)
    pass_through_values: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: int | None = None
    max_retries: int | None = None
    category: str | None = Field(
        description="trigger, action or logic; null for a type the catalog does not know."
    )
    has_config: bool = Field(description="Whether the node's config is not empty.")
    inbound_connections: int = Field(description="Connections into the node.")
    outbound_connections: int = Field(description="Connections out of the node.")


class NodeList(ApiModel):
    """The nodes of a workflow, in their stored order."""

    workflow_id: str
    count: int
    nodes: list[NodeOut]


class NodeCreate(ApiModel):
    """``POST /{id}/nodes``: a node of a catalog type; everything but the type has a default."""

    node_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="Catalog id of the node type, e.g. http_request.",
    )
    node_type: str | None = Field(
        default=None, min_length=1, max_length=63, description="The same as nodeId (give one of the two)."
    )
    id: str | None = Field(
        default=None,
        pattern=NODE_ID_PATTERN,
        max_length=63,
        description="The new node's id; <type>_<n>, the first free n, when absent.",
    )
    label: str | None = Field(default=None, max_length=200, description="Default: the catalog's label.")
    version: str | None = Field(default=None, max_length=64, description="Default: the catalog's version.")
    position: Position | None = Field(
        default=None, description="Default: one column right of the right-most node, at its height."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Checked against the type's schema.")
    input_mappings: dict[str, Any] = Field(default_factory=dict)
    pass_through_values: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: StrictInt | None = Field(default=None, ge=1, le=86400)
    max_retries: StrictInt | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _one_type(self) -> NodeCreate:
        if self.node_id is None and self.node_type is None:
            raise ValueError("nodeId (or nodeType) is required: the catalog id of the node type")
        if self.node_id is not None and self.node_type is not None and self.node_id != self.node_type:
            raise ValueError("nodeId and nodeType name different types; give one of them")
        return self

    @property
    def type_id(self) -> str:
        return str(self.node_id or self.node_type)

    @property
    def type_field(self) -> str:
        return "body.nodeId" if self.node_id is not None else "body.nodeType"


class NodeUpdate(ApiModel):
    """``PUT /{id}/nodes/{nodeId}`` with a ``config`` wrapper; a body without one is the config itself."""

    config: dict[str, Any] = Field(
        description="Merged into the node's config as a JSON merge patch (RFC 7396): objects merge key by "
        "key, null removes a key."
    )
    label: str | None = Field(default=None, max_length=200, description="null removes the label.")
    position: Position | None = None
    timeout_seconds: StrictInt | None = Field(default=None, ge=1, le=86400, description="null removes it.")
    max_retries: StrictInt | None = Field(default=None, ge=0, le=20, description="null removes it.")


class InputMappingsUpdate(ApiModel):
    """``PUT .../input-mappings``: the node's new input mappings (or send the mappings themselves)."""

    input_mappings: dict[str, Any] = Field(description="Input key -> value or {{ }} template; replaces all.")


class PassThroughValuesUpdate(ApiModel):
    """``PUT .../passthrough-values``: the node's new pass-through values (or send the values themselves)."""

    pass_through_values: dict[str, Any] = Field(
        description="Literal values merged into the input; replaces all."
    )


class NodeDeleted(ApiModel):
    """What ``DELETE /{id}/nodes/{nodeId}`` removed."""

    workflow_id: str
    node_id: str
    connections_removed: int = Field(description="How many connections to or from the node went with it.")
    removed_connection_ids: list[str]


class ConnectionList(ApiModel):
    """The connections of a workflow, in their stored order."""

    workflow_id: str
    count: int
    connections: list[Connection]


class ConnectionCreate(ApiModel):
    """``POST /{id}/connections``: from a node's output port to another node's input port."""

    id: str | None = Field(
        default=None,
        pattern=CONNECTION_ID_PATTERN,
        max_length=253,
        description="Default: c-<source>-<target> (with -2, -3, ... when taken).",
    )
    source: str = Field(min_length=1, max_length=63, description="id of the node the data comes from.")
    source_port: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Default: output (required when the source has several outputs and none is output, "
        "e.g. a condition's true and false).",
    )
    target: str = Field(min_length=1, max_length=63, description="id of the node the data goes to.")
    target_port: str | None = Field(default=None, min_length=1, max_length=32, description="Default: input.")


class LayoutOut(ApiModel):
    """What ``POST /{id}/layout`` did."""

    workflow_id: str
    changed: bool = Field(description="Whether any node moved (false when the graph was already laid out).")
    nodes_repositioned: int
    layers: int = Field(description="How many columns the graph has.")
    positions: dict[str, Position] = Field(description="Every node's position, by node id.")


class ScopeNeedOut(ApiModel):
    """One required scope, the nodes that need it and why."""

    scope: str
    nodes: list[str]
    reasons: list[str]


class ScopesOut(ApiModel):
    """What ``POST /{id}/compute-scopes`` stored in ``spec.requiredScopes``."""

    workflow_id: str
    required_scopes: list[str]
    previous_scopes: list[str] | None = Field(description="What was stored before (null: never computed).")
    changed: bool
    needs: list[ScopeNeedOut]
    unexposed_secrets: list[str] = Field(
        description="Secrets the nodes read that spec.runtime.secretRefs does not expose to the runtime: "
        "the nodes fail until an administrator adds them."
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_M = TypeVar("_M", bound=BaseModel)


def _refuse_deep(value: Any, path: str) -> None:
    """422 for a free-form value nested deeper than validation allows, before anything recurses into it."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            message = f"nested more than {MAX_CONFIG_DEPTH} levels deep"
            raise ApiError(
                422, f"invalid request: {path}: {message}", details=[ErrorDetail(path=path, message=message)]
            )
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _parse(model: type[_M], body: Mapping[str, Any]) -> _M:
    """``body`` as ``model``; 422 with ``body.`` paths when it does not fit."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc, "body") from None


def _definition(spec: Mapping[str, Any]) -> WorkflowDefinition:
    normalized = validated_spec(spec)  # 422 with spec paths if the change broke the resource model
    return WorkflowSpec.model_validate(normalized)


def _node_index(spec: JSON, workflow_id: str, node_id: str) -> int:
    for index, node in enumerate(spec.get("nodes") or ()):
        if node.get("id") == node_id:
            return index
    raise ApiError(404, f"workflow {workflow_id} has no node {node_id!r}")


def _node_out(node: Node, connections: list[Connection]) -> NodeOut:
    node_type = CATALOG.get(node.type)
    return NodeOut(
        id=node.id,
        type=node.type,
        label=node.label,
        version=node.version,
        position=node.position,
        config=node.config,
        input_mappings=node.input_mappings,
        pass_through_values=node.pass_through_values,
        timeout_seconds=node.timeout_seconds,
        max_retries=node.max_retries,
        category=node_type.category.value if node_type is not None else None,
        has_config=bool(node.config),
        inbound_connections=sum(1 for c in connections if c.target == node.id),
        outbound_connections=sum(1 for c in connections if c.source == node.id),
    )


def _stored_node(obj: JSON, node_id: str) -> NodeOut:
    definition = WorkflowSpec.model_validate(obj.get("spec") or {})
    node = definition.node(node_id)
    if node is None:  # only if the object is not the one just written
        raise ApiError(409, f"node {node_id!r} was changed concurrently; read the workflow again")
    return _node_out(node, definition.connections)


def _check_node(before: JSON | None, after: JSON, node_id: str, fields: Mapping[str, str]) -> None:
    """422 when validation finds an error in the node's ``fields`` that it did not find before the change.

    ``fields`` maps a node field (``config``) to how the request names it (``body.config``, or ``body``
    when the body is the config itself). Errors already there before are not the caller's doing and do
    not block an edit; an empty config is allowed (a node not configured yet).
    """
    definition = _definition(after)
    index = next(i for i, node in enumerate(definition.nodes) if node.id == node_id)
    node = definition.nodes[index]
    known = set()
    if before is not None:
        known = {(e.path, e.message) for e in validate_workflow(_definition(before)).errors}
    prefix = f"spec.nodes[{index}]"
    details: list[ErrorDetail] = []
    for error in validate_workflow(definition).errors:
        if (error.path, error.message) in known:
            continue
        for field, shown in fields.items():
            root = f"{prefix}.{field}"
            if error.path == root or error.path.startswith((f"{root}.", f"{root}[")):
                if not (field == "config" and error.path == root and not node.config):
                    details.append(ErrorDetail(path=shown + error.path[len(root) :], message=error.message))
                break
    if details:
        raise ApiError(
            422, f"invalid node {node_id!r}: {details[0].path}: {details[0].message}", details=details
        )


async def _edit(
    context: Context, principal: Principal, workflow_id: str, change: Callable[[JSON], None]
) -> JSON:
    """:func:`update_spec`, retried with a randomized, growing back-off while other writers keep winning.

    A refusal raised by ``change`` itself (a 404, 409 or 422) is answered at once.
    """
    refused = False

    def guarded(spec: JSON) -> None:
        nonlocal refused
        try:
            change(spec)
        except ApiError:
            refused = True
            raise

    for attempt in range(_EDIT_ROUNDS):
        try:
            return await update_spec(context, principal, workflow_id, guarded)
        except ApiError as exc:
            if exc.status != 409 or refused or attempt == _EDIT_ROUNDS - 1:
                raise
        await asyncio.sleep(_jitter.uniform(0, _BACKOFF_SECONDS * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _default_port(
    ports: tuple[str, ...], preferred: str, given: str | None, kind: str, node_id: str, node_type: NodeType
) -> tuple[str | None, str]:
    """``(port, problem)``: the port a connection uses at one end, or why there is none."""
    listed = ", ".join(ports)
    if given is not None:
        if given in ports:
            return given, ""
        return (
            None,
            f"{node_type.id} node {node_id!r} has no {kind} port {given!r} (its {kind} ports: {listed})",
        )
    if preferred in ports:
        return preferred, ""
    if len(ports) == 1:
        return ports[0], ""
    return None, f"required: {node_type.id} node {node_id!r} has the {kind} ports {listed}"


# --------------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------------


@router.get("/{workflow_id}/nodes", response_model=NodeList, summary="List a workflow's nodes")
async def list_nodes(context: ContextDep, principal: Reader, workflow_id: str) -> NodeList:
    definition = WorkflowSpec.model_validate(
        (await get_workflow(context, principal, workflow_id)).get("spec") or {}
    )
    nodes = [_node_out(node, definition.connections) for node in definition.nodes]
    return NodeList(workflow_id=workflow_id, count=len(nodes), nodes=nodes)


@router.get("/{workflow_id}/nodes/{node_id}", response_model=NodeOut, summary="Get one node of a workflow")
async def get_node(context: ContextDep, principal: Reader, workflow_id: str, node_id: str) -> NodeOut:
    obj = await get_workflow(context, principal, workflow_id)
    _node_index(obj.get("spec") or {}, workflow_id, node_id)
    return _stored_node(obj, node_id)


@router.post(
    "/{workflow_id}/nodes",
    status_code=201,
    response_model=NodeOut,
    summary="Add a node of a catalog type",
    responses=_CONFLICT,
)
async def add_node(context: ContextDep, principal: Writer, workflow_id: str, body: NodeCreate) -> NodeOut:
    node_type = CATALOG.get(body.type_id)
    if node_type is None:
        message = f"unknown node type {body.type_id!r} (known: {', '.join(sorted(CATALOG))})"
        raise ApiError(
            422,
            f"invalid request: {body.type_field}: {message}",
            details=[ErrorDetail(path=body.type_field, message=message)],
        )
    for field, value in (
        ("config", body.config),
        ("inputMappings", body.input_mappings),
        ("passThroughValues", body.pass_through_values),
    ):
        _refuse_deep(value, f"body.{field}")
    created: dict[str, str] = {}

    def change(spec: JSON) -> None:
        before = copy.deepcopy(spec)
        nodes: list[JSON] = spec.setdefault("nodes", [])
        taken = {str(node.get("id")) for node in nodes}
        if body.id is not None and body.id in taken:
            message = f"workflow {workflow_id} already has a node {body.id!r}"
            raise ApiError(409, message, details=[ErrorDetail(path="body.id", message=message)])
        node_id = body.id or graph.new_node_id(node_type.id, taken)
        if body.position is not None:
            position = body.position
        else:
            x, y = graph.next_position(
                (
                    float((n.get("position") or {}).get("x", 0.0)),
                    float((n.get("position") or {}).get("y", 0.0)),
                )
                for n in nodes
            )
            position = Position(x=x, y=y)
        node: JSON = {
            "id": node_id,
            "type": node_type.id,
            "label": body.label if body.label is not None else node_type.label,
            "version": body.version if body.version is not None else node_type.version,
            "position": position.to_dict(),
            "config": body.config,
            "inputMappings": body.input_mappings,
            "passThroughValues": body.pass_through_values,
        }
        if body.timeout_seconds is not None:
            node["timeoutSeconds"] = body.timeout_seconds
        if body.max_retries is not None:
            node["maxRetries"] = body.max_retries
        nodes.append(node)
        fields = {
            "id": "body.id",
            "type": body.type_field,
            "version": "body.version",
            "config": "body.config",
            "inputMappings": "body.inputMappings",
            "passThroughValues": "body.passThroughValues",
        }
        _check_node(before, spec, node_id, fields)
        created["id"] = node_id

    obj = await _edit(context, principal, workflow_id, change)
    return _stored_node(obj, created["id"])


NodeUpdateBody = Annotated[
    NodeUpdate | dict[str, Any],
    Body(
        description="Either {config, label?, position?, timeoutSeconds?, maxRetries?}, or the config itself "
        "(an object without a config key), merged into the node's config.",
        union_mode="left_to_right",
    ),
]


@router.put(
    "/{workflow_id}/nodes/{node_id}",
    response_model=NodeOut,
    summary="Merge into a node's config (and set its label, position or limits)",
    responses=_CONFLICT,
)
async def update_node(
    context: ContextDep, principal: Writer, workflow_id: str, node_id: str, body: NodeUpdateBody
) -> NodeOut:
    if not isinstance(body, NodeUpdate) and isinstance(body.get("config"), Mapping):
        body = _parse(NodeUpdate, body)  # meant as the wrapped form: say what is wrong with it as such
    update = body if isinstance(body, NodeUpdate) else None
    patch = update.config if update is not None else body
    shown = "body.config" if update is not None else "body"
    _refuse_deep(patch, shown)

    def change(spec: JSON) -> None:
        before = copy.deepcopy(spec)
        node: JSON = spec["nodes"][_node_index(spec, workflow_id, node_id)]
        node["config"] = graph.merge_patch(node.get("config") or {}, patch)
        if update is not None:
            for field in ("label", "position", "timeout_seconds", "max_retries"):
                if field not in update.model_fields_set:
                    continue
                key = NodeUpdate.model_fields[field].alias or field
                value = getattr(update, field)
                if isinstance(value, Position):
                    node[key] = value.to_dict()
                elif value is None:
                    if field != "position":
                        node.pop(key, None)
                else:
                    node[key] = value
        _check_node(before, spec, node_id, {"config": shown})

    obj = await _edit(context, principal, workflow_id, change)
    return _stored_node(obj, node_id)


@router.delete(
    "/{workflow_id}/nodes/{node_id}",
    response_model=NodeDeleted,
    summary="Remove a node and its connections",
    responses=_CONFLICT,
)
async def delete_node(context: ContextDep, principal: Writer, workflow_id: str, node_id: str) -> NodeDeleted:
    removed: list[str] = []

    def change(spec: JSON) -> None:
        index = _node_index(spec, workflow_id, node_id)
        del spec["nodes"][index]
        connections = list(spec.get("connections") or ())
        removed[:] = [str(c.get("id")) for c in connections if node_id in (c.get("source"), c.get("target"))]
        spec["connections"] = [c for c in connections if node_id not in (c.get("source"), c.get("target"))]

    await _edit(context, principal, workflow_id, change)
    return NodeDeleted(
        workflow_id=workflow_id,
        node_id=node_id,
        connections_removed=len(removed),
        removed_connection_ids=removed,
    )


def _replace_node_field(
    workflow_id: str, node_id: str, key: str, wrapped: bool, value: dict[str, Any]
) -> Callable[[JSON], None]:
    def change(spec: JSON) -> None:
        before = copy.deepcopy(spec)
        spec["nodes"][_node_index(spec, workflow_id, node_id)][key] = value
        _check_node(before, spec, node_id, {key: f"body.{key}" if wrapped else "body"})

    return change


@router.put(
    "/{workflow_id}/nodes/{node_id}/input-mappings",
    response_model=NodeOut,
    summary="Replace a node's input mappings",
    responses=_CONFLICT,
)
async def set_input_mappings(
    context: ContextDep,
    principal: Writer,
    workflow_id: str,
    node_id: str,
    body: Annotated[
        InputMappingsUpdate | dict[str, Any],
        Body(
            description="{inputMappings: {...}}, or the mappings themselves: input key -> value or template.",
            union_mode="left_to_right",
        ),
    ],
) -> NodeOut:
    wrapped = isinstance(body, InputMappingsUpdate)
    value = body.input_mappings if isinstance(body, InputMappingsUpdate) else body
    _refuse_deep(value, "body.inputMappings" if wrapped else "body")
    change = _replace_node_field(workflow_id, node_id, "inputMappings", wrapped, value)
    return _stored_node(await _edit(context, principal, workflow_id, change), node_id)


@router.put(
    "/{workflow_id}/nodes/{node_id}/passthrough-values",
    response_model=NodeOut,
    summary="Replace a node's pass-through values",
    responses=_CONFLICT,
)
async def set_pass_through_values(
    context: ContextDep,
    principal: Writer,
    workflow_id: str,
    node_id: str,
    body: Annotated[
        PassThroughValuesUpdate | dict[str, Any],
        Body(
            description="{passThroughValues: {...}}, or the values themselves: literal values merged into "
            "the node's input.",
            union_mode="left_to_right",
        ),
    ],
) -> NodeOut:
    wrapped = isinstance(body, PassThroughValuesUpdate)
    value = body.pass_through_values if isinstance(body, PassThroughValuesUpdate) else body
    _refuse_deep(value, "body.passThroughValues" if wrapped else "body")
    change = _replace_node_field(workflow_id, node_id, "passThroughValues", wrapped, value)
    return _stored_node(await _edit(context, principal, workflow_id, change), node_id)


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------


@router.get(
    "/{workflow_id}/connections", response_model=ConnectionList, summary="List a workflow's connections"
)
async def list_connections(context: ContextDep, principal: Reader, workflow_id: str) -> ConnectionList:
    definition = WorkflowSpec.model_validate(
        (await get_workflow(context, principal, workflow_id)).get("spec") or {}
    )
    return ConnectionList(
        workflow_id=workflow_id, count=len(definition.connections), connections=definition.connections
    )


@router.post(
    "/{workflow_id}/connections",
    status_code=201,
    response_model=Connection,
    summary="Connect a node's output port to another node's input port",
    responses=_CONFLICT,
)
async def add_connection(
    context: ContextDep, principal: Writer, workflow_id: str, body: ConnectionCreate
) -> Connection:
    created: list[Connection] = []

    def change(spec: JSON) -> None:
        nodes = {str(n.get("id")): n for n in spec.get("nodes") or ()}
        connections: list[JSON] = spec.setdefault("connections", [])
        problems: list[ErrorDetail] = []
        ends: dict[str, NodeType] = {}
        for end, node_id in (("source", body.source), ("target", body.target)):
            node = nodes.get(node_id)
            node_type = CATALOG.get(str(node.get("type"))) if node is not None else None
            if node is None:
                problems.append(
                    ErrorDetail(path=f"body.{end}", message=f"workflow {workflow_id} has no node {node_id!r}")
                )
            elif node_type is None:
                problems.append(
                    ErrorDetail(
                        path=f"body.{end}",
                        message=f"node {node_id!r} has type {node.get('type')!r}, which the catalog does not "
                        "know, so its ports are unknown",
                    )
                )
            else:
                ends[end] = node_type
        ports: dict[str, str] = {}
        if "source" in ends:
            port, problem = _default_port(
                ends["source"].outputs, "output", body.source_port, "output", body.source, ends["source"]
            )
            if port is None:
                problems.append(ErrorDetail(path="body.sourcePort", message=problem))
            else:
                ports["source"] = port
        if "target" in ends:
            if not ends["target"].inputs:
                message = f"{ends['target'].id} node {body.target!r} is a trigger and takes no input"
                problems.append(ErrorDetail(path="body.target", message=message))
            else:
                port, problem = _default_port(
                    ends["target"].inputs, "input", body.target_port, "input", body.target, ends["target"]
                )
                if port is None:
                    problems.append(ErrorDetail(path="body.targetPort", message=problem))
                else:
                    ports["target"] = port
        if not problems and body.source == body.target:
            problems.append(ErrorDetail(path="body.target", message="a node cannot be connected to itself"))
        if not problems:
            pairs = [(str(c.get("source")), str(c.get("target"))) for c in connections]
            cycle = graph.cycle_through(pairs, body.source, body.target)
            if cycle is not None:
                loop = " -> ".join([body.source, *cycle])
                problems.append(
                    ErrorDetail(path="body.target", message=f"the connection would form a cycle: {loop}")
                )
        if problems:
            raise ApiError(
                422, f"invalid connection: {problems[0].path}: {problems[0].message}", details=problems
            )
        for existing in connections:
            same = (
                existing.get("source") == body.source
                and existing.get("sourcePort", "output") == ports["source"]
                and existing.get("target") == body.target
                and existing.get("targetPort", "input") == ports["target"]
            )
            if same:
                raise ApiError(
                    409,
                    f"connection {existing.get('id')!r} already joins {body.source}.{ports['source']} to "
                    f"{body.target}.{ports['target']}",
                )
        taken = {str(c.get("id")) for c in connections}
        if body.id is not None and body.id in taken:
            message = f"workflow {workflow_id} already has a connection {body.id!r}"
            raise ApiError(409, message, details=[ErrorDetail(path="body.id", message=message)])
        connection = Connection(
            id=body.id or graph.new_connection_id(body.source, body.target, taken),
            source=body.source,
            source_port=ports["source"],
            target=body.target,
            target_port=ports["target"],
        )
        connections.append(connection.to_dict())
        created[:] = [connection]

    await _edit(context, principal, workflow_id, change)
    return created[0]


@router.delete(
    "/{workflow_id}/connections/{connection_id}",
    status_code=204,
    response_class=Response,
    summary="Remove a connection",
    responses=_CONFLICT,
)
async def delete_connection(
    context: ContextDep, principal: Writer, workflow_id: str, connection_id: str
) -> Response:
    def change(spec: JSON) -> None:
        connections = list(spec.get("connections") or ())
        kept = [c for c in connections if c.get("id") != connection_id]
        if len(kept) == len(connections):
            raise ApiError(404, f"workflow {workflow_id} has no connection {connection_id!r}")
        spec["connections"] = kept

    await _edit(context, principal, workflow_id, change)
    return Response(status_code=204)


# --------------------------------------------------------------------------------------------
# Layout and scopes
# --------------------------------------------------------------------------------------------


@router.post(
    "/{workflow_id}/layout",
    response_model=LayoutOut,
    summary="Arrange the graph left to right by layers, without overlaps",
    responses=_CONFLICT,
)
async def lay_out(context: ContextDep, principal: Writer, workflow_id: str) -> LayoutOut:
    result: dict[str, Any] = {}

    def change(spec: JSON) -> None:
        definition = _definition(spec)
        positions = graph.layout(
            [node.id for node in definition.nodes],
            [(c.source, c.target) for c in definition.connections],
            first={n.id for n in definition.nodes if (t := CATALOG.get(n.type)) is not None and t.is_trigger},
        )
        moved = 0
        for node in spec.get("nodes") or ():
            x, y = positions[str(node.get("id"))]
            old = node.get("position") or {}
            if old.get("x", 0.0) != x or old.get("y", 0.0) != y:
                moved += 1
                node["position"] = {"x": x, "y": y}
        result["moved"] = moved
        result["positions"] = {node_id: Position(x=x, y=y) for node_id, (x, y) in positions.items()}
        result["layers"] = len({x for x, _ in positions.values()})

    await _edit(context, principal, workflow_id, change)
    return LayoutOut(
        workflow_id=workflow_id,
        changed=result["moved"] > 0,
        nodes_repositioned=result["moved"],
        layers=result["layers"],
        positions=result["positions"],
    )


@router.post(
    "/{workflow_id}/compute-scopes",
    response_model=ScopesOut,
    summary="Derive the scopes the workflow's nodes need and store them in spec.requiredScopes",
    responses=_CONFLICT,
)
async def compute_scopes(context: ContextDep, principal: Writer, workflow_id: str) -> ScopesOut:
    result: dict[str, Any] = {}

    def change(spec: JSON) -> None:
        definition = WorkflowSpec.model_validate(validated_spec(spec))
        needs = graph.required_scopes(definition.nodes)
        previous = spec.get("requiredScopes")
        scopes = [need.scope for need in needs]
        spec["requiredScopes"] = scopes
        exposed = {ref.name for ref in definition.runtime.secret_refs} if definition.runtime else set()
        secrets = {need.scope.split(":", 2)[2] for need in needs if need.scope.startswith("secrets:read:")}
        result.update(
            previous=None if previous is None else list(previous),
            scopes=scopes,
            needs=[ScopeNeedOut(scope=n.scope, nodes=n.nodes, reasons=n.reasons) for n in needs],
            unexposed=sorted(secrets - exposed),
        )

    await _edit(context, principal, workflow_id, change)
    return ScopesOut(
        workflow_id=workflow_id,
        required_scopes=result["scopes"],
        previous_scopes=result["previous"],
        changed=result["previous"] != result["scopes"],
        needs=result["needs"],
        unexposed_secrets=result["unexposed"],
    )
