"""Authentication and authorization as FastAPI dependencies.

``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` identifies the caller (401 otherwise); each route
declares the scope it needs with ``Depends(require(Scope.X))`` (403 without it). What a caller may see
of a workflow (owner, ``sharedWith``, ``isPublic``) is decided by :func:`can_read` and
:func:`can_write`, used by every route that touches one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Header

from tideflow.api.context import ContextDep
from tideflow.api.errors import ApiError
from tideflow.api.keys import Principal, Scope

__all__ = ["Admin", "Executor", "Reader", "Writer", "authenticate", "can_read", "can_write", "require"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tideflow", ApiKey header="X-API-Key"'}


async def authenticate(
    context: ContextDep,
    x_api_key: Annotated[str | None, Header(description="An API key (or use Authorization: Bearer).")] = None,
    authorization: Annotated[str | None, Header(description="``Bearer <API key>``.")] = None,
) -> Principal:
    """The caller of a request; 401 without a valid key, 403 for an organization this API does not serve."""
    key = x_api_key
    if key is None and authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
    if not key:
        context.metrics.auth_failures.labels("missing").inc()
        raise ApiError(401, "an API key is required (X-API-Key or Authorization: Bearer)", headers=_CHALLENGE)
    principal = await context.keys.verify(key)
    if principal is None:
        context.metrics.auth_failures.labels("invalid").inc()
        raise ApiError(401, "the API key is not valid", headers=_CHALLENGE)
    if not context.settings.serves(principal.org):
        context.metrics.auth_failures.labels("organization").inc()
        raise ApiError(403, f"this API does not serve organization {principal.org!r}")
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that answers 403 unless the caller's key has ``scope`` (admin keys have them all)."""

    async def dependency(
        context: ContextDep, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        if scope not in principal.scopes:
            context.metrics.auth_failures.labels("scope").inc()
            raise ApiError(403, f"the API key lacks the {scope.value} scope")
        return principal

    dependency.__name__ = f"require_{scope.name.lower()}"
    return dependency


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def can_read(principal: Principal, obj: Mapping[str, Any]) -> bool:
    """Admins, the owner, users it is shared with, and everyone in the organization when public."""
    spec = _spec(obj)
    return (
        principal.admin
        or spec.get("owner") == principal.user
        or principal.user in (spec.get("sharedWith") or ())
        or bool(spec.get("isPublic"))
    )


def can_write(principal: Principal, obj: Mapping[str, Any]) -> bool:
    """Admins and the owner; a workflow without an owner (applied with kubectl) only admins."""
    return principal.admin or (
        _spec(obj).get("owner") is not None and _spec(obj).get("owner") == principal.user
    )


Reader = Annotated[Principal, Depends(require(Scope.READ))]
"""The caller of a route that needs ``workflows:read``."""
Writer = Annotated[Principal, Depends(require(Scope.WRITE))]
"""The caller of a route that needs ``workflows:write``."""
Executor = Annotated[Principal, Depends(require(Scope.EXECUTE))]
"""The caller of a route that needs ``workflows:execute``."""
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
"""The caller of a route that needs ``admin``."""
