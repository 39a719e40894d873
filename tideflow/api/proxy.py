"""Reaching a workflow's runtime: find a ready one, wake a stopped one, and hold requests while it starts.

A trigger for a running runtime is forwarded at once. For a stopped one whose lifecycle starts on
demand (``on-demand``, ``idle-shutdown``), the API records activity on the Workflow
(``status.lastActivityAt``, exactly what the runtime itself reports), the operator's lifecycle
decision starts the runtime, and the request is held until a runtime is ready, up to
``TIDEFLOW_TRIGGER_HOLD_SECONDS``. At most ``TIDEFLOW_MAX_HELD_TRIGGERS`` requests are held at once;
beyond that, or past the limit, the answer is 503 with ``Retry-After`` and nothing was stored, so the
client's retry is safe. A workflow stopped by its user, paused, archived, undeployed, or outside its
scheduled window answers 409: waiting would not help.

The runtime is reached at its Service (``status.endpoint``) in a cluster, or at a ready pod's IP with
``TIDEFLOW_RUNTIME_ADDRESS=pod`` (the sandbox, which has no Service proxying).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tideflow.api.context import Context
from tideflow.api.errors import ApiError
from tideflow.api.store import JSON
from tideflow.core import names
from tideflow.core.clock import format_time
from tideflow.core.kube import PODS, WORKFLOWS

__all__ = ["RuntimeProxy", "runtime_error"]

_WAKEABLE = ("on-demand", "idle-shutdown")
_POLL_SECONDS = 0.2
_REWAKE_SECONDS = 2.0


def _ready_pod_ip(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or not status.get("podIP"):
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
    )
    return str(status["podIP"]) if ready else None


class RuntimeProxy:
    """Forwards requests to a workflow's runtime, starting it first when its policy allows."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.http = context.http

    async def address(self, obj: JSON) -> str | None:
        """The base URL of a ready runtime of the workflow, or ``None``."""
        status = obj.get("status") or {}
        endpoint = status.get("endpoint")
        if not endpoint or not status.get("readyReplicas"):
            return None
        if self.context.settings.runtime_address == "service":
            return str(endpoint)
        meta = obj["metadata"]
        pods = await self.context.kube.list_objects(
            PODS, meta["namespace"], label_selector=f"{names.LABEL_WORKFLOW}={meta['name']}"
        )
        for pod in pods.get("items") or ():
            ip = _ready_pod_ip(pod)
            if ip is not None:
                parts = urlsplit(str(endpoint))
                return urlunsplit((parts.scheme, f"{ip}:{parts.port or 80}", "", "", ""))
        return None

    def _refusal(self, obj: JSON) -> ApiError | None:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        state = str(spec.get("state") or "Draft")
        if state in ("Paused", "Archived"):
            return ApiError(409, f"the workflow is {state.lower()}; set its status to active to trigger it")
        if not spec.get("deployed"):
            return ApiError(409, "the workflow is not deployed; deploy it to trigger it")
        if spec.get("replicas", 1) == 0:
            return ApiError(409, "the workflow was stopped by its user; start it to trigger it")
        policy = str((spec.get("lifecycle") or {}).get("type") or "always-on")
        if status.get("stoppedReason") == "OutsideWindow" or (
            policy == "scheduled-window" and status.get("deploymentStatus") == "Stopped"
        ):
            when = status.get("nextTransitionAt")
            return ApiError(
                409,
                "the workflow is outside its scheduled window" + (f"; it starts at {when}" if when else ""),
            )
        return None

    async def _wake(self, obj: JSON) -> None:
        policy = str(((obj.get("spec") or {}).get("lifecycle") or {}).get("type") or "always-on")
        if policy not in _WAKEABLE:
            return  # always-on or inside its window: the operator is starting it anyway
        meta = obj["metadata"]
        patch = {"status": {"lastActivityAt": format_time(self.context.clock())}}
        await self.context.kube.patch(WORKFLOWS, meta["namespace"], meta["name"], patch, subresource="status")

    async def ready(self, obj: JSON) -> str:
        """The base URL of a ready runtime, starting and waiting for one if needed (409/503 otherwise)."""
        refusal = self._refusal(obj)
        if refusal is not None:
            raise refusal
        base = await self.address(obj)
        if base is not None:
            return base
        held = self.context.held
        if held.locked():
            raise ApiError(
                503, "too many requests are waiting for runtimes to start", headers={"Retry-After": "5"}
            )
        metrics = self.context.metrics
        async with held:
            metrics.held.inc()
            try:
                return await self._hold(obj)
            finally:
                metrics.held.dec()

    async def _hold(self, obj: JSON) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.context.settings.trigger_hold_seconds
        meta = obj["metadata"]
        next_wake = loop.time()
        while True:
            if loop.time() >= next_wake:
                await self._wake(obj)
                next_wake = loop.time() + _REWAKE_SECONDS
            await asyncio.sleep(_POLL_SECONDS)
            obj = await self.context.kube.get(WORKFLOWS, meta["namespace"], meta["name"])
            refusal = self._refusal(obj)
            if refusal is not None:
                raise refusal
            base = await self.address(obj)
            if base is not None:
                return base
            if loop.time() >= deadline:
                self.context.metrics.triggers.labels("start_timeout").inc()
                raise ApiError(
                    503,
                    "the workflow's runtime is starting; retry shortly",
                    headers={"Retry-After": "5"},
                )

    async def post(self, obj: JSON, path: str, body: Mapping[str, Any]) -> httpx.Response:
        """POST to the runtime (started if needed); a runtime that vanished mid-request is a 503."""
        base = await self.ready(obj)
        try:
            response = await self.http.post(
                base + path, json=dict(body), timeout=self.context.settings.sync_timeout_seconds + 10
            )
        except (httpx.HTTPError, OSError) as exc:
            self.context.metrics.triggers.labels("unreachable").inc()
            raise ApiError(
                503, f"the runtime could not be reached: {exc}; retry", headers={"Retry-After": "2"}
            ) from exc
        self.context.metrics.triggers.labels(str(response.status_code)).inc()
        return response


def runtime_error(response: httpx.Response) -> ApiError:
    """A runtime's error answer in the API's error shape."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    message = detail if isinstance(detail, str) else f"the runtime answered {response.status_code}"
    headers = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
    status = response.status_code if 400 <= response.status_code < 600 else 502
    return ApiError(status, message, headers=headers)
