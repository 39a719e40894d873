"""The trigger server over httpx's ASGI transport, with the in-memory run store (no cluster, no sockets).

Triggers (async, sync, time-outs, idempotency), body limits, readiness and draining, metrics, approvals
and cancellation through the endpoints, webhooks with their authentication and replies, and activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tests.unit.runtime.helpers import definition, node, services
from tideflow.core import names
from tideflow.core.kube import KubeError
from tideflow.core.models import RunPhase, WorkflowDefinition
from tideflow.runtime.nodes.base import NodeContext, NodeImplementation, NodeOutcome
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS
from tideflow.runtime.runs import JSON, MemoryRunStore, new_run
from tideflow.runtime.server import Runtime, create_app
from tideflow.runtime.settings import RuntimeSettings
from tideflow.runtime.webhooks import sign

WORKFLOW = "wf"
TOKEN = "hook-token"
SIGNING_KEY = "hook-signing-key"
NOW = 1_700_000_000.0


class Gate:
    """A ``transform`` executor that blocks until opened and records the runs it saw."""

    def __init__(self, *, open_now: bool = False) -> None:
        self.opened = asyncio.Event()
        if open_now:
            self.opened.set()
        self.calls: list[str] = []

    async def execute(self, ctx: NodeContext) -> NodeOutcome:
        self.calls.append(str(ctx.trigger["runId"]))
        await self.opened.wait()
        return NodeOutcome({"seen": ctx.input.get("inputs", {})})


async def until(predicate: Callable[[], Any], *, within: float = 5.0) -> Any:
    """Poll ``predicate`` on the running loop until it is truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (value := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await asyncio.sleep(0.005)
    return value


@dataclass
class Served:
    runtime: Runtime
    client: httpx.AsyncClient
    store: MemoryRunStore

    async def outcome_of(self, name: str) -> Any:
        assert self.runtime.manager is not None
        return await self.runtime.manager.wait(name, 5)


def echo_workflow() -> WorkflowDefinition:
    return definition(
        [
            node("start", "manual_trigger"),
            node("work", "transform", {"set": {"doubled": "{{ trigger.inputs.n | default(0) }}"}}),
        ],
        [("start", "work")],
    )


@asynccontextmanager
async def served(
    workflow: WorkflowDefinition | None = None,
    *,
    store: Any = None,
    executor: Callable[[NodeContext], Awaitable[NodeOutcome]] | None = None,
    start: bool = True,
    wall_time: Callable[[], float] = lambda: NOW,
    **settings: Any,
) -> AsyncIterator[Served]:
    implementations = dict(IMPLEMENTATIONS)
    if executor is not None:
        implementations["transform"] = NodeImplementation(executor)
    store = store if store is not None else MemoryRunStore(WORKFLOW)
    runtime = Runtime(
        RuntimeSettings(workflow=WORKFLOW, pod_name="p1", **settings),
        store,
        definition=workflow or echo_workflow(),
        services=services(secrets={("hooks", "token"): TOKEN, ("hooks", "signing"): SIGNING_KEY}),
        implementations=implementations,
        wall_time=wall_time,
        tick_seconds=0.05,
    )
    app = create_app(runtime, manage_lifecycle=False)
    if start:
        await runtime.start()
        if runtime.manager is not None:
            await runtime.manager.wait_watching()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime", timeout=30) as client:
        try:
            yield Served(runtime, client, store)
        finally:
            await runtime.close()


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------


async def test_an_async_trigger_stores_the_run_and_answers_202_at_once() -> None:
    gate = Gate()
    async with served(executor=gate.execute) as s:
        response = await s.client.post(
            "/trigger", json={"inputs": {"n": 2}, "trigger_type": "api", "priority": 5}
        )
        assert response.status_code == 202
        body = response.json()
        name = body["runId"]
        assert body["created"] is True
        assert body["phase"] in ("Pending", "Running")
        stored = s.store.objects[name]  # the run exists before it ran to its end
        assert stored["metadata"]["labels"][names.LABEL_WORKFLOW] == WORKFLOW
        assert stored["metadata"]["labels"][names.LABEL_TRIGGER_TYPE] == "api"
        assert stored["spec"]["priority"] == 5
        assert stored["spec"]["inputs"] == {"n": 2}
        assert stored.get("status", {}).get("phase") != "Completed"
        gate.opened.set()
        outcome = await s.outcome_of(name)
        assert outcome.phase is RunPhase.COMPLETED
        assert s.store.objects[name]["status"]["output"] == {"work": {"seen": {"n": 2}}}


async def test_a_sync_trigger_answers_with_the_output() -> None:
    async with served() as s:
        response = await s.client.post("/trigger", json={"inputs": {"n": 21}, "sync": True})
        assert response.status_code == 200
        body = response.json()
        assert body["phase"] == "Completed"
        assert body["output"] == {"work": {"doubled": 21}}
        assert s.store.objects[body["runId"]]["status"]["phase"] == "Completed"


async def test_a_sync_trigger_answers_202_with_the_run_id_when_the_limit_passes() -> None:
    gate = Gate()
    async with served(executor=gate.execute, sync_timeout_seconds=0.2) as s:
        response = await s.client.post("/trigger", json={"sync": True})
        assert response.status_code == 202
        assert response.json()["phase"] == "Running"
        gate.opened.set()
        assert (await s.outcome_of(response.json()["runId"])).phase is RunPhase.COMPLETED


async def test_a_repeated_idempotency_key_returns_the_same_run() -> None:
    async with served() as s:
        first = await s.client.post(
            "/trigger", json={"inputs": {"n": 1}, "idempotency_key": "k1", "sync": True}
        )
        again = await s.client.post(
            "/trigger", json={"inputs": {"n": 1}, "idempotencyKey": "k1", "sync": True}
        )
        by_header = await s.client.post(
            "/trigger", json={"inputs": {"n": 1}}, headers={"Idempotency-Key": "k1"}
        )
        assert first.json()["created"] is True
        assert again.status_code == 200
        assert again.json()["created"] is False
        assert again.json()["output"] == first.json()["output"]
        assert by_header.status_code == 200  # finished already
        assert first.json()["runId"] == again.json()["runId"] == by_header.json()["runId"]
        assert len(s.store.objects) == 1


async def test_a_malformed_trigger_is_refused_and_stores_nothing() -> None:
    async with served() as s:
        unknown = await s.client.post("/trigger", json={"input": {}})
        priority = await s.client.post("/trigger", json={"priority": 5000})
        not_json = await s.client.post("/trigger", content=b"{", headers={"Content-Type": "application/json"})
        assert [unknown.status_code, priority.status_code, not_json.status_code] == [422, 422, 422]
        assert priority.json()["detail"][0]["loc"][-1] == "priority"
        assert s.store.objects == {}


async def test_a_store_that_cannot_be_reached_refuses_the_trigger() -> None:
    class Down(MemoryRunStore):
        async def create(self, body: JSON) -> JSON:
            raise KubeError(500, "InternalError", "etcd is down")

    async with served(store=Down(WORKFLOW)) as s:
        response = await s.client.post("/trigger", json={"sync": True})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert s.store.objects == {}


# --------------------------------------------------------------------------------------------
# Body limits
# --------------------------------------------------------------------------------------------


async def test_bodies_over_the_limit_are_refused_before_anything_else() -> None:
    workflow = definition(
        [
            node(
                "hook",
                "webhook_trigger",
                {"auth": {"type": "bearer", "secretRef": {"name": "hooks", "key": "token"}}},
            )
        ]
    )
    async with served(workflow, max_body_bytes=4096) as s:
        big = b"x" * 5000
        declared = await s.client.post("/trigger", content=big, headers={"Content-Type": "application/json"})
        to_webhook = await s.client.post("/webhooks/hook", content=big)  # 413, not 401: auth comes later
        nowhere = await s.client.post("/no/such/path", content=big)  # 413, not 404: routing comes later

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"y" * 1000

        streamed = await s.client.post("/trigger", content=chunks())  # no Content-Length: counted as read
        assert [declared.status_code, to_webhook.status_code, nowhere.status_code, streamed.status_code] == [
            413,
            413,
            413,
            413,
        ]
        assert "larger than 4096 bytes" in declared.json()["detail"]
        at_limit = await s.client.post("/trigger", json={"inputs": {"pad": "z" * 4000}})
        assert at_limit.status_code == 202
        assert (
            'tideflow_runtime_rejected_requests_total{reason="body_too_large",workflow="wf"} 4.0'
            in (await s.client.get("/metrics")).text
        )
        assert len(s.store.objects) == 1


# --------------------------------------------------------------------------------------------
# Readiness, draining, metrics, activity
# --------------------------------------------------------------------------------------------


async def test_readiness_follows_start_watch_and_drain() -> None:
    async with served(start=False) as s:
        starting = await s.client.get("/readyz")
        assert starting.status_code == 503
        assert starting.json()["reasons"] == ["starting"]
        assert (await s.client.get("/healthz")).status_code == 200
        await s.runtime.start()
        assert s.runtime.manager is not None
        await s.runtime.manager.wait_watching()
        assert (await s.client.get("/readyz")).status_code == 200
        await s.runtime.drain(0)
        draining = await s.client.get("/readyz")
        assert draining.status_code == 503
        assert "draining" in draining.json()["reasons"]
        refused = await s.client.post("/trigger", json={})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert s.store.objects == {}  # nothing stored while draining


async def test_an_invalid_definition_is_not_ready_and_takes_no_triggers(tmp_path: Any) -> None:
    broken = tmp_path / "definition.json"
    broken.write_text('{"nodes": [{"id": "a", "type": "log", "config": {"message": "no trigger"}}]}')
    store = MemoryRunStore(WORKFLOW)
    runtime = Runtime(RuntimeSettings(workflow=WORKFLOW, definition_path=broken), store)
    app = create_app(runtime, manage_lifecycle=False)
    await runtime.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runtime") as client:
        ready = await client.get("/readyz")
        trigger = await client.post("/trigger", json={})
    await runtime.close()
    assert ready.status_code == 503
    assert "the definition cannot be loaded" in ready.json()["reasons"][0]
    assert trigger.status_code == 503
    assert store.objects == {}


async def test_an_invalid_definition_still_executes_runs_that_carry_their_own(tmp_path: Any) -> None:
    """The operator's draft runtime of an invalid Workflow: draft runs execute, the others wait."""
    broken = tmp_path / "definition.json"
    broken.write_text('{"nodes": [{"id": "a", "type": "log", "config": {"message": "no trigger"}}]}')
    store = MemoryRunStore(WORKFLOW)
    draft = new_run(WORKFLOW, name="wf-draft", trigger_type="manual", inputs={"n": 4})
    draft["spec"]["definition"] = echo_workflow().model_dump(mode="json", by_alias=True, exclude_none=True)
    await store.create(draft)
    await store.create(new_run(WORKFLOW, name="wf-plain", trigger_type="manual"))
    runtime = Runtime(
        RuntimeSettings(workflow=WORKFLOW, pod_name="p1", definition_path=broken),
        store,
        services=services(),
        tick_seconds=0.05,
    )
    app = create_app(runtime, manage_lifecycle=False)
    await runtime.start()
    assert runtime.manager is not None
    outcome = await runtime.manager.wait("wf-draft", 5, check_store=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://runtime") as client:
        ready = await client.get("/readyz")
        trigger = await client.post("/trigger", json={})
        cancel = await client.post("/runs/wf-plain/cancel", json={"reason": "no runtime for it"})
    await runtime.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED, outcome
    assert outcome.output == {"work": {"doubled": 4}}
    assert runtime.manager.claimed == ["wf-draft"]  # the run without a definition was left alone
    assert ready.status_code == 503
    assert trigger.status_code == 503  # triggers run the workflow's own definition: none here
    assert cancel.status_code == 200
    assert store.objects["wf-plain"]["status"]["phase"] == "Cancelled"


async def test_draining_hands_back_the_run_in_flight_and_answers_its_sync_caller() -> None:
    gate = Gate()
    async with served(executor=gate.execute) as s:
        pending = asyncio.ensure_future(s.client.post("/trigger", json={"sync": True}))
        await until(lambda: gate.calls)
        await s.runtime.drain(0)
        response = await pending
        assert response.status_code == 202
        name = response.json()["runId"]
        status = s.store.objects[name]["status"]
        assert status["phase"] == "Pending"
        assert "claimedBy" not in status


async def test_metrics_count_runs_nodes_triggers_and_queue_depth() -> None:
    async with served() as s:
        for n in range(3):
            assert (
                await s.client.post("/trigger", json={"inputs": {"n": n}, "sync": True})
            ).status_code == 200
        text = (await s.client.get("/metrics")).text
        assert 'tideflow_runtime_runs_total{phase="Completed",workflow="wf"} 3.0' in text
        assert (
            'tideflow_runtime_trigger_latency_seconds_count{endpoint="trigger",mode="sync",workflow="wf"} 3.0'
            in text
        )
        node_labels = 'status="completed",type="transform",workflow="wf"'
        assert f"tideflow_runtime_node_duration_seconds_count{{{node_labels}}} 3.0" in text
        assert 'tideflow_runtime_queue_depth{workflow="wf"} 0.0' in text
        assert 'tideflow_runtime_runs_in_flight{workflow="wf"} 0.0' in text
        assert 'tideflow_runtime_claims_total{result="won",workflow="wf"} 3.0' in text


async def test_activity_is_reported_on_the_workflow_and_rate_limited() -> None:
    async with served(activity_interval_seconds=30) as s:
        for n in range(5):
            await s.client.post("/trigger", json={"inputs": {"n": n}, "sync": True})
        assert "lastActivityAt" in s.store.workflow_status
        assert s.store.workflow_writes == 1  # the first activity at once; the rest waits for the interval
    assert s.store.workflow_writes == 2  # closing writes the latest activity


# --------------------------------------------------------------------------------------------
# Approvals and cancellation
# --------------------------------------------------------------------------------------------


def approval_workflow() -> WorkflowDefinition:
    return definition(
        [
            node("start", "manual_trigger"),
            node("check", "approval", {"message": "refund {{ trigger.inputs.amount }}?"}),
            node("refund", "transform", {"set": {"refunded": "{{ trigger.inputs.amount }}"}}),
        ],
        [("start", "check"), ("check", "approved", "refund")],
    )


async def test_an_approval_pauses_and_resume_continues_the_run() -> None:
    async with served(approval_workflow()) as s:
        paused = await s.client.post("/trigger", json={"inputs": {"amount": 30}, "sync": True})
        assert paused.status_code == 202
        assert paused.json()["phase"] == "AwaitingInteraction"
        assert paused.json()["awaiting"][0]["request"]["message"] == "refund 30?"
        name = paused.json()["runId"]
        wrong_node = await s.client.post(f"/runs/{name}/resume", json={"nodeId": "refund"})
        assert wrong_node.status_code == 422
        resumed = await s.client.post(f"/runs/{name}/resume", json={"decidedBy": "bob", "comment": "ok"})
        assert resumed.status_code == 202
        assert resumed.json()["phase"] == "Pending"
        outcome = await s.outcome_of(name)
        assert outcome.phase is RunPhase.COMPLETED
        assert outcome.output == {"refund": {"refunded": 30}}
        run = (await s.client.get(f"/runs/{name}")).json()
        assert run["phase"] == "Completed"
        check = next(n for n in run["status"]["nodes"] if n["nodeId"] == "check")
        assert check["output"]["decidedBy"] == "bob"
        assert (await s.client.post(f"/runs/{name}/reject")).status_code == 409


async def test_a_rejection_without_a_rejected_branch_fails_the_run() -> None:
    async with served(approval_workflow()) as s:
        name = (await s.client.post("/trigger", json={"inputs": {"amount": 1}, "sync": True})).json()["runId"]
        rejected = await s.client.post(f"/runs/{name}/reject", json={"decidedBy": "eve", "comment": "no"})
        assert rejected.status_code == 202
        outcome = await s.outcome_of(name)
        assert outcome.phase is RunPhase.FAILED
        assert "rejected by eve: no" in outcome.error


async def test_cancel_stops_a_run_and_unknown_runs_are_404() -> None:
    gate = Gate()
    async with served(executor=gate.execute) as s:
        name = (await s.client.post("/trigger", json={})).json()["runId"]
        await until(lambda: gate.calls)
        cancelled = await s.client.post(f"/runs/{name}/cancel", json={"reason": "changed my mind"})
        assert cancelled.status_code == 200
        assert cancelled.json()["phase"] == "Cancelled"
        assert cancelled.json()["status"]["error"] == "changed my mind"
        assert (await s.client.post(f"/runs/{name}/cancel")).status_code == 409
        assert (await s.client.get("/runs/wf-nothere")).status_code == 404
        assert (await s.client.post("/runs/wf-nothere/resume")).status_code == 404


# --------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------


def webhook_workflow(auth: dict[str, Any] | None = None, *, respond: bool = True) -> WorkflowDefinition:
    config: dict[str, Any] = {"path": "orders/new", "method": "POST"}
    if auth is not None:
        config["auth"] = auth
    nodes = [node("hook", "webhook_trigger", config)]
    connections: list[tuple[str, str]] = []
    if respond:
        nodes.append(
            node(
                "reply",
                "respond",
                {
                    "status": 201,
                    "headers": {"X-Order": "{{ trigger.inputs.order }}"},
                    "body": {
                        "order": "{{ trigger.inputs.order }}",
                        "via": "{{ trigger.method }} {{ trigger.path }}",
                    },
                },
            )
        )
        connections.append(("hook", "reply"))
    return definition(nodes, connections)


async def test_a_webhook_answers_with_the_respond_node() -> None:
    async with served(webhook_workflow()) as s:
        response = await s.client.post("/webhooks/orders/new/?x=1", json={"order": 7})
        assert response.status_code == 201
        assert response.json() == {"order": 7, "via": "POST orders/new"}
        assert response.headers["X-Order"] == "7"
        name = response.headers["X-Tideflow-Run"]
        run = s.store.objects[name]
        assert run["spec"]["triggerType"] == "webhook"
        assert run["spec"]["inputs"] == {"order": 7}
        assert (await s.client.get("/webhooks/orders/new")).status_code == 405
        assert (await s.client.post("/webhooks/elsewhere", json={})).status_code == 404


async def test_a_webhook_without_a_respond_node_answers_202() -> None:
    async with served(webhook_workflow(respond=False)) as s:
        response = await s.client.post(
            "/webhooks/orders/new", content=b"plain text", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 202
        name = response.json()["runId"]
        assert s.store.objects[name]["spec"]["inputs"] == {"body": "plain text"}


async def test_a_bearer_webhook_needs_the_token() -> None:
    auth = {"type": "bearer", "secretRef": {"name": "hooks", "key": "token"}}
    async with served(webhook_workflow(auth)) as s:
        missing = await s.client.post("/webhooks/orders/new", json={"order": 1})
        wrong = await s.client.post(
            "/webhooks/orders/new", json={"order": 1}, headers={"Authorization": "Bearer nope"}
        )
        right = await s.client.post(
            "/webhooks/orders/new", json={"order": 1}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert wrong.status_code == 401
        assert right.status_code == 201
        assert len(s.store.objects) == 1  # refused requests store nothing
        stored_headers = json_annotation(s.store.objects[right.headers["X-Tideflow-Run"]])["headers"]
        assert "authorization" not in stored_headers  # credentials are not kept with the run


def json_annotation(run: JSON) -> Any:
    import json

    return json.loads(run["metadata"]["annotations"]["tideflow.io/trigger-metadata"])


async def test_a_signed_webhook_checks_signature_window_and_replays() -> None:
    auth = {"type": "hmac", "secretRef": {"name": "hooks", "key": "signing"}, "toleranceSeconds": 60}
    clock = {"now": NOW}
    async with served(webhook_workflow(auth), wall_time=lambda: clock["now"]) as s:
        body = b'{"order": 9}'

        def headers(stamp: float, key: str = SIGNING_KEY) -> dict[str, str]:
            return {
                "Content-Type": "application/json",
                "X-Tideflow-Timestamp": str(int(stamp)),
                "X-Tideflow-Signature": sign(key, int(stamp), body),
            }

        good = await s.client.post("/webhooks/orders/new", content=body, headers=headers(NOW))
        replay = await s.client.post("/webhooks/orders/new", content=body, headers=headers(NOW))
        forged = await s.client.post("/webhooks/orders/new", content=body, headers=headers(NOW, "guess"))
        clock["now"] = NOW + 120
        late = await s.client.post("/webhooks/orders/new", content=body, headers=headers(NOW - 1))
        assert good.status_code == 201
        assert [replay.status_code, forged.status_code, late.status_code] == [401, 401, 401]
        assert "replayed" in replay.json()["detail"]
        assert forged.json()["detail"] == "invalid signature"
        assert "replay window" in late.json()["detail"]
        assert len(s.store.objects) == 1
        assert (
            "x-tideflow-signature"
            not in json_annotation(s.store.objects[good.headers["X-Tideflow-Run"]])["headers"]
        )
