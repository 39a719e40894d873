"""``/api/v1/workflows/{id}/versions``: immutable, tagged snapshots of a workflow's definition, and restore.

Storage: one ConfigMap per version, ``immutable: true``, owned by the Workflow (``ownerReferences``, so
the garbage collector removes the versions with the workflow) and labelled with it
(``tideflow.io/version-of``) and with the tag (``tideflow.io/version``). Its name is derived from the
workflow and the tag (``<workflow>.version-<digest of the tag>``), so two concurrent creates of the same
tag race on one name and the API server lets exactly one win: uniqueness needs no lock and no read
first. A workflow name never holds a dot, so a version's name can never be another workflow's runtime
ConfigMap. See docs/api.md, "Versions", for why ConfigMaps rather than a new resource.

A snapshot holds what the workflow *does* (:data:`SNAPSHOT_FIELDS`: the graph, its settings, its
schedule, its name and description), not who may see it or how it is deployed, so restoring an old
version never changes sharing, state, deployment or scaling.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Response
from pydantic import Field

from tideflow.api import ids
from tideflow.api.auth import Reader, Writer
from tideflow.api.context import Context, ContextDep
from tideflow.api.errors import ApiError, ErrorDetail, ErrorResponse, responses
from tideflow.api.keys import Principal
from tideflow.api.schemas import ApiModel, WorkflowOut, workflow_out
from tideflow.api.store import JSON, get_workflow, update_spec, validated_spec
from tideflow.core import names
from tideflow.core.kube import CONFIGMAPS, Conflict, NotFound

__all__ = [
    "LABEL_VERSION",
    "LABEL_VERSION_OF",
    "MAX_VERSIONS",
    "SNAPSHOT_FIELDS",
    "VERSION_TAG_PATTERN",
    "router",
    "snapshot_of",
    "version_name",
]

LABEL_VERSION_OF: Final = f"{names.GROUP}/version-of"
"""On a version's ConfigMap: the name of the Workflow it is a version of."""
LABEL_VERSION: Final = f"{names.GROUP}/version"
"""On a version's ConfigMap: its version tag (tags are valid label values by construction)."""
COMPONENT: Final = "workflow-version"
ANNOTATION_DESCRIPTION: Final = f"{names.GROUP}/version-description"
ANNOTATION_CREATED_BY: Final = f"{names.GROUP}/created-by"
ANNOTATION_CREATED_AT: Final = f"{names.GROUP}/created-at"
ANNOTATION_GENERATION: Final = f"{names.GROUP}/workflow-generation"
DATA_KEY: Final = "spec.json"
SNAPSHOT_FIELDS: Final = ("displayName", "description", "nodes", "connections", "settings", "schedule")
"""The spec fields a version keeps and a restore brings back; a field a snapshot lacks is removed."""
VERSION_TAG_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
"""A Kubernetes label value of 1-63 characters: ``v1``, ``1.4.0``, ``2025-06-01_release``."""
MAX_VERSIONS: Final = 100
"""Versions kept per workflow: a bound (design invariant 4); delete old ones to make room."""

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["versions"],
    responses=responses(401, 403, 404, 422, e404="No such workflow (or version) visible to the caller."),
)

VersionTag = Annotated[str, Path(max_length=63, description="The version's tag.")]


class VersionCreate(ApiModel):
    """``POST /{id}/versions``: snapshot the workflow's current definition under a new tag."""

    version_tag: str = Field(
        pattern=VERSION_TAG_PATTERN,
        description="Unique per workflow; 1-63 letters, digits, '.', '_' and '-', starting and ending "
        "with a letter or digit (a Kubernetes label value).",
    )
    description: str | None = Field(default=None, max_length=1024, description="What changed, for people.")


class VersionOut(ApiModel):
    """A version, without its snapshot."""

    workflow_id: str
    version_tag: str
    description: str | None = None
    created_by: str | None = Field(default=None, description="The user whose key created it.")
    created_at: str | None = Field(default=None, description="RFC 3339, UTC.")
    workflow_generation: int | None = Field(
        default=None, description="metadata.generation of the Workflow the snapshot was taken from."
    )
    node_count: int
    connection_count: int


class VersionDetail(VersionOut):
    """A version with its snapshot (the spec fields it keeps, camelCase as in the resource)."""

    spec: dict[str, Any] = Field(description="The snapshot: displayName, description, nodes, ...")


class VersionList(ApiModel):
    """A workflow's versions, newest first."""

    workflow_id: str
    count: int
    versions: list[VersionOut]


class VersionRestored(ApiModel):
    """The answer of restore: the workflow as it now is."""

    workflow_id: str
    restored_version: str
    changed: bool = Field(description="False when the definition already equalled the version's.")
    workflow: WorkflowOut


def snapshot_of(spec: JSON) -> JSON:
    """The fields of a spec that a version keeps."""
    return {key: spec[key] for key in SNAPSHOT_FIELDS if spec.get(key) is not None}


def version_name(workflow: str, tag: str) -> str:
    """The ConfigMap of a version: ``<workflow>.version-<16 hex of the tag's SHA-256>``."""
    return f"{workflow}.version-{hashlib.sha256(tag.encode()).hexdigest()[:16]}"


def _owned_by(config_map: JSON, workflow: JSON) -> bool:
    """Whether the ConfigMap is a version of this very Workflow (not of a deleted namesake)."""
    uid = (workflow.get("metadata") or {}).get("uid")
    refs = (config_map.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("uid") == uid and ref.get("kind") == names.WORKFLOW_KIND for ref in refs)


def _snapshot(config_map: JSON) -> JSON:
    try:
        value = json.loads(((config_map.get("data") or {}).get(DATA_KEY)) or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        name = (config_map.get("metadata") or {}).get("name")
        raise ApiError(422, f"version ConfigMap {name} does not hold a JSON object under {DATA_KEY}")
    return value


def _version_out(workflow_id: str, config_map: JSON) -> VersionOut:
    meta = config_map.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    try:
        snapshot = _snapshot(config_map)
    except ApiError:
        snapshot = {}  # listed all the same; reading or restoring it says what is wrong
    generation = str(annotations.get(ANNOTATION_GENERATION) or "")
    return VersionOut(
        workflow_id=workflow_id,
        version_tag=str((meta.get("labels") or {}).get(LABEL_VERSION) or ""),
        description=annotations.get(ANNOTATION_DESCRIPTION),
        created_by=annotations.get(ANNOTATION_CREATED_BY),
        created_at=annotations.get(ANNOTATION_CREATED_AT) or meta.get("creationTimestamp"),
        workflow_generation=int(generation) if generation.isdigit() else None,
        node_count=len(snapshot.get("nodes") or ()),
        connection_count=len(snapshot.get("connections") or ()),
    )


async def _versions(context: Context, principal: Principal, workflow: JSON) -> list[JSON]:
    name = str(workflow["metadata"]["name"])
    found = await context.kube.list_all(
        CONFIGMAPS, principal.org, label_selector=f"{LABEL_VERSION_OF}={name}"
    )
    return [cm for cm in found if _owned_by(cm, workflow)]


async def _version(context: Context, principal: Principal, workflow: JSON, tag: str) -> JSON:
    """The ConfigMap of one version; 404 when the workflow has no version with this tag."""
    workflow_id = ids.workflow_id(str(workflow["metadata"]["name"]))
    missing = ApiError(404, f"workflow {workflow_id} has no version {tag!r}")
    try:
        config_map = await context.kube.get(
            CONFIGMAPS, principal.org, version_name(str(workflow["metadata"]["name"]), tag)
        )
    except NotFound:
        raise missing from None
    labels = (config_map.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_VERSION) != tag or not _owned_by(config_map, workflow):
        raise missing
    return config_map


def _newest_first(config_map: JSON) -> tuple[str, str]:
    meta = config_map.get("metadata") or {}
    created = (meta.get("annotations") or {}).get(ANNOTATION_CREATED_AT) or meta.get("creationTimestamp")
    return str(created or ""), str(meta.get("name") or "")


@router.get(
    "/{workflow_id}/versions", response_model=VersionList, summary="List a workflow's versions, newest first"
)
async def list_versions(context: ContextDep, principal: Reader, workflow_id: str) -> VersionList:
    workflow = await get_workflow(context, principal, workflow_id)
    found = sorted(await _versions(context, principal, workflow), key=_newest_first, reverse=True)
    versions = [_version_out(workflow_id, cm) for cm in found]
    return VersionList(workflow_id=workflow_id, count=len(versions), versions=versions)


def _config_map(workflow: JSON, body: VersionCreate, principal: Principal, now: dt.datetime) -> JSON:
    meta = workflow["metadata"]
    created_at = now.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    annotations = {ANNOTATION_CREATED_BY: principal.user, ANNOTATION_CREATED_AT: created_at}
    if body.description:
        annotations[ANNOTATION_DESCRIPTION] = body.description
    if meta.get("generation") is not None:
        annotations[ANNOTATION_GENERATION] = str(meta["generation"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": version_name(meta["name"], body.version_tag),
            "labels": {
                LABEL_VERSION_OF: meta["name"],
                LABEL_VERSION: body.version_tag,
                names.LABEL_COMPONENT: COMPONENT,
                names.LABEL_PART_OF: names.PART_OF,
            },
            "annotations": annotations,
            # No controller and no blockOwnerDeletion: setting the latter needs update on
            # workflows/finalizers where the OwnerReferencesPermissionEnforcement plugin is on.
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.WORKFLOW_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "immutable": True,
        "data": {DATA_KEY: json.dumps(snapshot_of(workflow.get("spec") or {}), sort_keys=True, indent=1)},
    }


@router.post(
    "/{workflow_id}/versions",
    status_code=201,
    response_model=VersionOut,
    summary="Snapshot the current definition as a new version",
    responses={409: {"model": ErrorResponse, "description": "The tag exists, or the workflow has too many."}},
)
async def create_version(
    context: ContextDep, principal: Writer, workflow_id: str, body: VersionCreate
) -> VersionOut:
    workflow = await get_workflow(context, principal, workflow_id, write=True)
    existing = await _versions(context, principal, workflow)
    if len(existing) >= MAX_VERSIONS:
        raise ApiError(
            409,
            f"workflow {workflow_id} already has {len(existing)} versions, the most it may keep; "
            "delete old ones first",
        )
    config_map = _config_map(workflow, body, principal, context.clock())
    name = config_map["metadata"]["name"]
    for _ in range(2):
        try:
            created = await context.kube.create(CONFIGMAPS, principal.org, config_map)
        except Conflict:
            taken = await context.kube.get_or_none(CONFIGMAPS, principal.org, name)
            if taken is not None and not _owned_by(taken, workflow):
                # Left by a deleted workflow of the same name, not yet garbage-collected.
                await context.kube.delete(CONFIGMAPS, principal.org, name)
                continue
            raise ApiError(
                409,
                f"workflow {workflow_id} already has a version {body.version_tag!r}; tags are unique",
                details=[ErrorDetail(path="body.versionTag", message="a version with this tag exists")],
            ) from None
        return _version_out(workflow_id, created)
    raise ApiError(409, f"version {body.version_tag!r} is being replaced concurrently; retry")


@router.get(
    "/{workflow_id}/versions/{version}",
    response_model=VersionDetail,
    summary="Get a version with its snapshot",
)
async def get_version(
    context: ContextDep, principal: Reader, workflow_id: str, version: VersionTag
) -> VersionDetail:
    workflow = await get_workflow(context, principal, workflow_id)
    config_map = await _version(context, principal, workflow, version)
    out = _version_out(workflow_id, config_map)
    return VersionDetail(**out.model_dump(), spec=_snapshot(config_map))


@router.delete(
    "/{workflow_id}/versions/{version}",
    status_code=204,
    response_class=Response,
    summary="Delete a version (the workflow is unchanged)",
)
async def delete_version(
    context: ContextDep, principal: Writer, workflow_id: str, version: VersionTag
) -> Response:
    workflow = await get_workflow(context, principal, workflow_id, write=True)
    config_map = await _version(context, principal, workflow, version)
    with contextlib.suppress(NotFound):  # deleted concurrently: the outcome the caller asked for
        await context.kube.delete(CONFIGMAPS, principal.org, config_map["metadata"]["name"])
    return Response(status_code=204)


@router.post(
    "/{workflow_id}/versions/{version}/restore",
    response_model=VersionRestored,
    summary="Make a version's snapshot the current definition",
    responses={409: {"model": ErrorResponse, "description": "The workflow kept changing; retry."}},
)
async def restore_version(
    context: ContextDep, principal: Writer, workflow_id: str, version: VersionTag
) -> VersionRestored:
    workflow = await get_workflow(context, principal, workflow_id, write=True)
    snapshot = _snapshot(await _version(context, principal, workflow, version))
    seen: list[JSON] = []

    def restore(spec: JSON) -> None:
        seen.append(snapshot_of(validated_spec(spec)))
        for key in SNAPSHOT_FIELDS:
            if key in snapshot:
                spec[key] = snapshot[key]
            else:
                spec.pop(key, None)

    after = await update_spec(context, principal, workflow_id, restore)
    return VersionRestored(
        workflow_id=workflow_id,
        restored_version=version,
        changed=bool(seen) and seen[-1] != snapshot_of(validated_spec(after.get("spec") or {})),
        workflow=workflow_out(after),
    )
