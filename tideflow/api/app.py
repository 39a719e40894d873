"""The application factory: middleware, routers, error handlers, and the lifespan that builds the Context.

Middleware order, outermost first: the body limit (so an oversized body is refused before
authentication or parsing), then the access log and metrics (one structured line and one observation
per request, labelled with the route template, never the raw path).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response

from tideflow.api import errors
from tideflow.api.cache import WorkflowCache
from tideflow.api.context import Context
from tideflow.api.keys import KeyRing
from tideflow.api.metrics import ApiMetrics
from tideflow.api.routers import (
    altostrat,
    deployment,
    executions,
    graph,
    health,
    keys,
    library,
    sharing,
    triggers,
    versions,
    workflows,
)
from tideflow.api.settings import ApiSettings
from tideflow.core.asgi import BodyLimitMiddleware
from tideflow.core.clock import Clock, system_clock
from tideflow.core.kube import SECRETS, KubeClient

__all__ = ["create_app", "load_bootstrap_key"]

access_log = logging.getLogger("tideflow.api.access")


async def load_bootstrap_key(settings: ApiSettings, kube: KubeClient) -> str | None:
    """The bootstrap admin key from the environment, or from the Secret it names."""
    if settings.bootstrap_api_key:
        return settings.bootstrap_api_key
    if settings.bootstrap_secret:
        namespace, name = settings.bootstrap_secret.split("/", 1)
        secret = await kube.get(SECRETS, namespace, name)
        encoded = (secret.get("data") or {}).get("api-key")
        if not encoded:
            raise ValueError(f"Secret {settings.bootstrap_secret} has no data key 'api-key'")
        return base64.b64decode(encoded).decode().strip()
    return None


def _route_template(request: Request) -> str:
    """The template of the route that answered (``/api/v1/workflows/{workflow_id}``), never the raw path."""
    route = request.scope.get("route")
    return str(getattr(route, "path", None) or "<unmatched>")


def create_app(
    settings: ApiSettings,
    *,
    kube_factory: Callable[[], KubeClient] = KubeClient.from_environment,
    clock: Clock = system_clock,
) -> FastAPI:
    """The API application; the Kubernetes client is made in the lifespan by ``kube_factory``."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        kube = kube_factory()
        async with kube, httpx.AsyncClient() as http:
            ring = KeyRing(kube, cache_seconds=settings.key_cache_seconds)
            bootstrap = await load_bootstrap_key(settings, kube)
            if bootstrap is not None:
                ring.set_bootstrap(bootstrap, settings.bootstrap_org)
            app.state.context = Context(
                settings=settings,
                kube=kube,
                keys=ring,
                metrics=metrics,
                http=http,
                workflows=WorkflowCache(kube),
                clock=clock,
                held=asyncio.Semaphore(settings.max_held_triggers),
            )
            try:
                yield
            finally:
                await app.state.context.workflows.close()

    app = FastAPI(
        title="Tideflow API",
        version="v1",
        description="Workflows, deployments, triggers and executions as Workflow and WorkflowRun resources.",
        lifespan=lifespan,
        responses={413: {"model": errors.ErrorResponse, "description": "The body is over the size limit."}},
    )
    errors.install(app)
    app.include_router(executions.executions)
    # Before workflows.router, whose GET /{workflow_id} would take /templates, /stats and /discover.
    app.include_router(library.router)
    app.include_router(versions.router)
    app.include_router(sharing.router)
    app.include_router(workflows.router)
    app.include_router(deployment.router)
    app.include_router(graph.router)
    app.include_router(executions.router)
    app.include_router(triggers.router)
    app.include_router(altostrat.router)
    app.include_router(keys.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        seconds = time.perf_counter() - started
        route = _route_template(request)
        metrics.observe(request.method, route, response.status_code, seconds)
        if route not in ("/healthz", "/metrics"):
            access_log.info(
                json.dumps(
                    {
                        "method": request.method,
                        "path": request.url.path,
                        "route": route,
                        "status": response.status_code,
                        "ms": round(seconds * 1000, 1),
                        "client": request.client.host if request.client else None,
                    }
                )
            )
        return response

    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        on_reject=lambda: metrics.observe("*", "<body too large>", 413, 0.0),
        error_body=lambda limit: errors.error_body(413, f"request body larger than {limit} bytes"),
    )
    return app
