"""``/api/v1/workflows/{id}/share``: who a workflow is shared with, and changing it.

Sharing writes ``spec.sharedWith``, the list :func:`tideflow.api.auth.can_read` consults, so a share is
visible at once in what that user can list and read (and execute). Only the owner and admins may change
it. A user belongs to an organization when they hold an API key there (a Secret labelled
``tideflow.io/api-key`` in the namespace, see :mod:`tideflow.api.keys`), or are the bootstrap admin of
it; sharing with anyone else is refused and writes nothing.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

from fastapi import APIRouter, Path
from pydantic import Field

from tideflow.api.auth import Reader, Writer
from tideflow.api.context import Context, ContextDep
from tideflow.api.errors import ApiError, ErrorDetail, responses
from tideflow.api.keys import LABEL_API_KEY
from tideflow.api.schemas import ApiModel
from tideflow.api.store import JSON, get_workflow, update_spec
from tideflow.core.kube import SECRETS

__all__ = ["USER_PATTERN", "organization_users", "router"]

USER_PATTERN: Final = r"^[A-Za-z0-9][-A-Za-z0-9_.@]{0,252}$"
"""A user name as API keys are made for (``POST /api/v1/api-keys``)."""

router = APIRouter(
    prefix="/api/v1/workflows",
    tags=["sharing"],
    responses=responses(
        401,
        403,
        404,
        409,
        422,
        e403="The key lacks the scope, or the caller is neither the owner nor an admin.",
        e409="The workflow kept changing; retry.",
    ),
)


class ShareRequest(ApiModel):
    """``POST /{id}/share``: share the workflow with a user of the caller's organization."""

    user_id: str = Field(
        pattern=USER_PATTERN, description="The user, as their API keys name them (``user``)."
    )


class ShareOut(ApiModel):
    """Who may see the workflow besides admins."""

    workflow_id: str
    owner: str | None = Field(default=None, description="May read, change and share it.")
    shared_with: list[str] = Field(default_factory=list, description="May read and execute it.")
    is_public: bool = Field(default=False, description="Everyone in the organization may read it.")


def _share_out(workflow_id: str, obj: JSON) -> ShareOut:
    spec = obj.get("spec") or {}
    return ShareOut(
        workflow_id=workflow_id,
        owner=spec.get("owner"),
        shared_with=list(spec.get("sharedWith") or ()),
        is_public=bool(spec.get("isPublic")),
    )


async def organization_users(context: Context, org: str) -> set[str]:
    """The users holding an API key in ``org``, and the bootstrap admin when it is ``org``'s."""
    secrets = await context.kube.list_all(SECRETS, org, label_selector=f"{LABEL_API_KEY}=true")
    users: set[str] = set()
    for secret in secrets:
        encoded = (secret.get("data") or {}).get("user")
        try:
            user = base64.b64decode(encoded or "", validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
        if user:
            users.add(user)
    bootstrap = context.keys.bootstrap
    if bootstrap is not None and bootstrap[1].org == org:
        users.add(bootstrap[1].user)
    return users


@router.get("/{workflow_id}/share", response_model=ShareOut, summary="Who the workflow is shared with")
async def get_share(context: ContextDep, principal: Reader, workflow_id: str) -> ShareOut:
    return _share_out(workflow_id, await get_workflow(context, principal, workflow_id))


@router.post(
    "/{workflow_id}/share",
    response_model=ShareOut,
    summary="Share the workflow with a user of the organization (owner or admin)",
)
async def share(context: ContextDep, principal: Writer, workflow_id: str, body: ShareRequest) -> ShareOut:
    obj = await get_workflow(context, principal, workflow_id, write=True)
    user = body.user_id
    if user not in await organization_users(context, principal.org):
        raise ApiError(
            422,
            f"user {user!r} does not belong to organization {principal.org!r} (no API key there)",
            code="user_not_in_organization",
            details=[ErrorDetail(path="body.userId", message="not a user of this organization")],
        )
    if user == (obj.get("spec") or {}).get("owner"):
        raise ApiError(
            422,
            f"user {user!r} owns workflow {workflow_id}; sharing with the owner changes nothing",
            details=[ErrorDetail(path="body.userId", message="the owner of the workflow")],
        )

    def add(spec: JSON) -> None:
        shared = list(spec.get("sharedWith") or ())
        if user not in shared:
            spec["sharedWith"] = [*shared, user]

    return _share_out(workflow_id, await update_spec(context, principal, workflow_id, add))


@router.delete(
    "/{workflow_id}/share/{user_id}",
    response_model=ShareOut,
    summary="Stop sharing the workflow with a user (owner or admin)",
)
async def unshare(
    context: ContextDep,
    principal: Writer,
    workflow_id: str,
    user_id: Annotated[str, Path(max_length=253, description="The user to stop sharing with.")],
) -> ShareOut:
    obj = await get_workflow(context, principal, workflow_id, write=True)
    if user_id not in ((obj.get("spec") or {}).get("sharedWith") or ()):
        raise ApiError(404, f"workflow {workflow_id} is not shared with {user_id!r}")

    def remove(spec: JSON) -> None:
        spec["sharedWith"] = [u for u in spec.get("sharedWith") or () if u != user_id]

    return _share_out(workflow_id, await update_spec(context, principal, workflow_id, remove))
