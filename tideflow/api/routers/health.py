"""``GET /healthz`` (liveness and readiness: the Kubernetes API answers) and ``GET /metrics``."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from tideflow.api.context import ContextDep
from tideflow.api.schemas import ApiModel

router = APIRouter(tags=["health"])


class Health(ApiModel):
    """Whether the API and the Kubernetes API answer."""

    status: str
    kubernetes: str


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}}, summary="Health check")
async def healthz(context: ContextDep) -> JSONResponse:
    try:
        await context.kube.version()
    except Exception as exc:
        return JSONResponse(
            Health(status="unavailable", kubernetes=str(exc)[:200]).model_dump(), status_code=503
        )
    return JSONResponse(Health(status="ok", kubernetes="reachable").model_dump())


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
async def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
