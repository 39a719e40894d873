"""``/api/v1/api-keys``: organization admins create, list and revoke API keys.

A new key is shown once, in the answer to its creation; only its hash is stored (see
:mod:`tideflow.api.keys`). Keys belong to the caller's organization.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field

from tideflow.api.auth import Admin
from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError, responses
from tideflow.api.keys import (
    LABEL_API_KEY,
    SECRET_PREFIX,
    Scope,
    key_secret,
    new_key,
    principal_from_secret,
)
from tideflow.api.schemas import ApiModel
from tideflow.core.kube import SECRETS, NotFound

router = APIRouter(
    prefix="/api/v1/api-keys",
    tags=["api-keys"],
    responses=responses(401, 403, 404, 422, e403="The key lacks the admin scope.", e404="No such key."),
)


class KeyCreate(ApiModel):
    """A new API key for a user of the caller's organization."""

    user: str = Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.@]{0,252}$", description="Who the key acts as.")
    scopes: list[Scope] = Field(min_length=1, description="What the key may do.")
    description: str = Field(default="", max_length=256)


class KeyOut(ApiModel):
    """An API key, without the key."""

    key_id: str
    user: str
    scopes: list[Scope]
    org: str


class KeyCreated(KeyOut):
    """A new API key, with the key itself."""

    api_key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(ApiModel):
    """The organization's API keys."""

    keys: list[KeyOut]


@router.post("", status_code=201, response_model=KeyCreated, summary="Create an API key (shown once)")
async def create_key(context: ContextDep, principal: Admin, body: KeyCreate) -> KeyCreated:
    scopes = frozenset(body.scopes)
    key_id, key = new_key(principal.org)
    await context.kube.create(
        SECRETS,
        principal.org,
        key_secret(key_id, key, user=body.user, scopes=scopes, description=body.description),
    )
    return KeyCreated(key_id=key_id, user=body.user, scopes=sorted(scopes), org=principal.org, api_key=key)


@router.get("", response_model=KeyList, summary="The organization's API keys (never the keys themselves)")
async def list_keys(context: ContextDep, principal: Admin) -> KeyList:
    secrets = await context.kube.list_all(SECRETS, principal.org, label_selector=f"{LABEL_API_KEY}=true")
    keys = []
    for secret in secrets:
        try:
            _, owner = principal_from_secret(secret, principal.org)
        except (ValueError, UnicodeDecodeError):
            continue
        keys.append(
            KeyOut(key_id=owner.key_id, user=owner.user, scopes=sorted(owner.scopes), org=principal.org)
        )
    return KeyList(keys=sorted(keys, key=lambda k: k.key_id))


@router.delete("/{key_id}", status_code=204, response_class=Response, summary="Revoke an API key")
async def revoke_key(context: ContextDep, principal: Admin, key_id: str) -> Response:
    if not key_id.isalnum() or len(key_id) > 32:
        raise ApiError(404, f"no API key {key_id!r}")
    try:
        secret = await context.kube.get(SECRETS, principal.org, SECRET_PREFIX + key_id)
        principal_from_secret(secret, principal.org)
        await context.kube.delete(SECRETS, principal.org, SECRET_PREFIX + key_id)
    except (NotFound, ValueError):
        raise ApiError(404, f"no API key {key_id!r}") from None
    context.keys.forget(key_id)
    return Response(status_code=204)
