"""The trigger server: one FastAPI app per workflow runtime, served by uvicorn.

Endpoints:

- ``POST /trigger``: stores a run (body ``inputs``, ``trigger_type``, ``sync``, ``idempotency_key``,
  ``priority``). Async: 202 with the run id at once. Sync: waits up to ``TIDEFLOW_SYNC_TIMEOUT_SECONDS``
  and answers 200 with the output, or 202 with the run id when the limit passes first.
- ``/webhooks/{path}``: a ``webhook_trigger`` node's endpoint. Authenticates (bearer token or HMAC
  signature, :mod:`tideflow.runtime.webhooks`), stores a run and answers with the reply of a ``respond``
  node (202 with the run id when the workflow has none).
- ``GET /runs/{name}``: the run's phase and status.
- ``POST /runs/{name}/resume`` and ``/reject``: record an approval decision on a paused run, which then
  continues from its snapshot; ``POST /runs/{name}/cancel``: cancel a run that has not ended.
- ``GET /healthz`` (the process serves requests), ``GET /readyz`` (the definition is loaded, the run
  watcher runs and the runtime is not draining), ``GET /metrics`` (:mod:`tideflow.runtime.metrics`).

Request bodies larger than ``TIDEFLOW_MAX_BODY_BYTES`` are refused with 413 by the outermost middleware,
before routing, parsing or authentication. A trigger is accepted only once its WorkflowRun is stored; when
the store cannot be reached the answer is 503 and nothing runs. On SIGTERM the runtime drains: ``/readyz``
fails, new triggers get 503, runs in flight get ``TIDEFLOW_DRAIN_SECONDS`` to finish and are then handed
back, and uvicorn stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tideflow.core.asgi import BodyLimitMiddleware
from tideflow.core.clock import Clock, system_clock
from tideflow.core.kube import KubeClient, KubeError, NotFound
from tideflow.core.models import RunPhase, TriggerType, WorkflowDefinition
from tideflow.runtime.activity import ActivityReporter
from tideflow.runtime.engine import WorkflowDefinitionError, WorkflowEngine
from tideflow.runtime.metrics import RuntimeMetrics
from tideflow.runtime.nodes.base import NodeImplementation, Services, WebhookResponse
from tideflow.runtime.runs import (
    KubeRunStore,
    ManagerOptions,
    RunManager,
    RunOutcome,
    RunStateError,
    RunStore,
    phase_of,
    timestamp,
)
from tideflow.runtime.settings import RuntimeSettings
from tideflow.runtime.webhooks import (
    WebhookAuthError,
    WebhookConfigError,
    WebhookRoute,
    WebhookVerifier,
    normalize_path,
    webhook_routes,
)

__all__ = ["Runtime", "create_app", "load_definition", "serve"]

logger = logging.getLogger(__name__)

_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"})
_DEFINITION_KEYS = ("nodes", "connections", "settings")


def load_definition(path: str | os.PathLike[str]) -> WorkflowDefinition:
    """Read the mounted definition (the operator's ConfigMap): its nodes, connections and settings."""
    with open(path, encoding="utf-8") as stream:
        document = json.load(stream)
    if not isinstance(document, dict):
        raise ValueError(f"{path}: the definition must be a JSON object")
    return WorkflowDefinition.model_validate(
        {key: document[key] for key in _DEFINITION_KEYS if key in document}
    )


class TriggerBody(BaseModel):
    """The body of ``POST /trigger`` (snake_case or camelCase keys)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    inputs: dict[str, Any] = Field(default_factory=dict)
    trigger_type: TriggerType = Field(default=TriggerType.MANUAL, alias="triggerType")
    sync: bool = False
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey", min_length=1, max_length=256)
    priority: int = Field(default=0, ge=-1000, le=1000)


class DecisionBody(BaseModel):
    """The optional body of ``/resume`` and ``/reject``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    comment: str | None = Field(default=None, max_length=4096)
    decided_by: str | None = Field(default=None, alias="decidedBy", max_length=253)
    node_id: str | None = Field(default=None, alias="nodeId", max_length=63)


class CancelBody(BaseModel):
    """The optional body of ``/cancel``."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by request", min_length=1, max_length=1024)


class Runtime:
    """One workflow's runtime: definition, engine, run manager, webhooks, activity and metrics."""

    def __init__(
        self,
        settings: RuntimeSettings,
        store: RunStore,
        *,
        definition: WorkflowDefinition | None = None,
        services: Services | None = None,
        implementations: Mapping[str, NodeImplementation] | None = None,
        clock: Clock = system_clock,
        wall_time: Callable[[], float] = time.time,
        metrics: RuntimeMetrics | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.metrics = metrics or RuntimeMetrics(settings.workflow)
        self.services = services or Services()
        self.problems: list[str] = []
        self.draining = False
        self.started = False
        self.routes: dict[str, WebhookRoute] = {}
        self.has_respond = False
        self.engine: WorkflowEngine | None = None
        self.manager: RunManager | None = None
        self.verifier = WebhookVerifier(self.services.secrets, now=wall_time)
        self.activity = ActivityReporter(
            self._write_activity, interval=settings.activity_interval_seconds, clock=clock
        )

        def engine_for(loaded: WorkflowDefinition) -> WorkflowEngine:
            return WorkflowEngine(
                loaded,
                services=self.services,
                implementations=implementations,
                workflow=settings.workflow,
                namespace=settings.namespace,
                run_timeout_seconds=settings.run_timeout_seconds,
            )

        try:
            if definition is None:
                definition = load_definition(settings.definition_path)
            engine = engine_for(definition)
            self.routes = webhook_routes(definition)
            self.engine = engine
            self.has_respond = any(node.type == "respond" for node in definition.nodes)
        except (OSError, ValueError, ValidationError, WorkflowDefinitionError, WebhookConfigError) as exc:
            # Not ready, no triggers or webhooks; runs that carry their own definition (draft runs of an
            # invalid Workflow, for which the operator starts this runtime) still execute.
            self.problems.append(f"the definition cannot be loaded: {exc}")
            logger.error("the definition cannot be loaded: %s; only runs with a definition will run", exc)
        self.manager = RunManager(
            store,
            self.engine,
            workflow=settings.workflow,
            pod_name=settings.pod_name,
            options=ManagerOptions(
                max_concurrent_runs=settings.max_concurrent_runs,
                parallel_claims=settings.parallel_claims,
                lease_seconds=settings.claim_lease_seconds,
                status_interval=settings.status_interval_seconds,
                status_budget=settings.status_budget_bytes,
                origin_grace=settings.origin_grace_seconds,
                tick_seconds=tick_seconds,
            ),
            clock=clock,
            metrics=self.metrics,
            on_activity=self.activity.note,
            engine_factory=engine_for,
        )

    async def _write_activity(self, moment: datetime) -> None:
        try:
            await self.store.patch_workflow_status({"lastActivityAt": timestamp(moment)})
        except NotFound:
            logger.debug("workflow %s not found; lastActivityAt not reported", self.settings.workflow)

    def readiness(self) -> list[str]:
        """Why the runtime is not ready; empty when it is."""
        reasons = list(self.problems)
        if self.draining:
            reasons.append("draining")
        if not self.started:
            reasons.append("starting")
        elif self.manager is not None and not self.manager.watching:
            reasons.append("the run watcher is not running")
        return reasons

    async def start(self) -> None:
        if self.manager is not None:
            await self.manager.start()
        self.started = True

    async def drain(self, seconds: float | None = None) -> None:
        """Stop taking work; finish or hand back the runs in flight within ``seconds``."""
        self.draining = True
        if self.manager is not None:
            await self.manager.drain(self.settings.drain_seconds if seconds is None else seconds)
        await self.activity.flush()

    async def close(self) -> None:
        if self.manager is not None:
            await self.manager.close()
        await self.activity.close()


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=dict(headers or {}))


def _webhook_inputs(body: bytes, content_type: str) -> dict[str, Any]:
    if not body:
        return {}
    if "json" in content_type or content_type == "":
        try:
            value = json.loads(body)
        except ValueError:
            if "json" in content_type:
                raise
        else:
            return value if isinstance(value, dict) else {"body": value}
    text = body.decode("utf-8", errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {key: values[0] if len(values) == 1 else values for key, values in parse_qs(text).items()}
    return {"body": text}


def _reply(response: WebhookResponse, run: str) -> Response:
    headers = {name: value for name, value in response.headers.items() if name.lower() not in _HOP_BY_HOP}
    headers.setdefault("X-Tideflow-Run", run)
    body = response.body
    if isinstance(body, str | bytes):
        lower = {name.lower() for name in headers}
        media = None if "content-type" in lower else "text/plain; charset=utf-8"
        return Response(body, status_code=response.status, headers=headers, media_type=media)
    return JSONResponse(body, status_code=response.status, headers=headers)


def create_app(runtime: Runtime, *, manage_lifecycle: bool = True) -> FastAPI:
    """The ASGI app; with ``manage_lifecycle`` its lifespan starts and closes ``runtime``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await runtime.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await runtime.close()

    app = FastAPI(title=f"tideflow runtime: {runtime.settings.workflow}", lifespan=lifespan, docs_url=None)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=runtime.settings.max_body_bytes,
        on_reject=lambda: runtime.metrics.reject("body_too_large"),
    )
    metrics = runtime.metrics
    sync_timeout = runtime.settings.sync_timeout_seconds

    def unavailable() -> JSONResponse | None:
        if runtime.manager is None or runtime.engine is None:
            return _error(503, "; ".join(runtime.problems) or "the runtime is not ready")
        if runtime.draining:
            metrics.reject("draining")
            return _error(503, "the runtime is shutting down; retry", {"Retry-After": "5"})
        return None

    async def store_run(
        manager: RunManager,
        *,
        trigger_type: str,
        inputs: Mapping[str, Any],
        priority: int = 0,
        key: str | None = None,
        trigger_metadata: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool] | JSONResponse:
        try:
            return await manager.create_run(
                trigger_type=trigger_type,
                inputs=inputs,
                priority=priority,
                idempotency_key=key,
                trigger_metadata=trigger_metadata,
            )
        except RunStateError as exc:
            return _error(exc.status, exc.message)
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False)}, status_code=422)
        except (KubeError, httpx.HTTPError, OSError) as exc:
            metrics.reject("store_unavailable")
            logger.warning("could not store a run: %s", exc)
            return _error(503, f"the run could not be stored: {exc}", {"Retry-After": "5"})

    async def wait_for_run(
        manager: RunManager, obj: Mapping[str, Any], created: bool, *, response: bool
    ) -> RunOutcome | None:
        """The run's outcome within the sync limit; ``None`` (answered 202) when it cannot be known."""
        try:
            return await manager.wait(
                str(obj["metadata"]["name"]), sync_timeout, response=response, check_store=not created
            )
        except (KubeError, httpx.HTTPError, OSError) as exc:
            logger.warning("could not read run %s: %s", obj["metadata"]["name"], exc)
            return None

    def accepted(obj: Mapping[str, Any], created: bool, outcome: RunOutcome | None = None) -> JSONResponse:
        name = str(obj["metadata"]["name"])
        hint = runtime.manager.phase_hint(name) if runtime.manager is not None else None
        phase = outcome.phase if outcome is not None else hint or phase_of(obj) or RunPhase.PENDING
        body: dict[str, Any] = {"runId": name, "phase": phase.value, "created": created}
        if outcome is not None and outcome.awaiting is not None:
            body["awaiting"] = outcome.awaiting
        return JSONResponse(body, status_code=202 if created or not phase.finished else 200)

    @app.post("/trigger")
    async def trigger(request: Request, body: TriggerBody | None = None) -> Response:
        started = time.perf_counter()
        body = body or TriggerBody()
        refused = unavailable()
        if refused is not None or runtime.manager is None:
            return refused or _error(503, "not ready")
        manager = runtime.manager
        stored = await store_run(
            manager,
            trigger_type=body.trigger_type.value,
            inputs=body.inputs,
            priority=body.priority,
            key=body.idempotency_key or request.headers.get("idempotency-key") or None,
        )
        if isinstance(stored, JSONResponse):
            return stored
        obj, created = stored
        mode = "sync" if body.sync else "async"
        if not body.sync:
            metrics.trigger_answered("trigger", mode, time.perf_counter() - started)
            return accepted(obj, created)
        outcome = await wait_for_run(manager, obj, created, response=False)
        metrics.trigger_answered("trigger", mode, time.perf_counter() - started)
        if outcome is None or outcome.phase is RunPhase.AWAITING_INTERACTION or not outcome.phase.finished:
            return accepted(obj, created, outcome)
        return JSONResponse({**outcome.to_json(), "created": created}, status_code=200)

    @app.api_route("/webhooks/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def webhook(path: str, request: Request) -> Response:
        started = time.perf_counter()
        route = runtime.routes.get(normalize_path(path))
        if route is None:
            return _error(404, f"no webhook at /webhooks/{normalize_path(path)}")
        if route.method is not None and request.method != route.method:
            return _error(405, f"this webhook accepts {route.method}", {"Allow": route.method})
        refused = unavailable()
        if refused is not None or runtime.manager is None:
            return refused or _error(503, "not ready")
        manager = runtime.manager
        raw = await request.body()
        try:
            await runtime.verifier.verify(route.auth, request.headers, raw)
        except WebhookAuthError as exc:
            metrics.reject("unauthorized" if exc.status == 401 else "auth_misconfigured")
            if exc.status >= 500:
                logger.error("webhook %s: %s", route.path, exc.message)
            challenge = {"WWW-Authenticate": exc.challenge} if exc.challenge else None
            return _error(exc.status, exc.message, challenge)
        try:
            inputs = _webhook_inputs(raw, request.headers.get("content-type", "").lower())
        except ValueError:
            return _error(400, "the body is not valid JSON")
        secret_headers = {route.auth.signature_header.lower()} if route.auth is not None else set()
        trigger_metadata = {
            "method": request.method,
            "path": route.path,
            "nodeId": route.node_id,
            "headers": {
                name: value
                for name, value in request.headers.items()
                if name not in _SENSITIVE_HEADERS and name not in secret_headers
            },
            "query": {
                key: values[0] if len(values) == 1 else values
                for key, values in parse_qs(request.url.query).items()
            },
        }
        stored = await store_run(
            manager,
            trigger_type=TriggerType.WEBHOOK.value,
            inputs=inputs,
            key=request.headers.get("idempotency-key") or None,
            trigger_metadata=trigger_metadata,
        )
        if isinstance(stored, JSONResponse):
            return stored
        obj, created = stored
        name = str(obj["metadata"]["name"])
        if not runtime.has_respond:
            metrics.trigger_answered("webhook", "async", time.perf_counter() - started)
            return accepted(obj, created)
        outcome = await wait_for_run(manager, obj, created, response=True)
        metrics.trigger_answered("webhook", "sync", time.perf_counter() - started)
        if outcome is None:
            return accepted(obj, created)
        if outcome.response is not None:
            return _reply(outcome.response, name)
        if outcome.phase is RunPhase.FAILED:
            return JSONResponse(outcome.to_json(), status_code=500)
        if outcome.phase.finished:
            return JSONResponse(outcome.to_json(), status_code=200)
        return accepted(obj, created, outcome)

    async def run_request(name: str, action: Callable[[RunManager], Any]) -> Response:
        if runtime.manager is None:
            return _error(503, "; ".join(runtime.problems) or "the runtime is not ready")
        try:
            obj = await action(runtime.manager)
        except RunStateError as exc:
            return _error(exc.status, exc.message)
        except (KubeError, httpx.HTTPError, OSError) as exc:
            return _error(503, f"the run could not be read or written: {exc}", {"Retry-After": "5"})
        status = obj.get("status") or {}
        phase = phase_of(obj)
        return JSONResponse(
            {"runId": name, "phase": phase.value if phase else status.get("phase"), "status": status}
        )

    @app.get("/runs/{name}")
    async def get_run(name: str) -> Response:
        return await run_request(name, lambda manager: manager.get(name))

    async def decide(name: str, approved: bool, body: DecisionBody | None) -> Response:
        decision: dict[str, Any] = {"approved": approved}
        if body is not None:
            decision.update(body.model_dump(by_alias=True, exclude_none=True))
        response = await run_request(name, lambda manager: manager.decide(name, decision))
        if response.status_code == 200:
            response.status_code = 202
        return response

    @app.post("/runs/{name}/resume")
    async def resume(name: str, body: DecisionBody | None = None) -> Response:
        return await decide(name, True, body)

    @app.post("/runs/{name}/reject")
    async def reject(name: str, body: DecisionBody | None = None) -> Response:
        return await decide(name, False, body)

    @app.post("/runs/{name}/cancel")
    async def cancel(name: str, body: CancelBody | None = None) -> Response:
        reason = (body or CancelBody()).reason
        return await run_request(name, lambda manager: manager.cancel(name, reason))

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        reasons = runtime.readiness()
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        content, media_type = metrics.render()
        return Response(content, media_type=media_type)

    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime drains first, then stops the server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for listener in getattr(self, "servers", []):
            for sock in listener.sockets:
                host, port = sock.getsockname()[:2]
                logger.info("tideflow-runtime listening on http://%s:%s", host, port)


async def serve(settings: RuntimeSettings, *, store: RunStore | None = None) -> None:
    """Run the runtime until SIGTERM or SIGINT, then drain and stop."""
    client: KubeClient | None = None
    if store is None:
        client = KubeClient.from_environment(user_agent=f"tideflow-runtime/{settings.workflow}")
        store = KubeRunStore(client, settings.namespace, settings.workflow)
    services = Services()
    runtime = Runtime(settings, store, services=services)
    app = create_app(runtime)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    stopping: asyncio.Task[None] | None = None

    async def drain_then_stop() -> None:
        try:
            await runtime.drain(settings.drain_seconds)
        finally:
            server.should_exit = True

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stopping
        if stopping is None:
            logger.info("%s: draining (up to %gs)", sig.name, settings.drain_seconds)
            stopping = loop.create_task(drain_then_stop())
        else:
            logger.info("%s again: stopping now", sig.name)
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await server.serve()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await services.aclose()
        if client is not None:
            await client.close()
