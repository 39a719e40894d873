"""The runtime proxy's decisions, with a fake cluster: forward, wake and hold, refuse, or answer 503."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from tideflow.api.cache import WorkflowCache
from tideflow.api.context import Context
from tideflow.api.errors import ApiError
from tideflow.api.keys import KeyRing
from tideflow.api.metrics import ApiMetrics
from tideflow.api.proxy import RuntimeProxy
from tideflow.api.settings import ApiSettings

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


class FakeKube:
    """A Workflow that becomes ready after ``ready_after`` reads, and pods for pod addressing."""

    def __init__(self, workflow: dict[str, Any], ready_after: int | None) -> None:
        self.workflow = workflow
        self.ready_after = ready_after
        self.reads = 0
        self.patches: list[dict[str, Any]] = []

    async def get(self, resource: object, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        if self.ready_after is not None and self.reads >= self.ready_after:
            self.workflow["status"].update(readyReplicas=1, deploymentStatus="Running", stoppedReason=None)
        return self.workflow

    async def patch(
        self, resource: object, namespace: str, name: str, patch: Any, **_: Any
    ) -> dict[str, Any]:
        self.patches.append(patch)
        return self.workflow

    async def list_objects(self, resource: object, namespace: str, **_: Any) -> dict[str, Any]:
        pod = {
            "metadata": {"name": "p"},
            "status": {"podIP": "127.9.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
        }
        return {"items": [pod]}


def _workflow(policy: str = "on-demand", *, ready: bool = False, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "w", "namespace": "org"},
        "spec": {"state": "Active", "deployed": True, "lifecycle": {"type": policy}, **spec},
        "status": {
            "endpoint": "http://w.org.svc.cluster.local:8080",
            "readyReplicas": 1 if ready else 0,
            "deploymentStatus": "Running" if ready else "Stopped",
        },
    }


def _proxy(kube: FakeKube, hold: float = 5.0, held: int = 4, address: str = "service") -> RuntimeProxy:
    settings = ApiSettings(trigger_hold_seconds=hold, max_held_triggers=held, runtime_address=address)  # type: ignore[arg-type]
    context = Context(
        settings=settings,
        kube=kube,  # type: ignore[arg-type]
        keys=KeyRing(kube),  # type: ignore[arg-type]
        metrics=ApiMetrics(),
        http=httpx.AsyncClient(),
        workflows=WorkflowCache(kube),  # type: ignore[arg-type]
        clock=lambda: NOW,
        held=asyncio.Semaphore(held),
    )
    return RuntimeProxy(context)


async def test_a_ready_runtime_is_used_at_once_by_service_or_pod_address() -> None:
    kube = FakeKube(_workflow(ready=True), ready_after=None)
    assert await _proxy(kube).ready(kube.workflow) == "http://w.org.svc.cluster.local:8080"
    assert await _proxy(kube, address="pod").ready(kube.workflow) == "http://127.9.0.7:8080"
    assert kube.patches == []


async def test_a_stopped_on_demand_runtime_is_woken_and_the_request_held_until_ready() -> None:
    kube = FakeKube(_workflow("on-demand"), ready_after=3)
    proxy = _proxy(kube)
    assert await proxy.ready(kube.workflow) == "http://w.org.svc.cluster.local:8080"
    assert kube.patches == [{"status": {"lastActivityAt": "2026-11-22T12:00:00Z"}}]
    assert proxy.context.metrics.held._value.get() == 0


async def test_an_always_on_runtime_that_is_starting_is_waited_for_without_a_wake() -> None:
    kube = FakeKube(_workflow("always-on"), ready_after=2)
    await _proxy(kube).ready(kube.workflow)
    assert kube.patches == []


async def test_past_the_hold_limit_the_answer_is_503_with_retry_after() -> None:
    kube = FakeKube(_workflow("idle-shutdown"), ready_after=None)
    with pytest.raises(ApiError) as refused:
        await _proxy(kube, hold=0.5).ready(kube.workflow)
    assert (refused.value.status, refused.value.headers) == (503, {"Retry-After": "5"})


async def test_when_the_held_queue_is_full_the_answer_is_an_immediate_503() -> None:
    kube = FakeKube(_workflow("on-demand"), ready_after=None)
    proxy = _proxy(kube, held=1)
    await proxy.context.held.acquire()
    with pytest.raises(ApiError) as refused:
        await proxy.ready(kube.workflow)
    assert refused.value.status == 503
    assert kube.reads == 0


@pytest.mark.parametrize(
    ("workflow", "words"),
    [
        (_workflow(state="Paused"), "paused"),
        (_workflow(state="Archived"), "archived"),
        (_workflow(deployed=False), "not deployed"),
        (_workflow(replicas=0), "stopped by its user"),
        (_workflow("scheduled-window"), "outside its scheduled window"),
    ],
)
async def test_waiting_would_not_help_so_the_answer_is_409(workflow: dict[str, Any], words: str) -> None:
    kube = FakeKube(workflow, ready_after=None)
    with pytest.raises(ApiError) as refused:
        await _proxy(kube).ready(kube.workflow)
    assert refused.value.status == 409
    assert words in refused.value.message
