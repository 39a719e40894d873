"""One error shape for every 4xx and 5xx answer, and the handlers that produce it.

Every error is ``{"error": {"status", "code", "message", "details": [{"path", "message"}]}}``: ``code``
is a stable snake_case word for programs, ``message`` a sentence for people, ``details`` the field
paths of invalid input (``body.nodes[0].type``, ``spec.lifecycle.idleTimeoutMinutes``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tideflow.core.kube import KubeError
from tideflow.core.models import ValidationIssue

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "ErrorResponse",
    "error_body",
    "install",
    "invalid",
    "invalid_graph",
    "loc_path",
    "responses",
]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


_UNPARSABLE_BODY = "There was an error parsing the body"
"""FastAPI's message for a request body it could not decode."""


class ErrorDetail(BaseModel):
    """One problem with the input, at a field path."""

    path: str = Field(description="Where the problem is, e.g. ``body.nodes[0].type``.")
    message: str = Field(description="What is wrong there.")


class ErrorBody(BaseModel):
    """The error itself."""

    status: int = Field(description="The HTTP status code, repeated for logs and clients.")
    code: str = Field(description="A stable machine-readable word: not_found, invalid, conflict, ...")
    message: str = Field(description="What went wrong, for people.")
    details: list[ErrorDetail] = Field(default_factory=list, description="Field-level problems, if any.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorBody


class ApiError(Exception):
    """Raise anywhere in a request to answer with the error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(status, "error")
        self.details = list(details)
        self.headers = dict(headers or {})


def error_body(
    status: int, message: str, *, code: str | None = None, details: Iterable[ErrorDetail] = ()
) -> bytes:
    """The serialized error shape (also used by middleware that answers before FastAPI)."""
    body = ErrorResponse(
        error=ErrorBody(
            status=status, code=code or _CODES.get(status, "error"), message=message, details=list(details)
        )
    )
    return body.model_dump_json().encode()


def invalid(exc: ValidationError, where: str, what: str = "invalid request") -> ApiError:
    """A 422 for a pydantic error, each detail's path under ``where`` (``body``, ``spec``)."""
    details = [
        ErrorDetail(path=loc_path((where, *e["loc"])), message=e["msg"])
        for e in exc.errors(include_url=False)
    ]
    return ApiError(422, f"{what}: {details[0].path}: {details[0].message}", details=details)


def invalid_graph(issues: Iterable[ValidationIssue], what: str) -> ApiError:
    """A 422 for the errors :func:`tideflow.core.validation.validate_workflow` found."""
    details = [ErrorDetail(path=issue.path, message=issue.message) for issue in issues]
    first = f": {details[0].path}: {details[0].message}" if details else ""
    return ApiError(422, what + first, details=details)


_DESCRIPTIONS = {
    401: "No valid API key.",
    403: "The key lacks the scope, or the caller may not change the workflow.",
    404: "No such workflow visible to the caller.",
    409: "The workflow's state does not allow it.",
    422: "Invalid input; the details name the fields.",
    503: "The runtime is starting or busy; retry after Retry-After.",
}


def responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The error answers a router documents, in the one error shape; ``descriptions`` override the
    default wording by code (``responses(401, 404, e404="No such run.")``)."""
    return {
        code: {"model": ErrorResponse, "description": descriptions.get(f"e{code}", _DESCRIPTIONS[code])}
        for code in codes
    }


def loc_path(loc: Iterable[Any]) -> str:
    """``("body", "nodes", 0, "type")`` as ``body.nodes[0].type``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _respond(error: ApiError) -> JSONResponse:
    return JSONResponse(
        json.loads(error_body(error.status, error.message, code=error.code, details=error.details)),
        status_code=error.status,
        headers=error.headers,
    )


def from_kube(exc: KubeError) -> ApiError:
    """A Kubernetes API error as the API's answer: 404, 409 and 422 pass through, the rest are a 502."""
    if exc.code in (404, 409):
        return ApiError(exc.code, exc.message)
    if exc.code == 422:
        details = [
            ErrorDetail(path=str(cause.get("field") or ""), message=str(cause.get("message") or ""))
            for cause in exc.causes
        ]
        return ApiError(422, exc.message, details=details)
    if exc.code == 429:
        return ApiError(503, "the cluster is busy; retry", headers={"Retry-After": "2"})
    return ApiError(502, f"the Kubernetes API answered {exc.code}: {exc.message}")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error shape."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc)

    @app.exception_handler(KubeError)
    async def kube_error(request: Request, exc: KubeError) -> JSONResponse:
        if exc.code >= 500:
            logger.warning("Kubernetes API error on %s %s: %s", request.method, request.url.path, exc)
        return _respond(from_kube(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "error")
        if exc.status_code == 400 and message == _UNPARSABLE_BODY:
            # FastAPI answers 400 for a body it cannot decode (not UTF-8) but 422 for one that is not
            # JSON: both are the same client error, so both are a documented 422 naming the body.
            detail = ErrorDetail(path="body", message="the body is not UTF-8 encoded JSON")
            return _respond(ApiError(422, "invalid request: body: not UTF-8 encoded JSON", details=[detail]))
        return _respond(ApiError(exc.status_code, message, headers=exc.headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            ErrorDetail(path=loc_path(e.get("loc") or ()), message=str(e.get("msg"))) for e in exc.errors()
        ]
        first = f"{details[0].path}: {details[0].message}" if details else "invalid request"
        return _respond(ApiError(422, f"invalid request: {first}", details=details))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _respond(ApiError(500, "internal error; the request may be retried"))
