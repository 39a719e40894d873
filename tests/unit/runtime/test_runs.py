"""Durable runs without a cluster: the run manager and status writer against the in-memory run store.

Covers naming, the size budget, the batched status writer (a 1,000-node chain in virtual time), claim
order, 409s between replicas, leases, cancellation, hand-back on drain, approvals and activity reports.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.runtime.helpers import definition, node, run_virtual, services
from tideflow.core import names
from tideflow.core.clock import system_clock
from tideflow.core.kube import KubeError
from tideflow.core.models import (
    MAX_ERROR_LENGTH,
    Connection,
    Node,
    RunPhase,
    WorkflowDefinition,
    WorkflowSettings,
)
from tideflow.runtime.activity import ActivityReporter
from tideflow.runtime.engine import WorkflowEngine
from tideflow.runtime.nodes.base import NodeContext, NodeImplementation, NodeOutcome
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS
from tideflow.runtime.runs import (
    CLAIMED_CONDITION,
    ManagerOptions,
    MemoryRunStore,
    RunManager,
    RunStateError,
    cancel_request,
    fit_status,
    idempotent_run_name,
    merge_patch,
    new_run,
    random_run_name,
    timestamp,
    truncation_marker,
)

WORKFLOW = "wf"


def size_of(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def until(predicate: Callable[[], Any], *, within: float = 5.0, what: str = "") -> Any:
    """Poll ``predicate`` on the running loop until it is truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.005)


class Gate:
    """An executor that records the runs it sees and blocks until opened."""

    def __init__(self, *, open_now: bool = False) -> None:
        self.opened = asyncio.Event()
        if open_now:
            self.opened.set()
        self.calls: list[str] = []

    async def execute(self, ctx: NodeContext) -> NodeOutcome:
        self.calls.append(str(ctx.trigger["runId"]))
        await self.opened.wait()
        return NodeOutcome({"run": ctx.trigger["runId"]})


class MovableClock:
    """A wall clock that tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class TickingClock(MovableClock):
    """A wall clock that moves one second at every reading (distinct creation timestamps)."""

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def gated_workflow() -> WorkflowDefinition:
    return definition(
        [node("start", "manual_trigger"), node("work", "transform", {"set": {"x": 1}})], [("start", "work")]
    )


def make_manager(
    store: MemoryRunStore,
    workflow: WorkflowDefinition,
    *,
    pod: str = "p1",
    executor: Callable[[NodeContext], Awaitable[NodeOutcome]] | None = None,
    clock: Callable[[], datetime] = system_clock,
    **options: Any,
) -> RunManager:
    implementations = dict(IMPLEMENTATIONS)
    if executor is not None:
        implementations["transform"] = NodeImplementation(executor)
    engine = WorkflowEngine(
        workflow, services=services(), implementations=implementations, workflow=WORKFLOW, namespace="default"
    )
    settings: dict[str, Any] = {"tick_seconds": 0.05, **options}
    return RunManager(
        store,
        engine,
        workflow=WORKFLOW,
        pod_name=pod,
        options=ManagerOptions(**settings),
        clock=clock,
    )


async def create(store: MemoryRunStore, name: str, **fields: Any) -> dict[str, Any]:
    return await store.create(new_run(WORKFLOW, name=name, **fields))


def claim_by(pod: str, at: datetime) -> dict[str, Any]:
    """The status a replica's first claim writes."""
    return {
        "phase": "Running",
        "claimedBy": pod,
        "claimedAt": timestamp(at),
        "startedAt": timestamp(at),
        "conditions": [
            {
                "type": CLAIMED_CONDITION,
                "status": "True",
                "reason": "Claimed",
                "message": f"claim 1 by {pod}",
                "lastTransitionTime": timestamp(at),
            }
        ],
    }


def claimed_condition(obj: Mapping[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == CLAIMED_CONDITION)


# --------------------------------------------------------------------------------------------
# Names, objects, merge patches and the size budget
# --------------------------------------------------------------------------------------------


def test_idempotent_names_are_deterministic_valid_and_distinct() -> None:
    first = idempotent_run_name("hello", "order-42")
    assert first == idempotent_run_name("hello", "order-42")
    assert first != idempotent_run_name("hello", "order-43")
    assert first != idempotent_run_name("hello2", "order-42")
    assert first.startswith("hello-")
    random_names = {random_run_name("hello") for _ in range(50)}
    assert len(random_names) == 50
    for name in [first, *random_names]:
        assert len(name) <= 253
        assert all(ch.isdigit() or ch.islower() or ch == "-" for ch in name)


def test_new_run_carries_labels_spec_and_trigger_metadata() -> None:
    run = new_run(
        WORKFLOW,
        name="wf-abc",
        trigger_type="webhook",
        inputs={"a": 1},
        priority=7,
        idempotency_key="k",
        trigger_metadata={"method": "POST", "headers": {"x": "y"}},
        origin_pod="p1",
    )
    meta = run["metadata"]
    assert meta["labels"][names.LABEL_WORKFLOW] == WORKFLOW
    assert meta["labels"][names.LABEL_TRIGGER_TYPE] == "webhook"
    assert json.loads(meta["annotations"]["tideflow.io/trigger-metadata"])["method"] == "POST"
    assert run["spec"] == {
        "workflowRef": {"name": WORKFLOW},
        "triggerType": "webhook",
        "inputs": {"a": 1},
        "priority": 7,
        "idempotencyKey": "k",
    }
    with pytest.raises(ValueError, match="priority"):
        new_run(WORKFLOW, name="wf-x", priority=5000)


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == {
        "a": 1,
        "b": {"d": 3, "e": 4},
        "f": [1],
    }


def test_fit_status_leaves_a_status_that_fits_alone() -> None:
    status = {"phase": "Completed", "output": {"a": 1}, "nodes": [{"nodeId": "a", "output": "x"}]}
    assert fit_status(status, 1024) is status


def test_fit_status_replaces_the_largest_outputs_with_a_marker() -> None:
    big = {"blob": "x" * 300_000}
    medium = "y" * 10_000
    status: dict[str, Any] = {
        "phase": "Completed",
        "output": {"big": big, "small": {"ok": True}},
        "nodes": [
            {"nodeId": "big", "status": "completed", "output": big},
            {"nodeId": "medium", "status": "completed", "output": medium},
            {"nodeId": "small", "status": "completed", "output": {"ok": True}},
        ],
    }
    fitted = fit_status(status, 256 * 1024)
    assert size_of(fitted) <= 256 * 1024
    assert fitted["nodes"][0]["output"] == {"truncated": True, "bytes": size_of(big)}
    assert fitted["output"]["big"] == truncation_marker(size_of(big))
    assert fitted["nodes"][1]["output"] == medium  # only what was needed was truncated
    assert fitted["output"]["small"] == {"ok": True}
    assert status["nodes"][0]["output"] is big  # the input is not modified


def test_fit_status_never_truncates_a_snapshot_and_caps_node_entries() -> None:
    snapshot = {"nodes": {"a": {"output": "s" * 100_000}}}
    entries = [{"nodeId": f"n{i}", "status": "completed", "output": "o" * 500} for i in range(600)]
    status = {
        "phase": "AwaitingInteraction",
        "output": {"snapshot": snapshot, "awaiting": []},
        "nodes": entries,
    }
    fitted = fit_status(status, 256 * 1024)
    assert size_of(fitted) <= 256 * 1024
    assert fitted["output"]["snapshot"] == snapshot
    assert len(fitted["nodes"]) == 500
    assert fitted["nodes"][-1]["nodeId"] == "n599"  # the oldest entries go first


def test_fit_status_drops_oldest_entries_when_markers_are_not_enough() -> None:
    entries = [{"nodeId": f"n{i}", "status": "failed", "error": "e" * 8000} for i in range(100)]
    fitted = fit_status({"phase": "Failed", "nodes": entries}, 64 * 1024)
    assert size_of(fitted) <= 64 * 1024
    assert fitted["nodes"][-1]["nodeId"] == "n99"
    assert all(len(entry["error"]) <= 512 for entry in fitted["nodes"])


# --------------------------------------------------------------------------------------------
# The batched status writer
# --------------------------------------------------------------------------------------------


def long_chain(count: int) -> WorkflowDefinition:
    nodes = [Node(id="start", type="manual_trigger")]
    nodes += [Node(id=f"n{i}", type="transform", config={"set": {}}) for i in range(count)]
    pairs = [("start", "n0")] + [(f"n{i}", f"n{i + 1}") for i in range(count - 1)]
    connections = [Connection(id=f"c{i}", source=s, target=t) for i, (s, t) in enumerate(pairs)]
    # model_construct: a Workflow may have at most 500 nodes; the runtime must cope with more anyway.
    return WorkflowDefinition.model_construct(
        nodes=nodes, connections=connections, settings=WorkflowSettings()
    )


def test_a_1000_node_chain_is_written_in_batches_not_per_node() -> None:
    async def step(ctx: NodeContext) -> NodeOutcome:
        await asyncio.sleep(0.01)  # virtual time: the chain takes 10 s
        return NodeOutcome({"node": ctx.node_id})

    async def scenario() -> tuple[MemoryRunStore, str, float, dict[str, Any]]:
        store = MemoryRunStore(WORKFLOW)
        manager = make_manager(store, long_chain(1000), executor=step, tick_seconds=1.0)
        await manager.start()
        obj, created = await manager.create_run(trigger_type="manual")
        assert created
        name = obj["metadata"]["name"]
        started = asyncio.get_running_loop().time()
        outcome = await manager.wait(name, 600, check_store=False)
        elapsed = asyncio.get_running_loop().time() - started
        assert outcome is not None
        assert outcome.phase is RunPhase.COMPLETED
        await manager.close()
        return store, name, elapsed, store.objects[name]

    (store, name, elapsed, final), _ = run_virtual(scenario())
    writes = store.writes_of(name)
    assert elapsed >= 9.99  # the chain really took its (virtual) time
    # One claim, about one progress write per 0.5 s, one final write: far fewer than 1,000.
    assert len(writes) <= elapsed / 0.5 + 3
    assert len(writes) >= 10
    assert writes[0]["phase"] == "Running"
    assert writes[-1]["phase"] == "Completed"
    progress = [len(w["nodes"]) for w in writes[1:-1]]
    assert progress == sorted(progress)
    assert 0 < progress[0] < progress[-1] < 1001
    times = store.status_write_times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:-1])]
    assert min(gaps) >= 0.5 - 1e-9  # at most one write per 0.5 s (the final one may come sooner)
    assert final["status"]["phase"] == "Completed"
    assert len(final["status"]["nodes"]) == 500  # capped at MAX_NODES, most recent kept
    assert final["status"]["nodes"][-1]["nodeId"] == "n999"
    assert size_of(final["status"]) <= 256 * 1024


async def test_large_outputs_are_truncated_in_the_run_but_returned_whole_to_a_waiter() -> None:
    async def produce(ctx: NodeContext) -> NodeOutcome:
        return NodeOutcome({"blob": "x" * 400_000})

    store = MemoryRunStore(WORKFLOW)
    manager = make_manager(store, gated_workflow(), executor=produce)
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="manual")
    name = obj["metadata"]["name"]
    outcome = await manager.wait(name, 5, check_store=False)
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert len(outcome.output["work"]["blob"]) == 400_000
    status = store.objects[name]["status"]
    marker = {"truncated": True, "bytes": size_of({"blob": "x" * 400_000})}
    assert status["output"] == {"work": marker}
    assert next(n for n in status["nodes"] if n["nodeId"] == "work")["output"] == marker
    assert size_of(status) <= 256 * 1024


# --------------------------------------------------------------------------------------------
# Claiming
# --------------------------------------------------------------------------------------------


async def test_pending_runs_are_claimed_highest_priority_first_then_oldest() -> None:
    store = MemoryRunStore(WORKFLOW, clock=TickingClock())
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", -1), ("f", 5)]:
        await create(store, f"wf-{name}", priority=priority)
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute, max_concurrent_runs=1)
    await manager.start()
    await until(lambda: len(manager.claimed) == 6 and not manager.executing(), what="every run")
    await manager.close()
    assert manager.claimed == ["wf-d", "wf-b", "wf-f", "wf-a", "wf-c", "wf-e"]
    assert all(obj["status"]["phase"] == "Completed" for obj in store.objects.values())


async def test_a_run_of_another_workflow_is_not_claimed_even_with_this_workflows_label() -> None:
    store = MemoryRunStore(WORKFLOW)
    stray = new_run(WORKFLOW, name="wf-stray")
    stray["spec"]["workflowRef"] = {"name": "other"}
    await store.create(stray)
    await create(store, "wf-mine", priority=-5)  # claimed after the stray one would have been
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    outcome = await manager.wait("wf-mine", 5, check_store=False)
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert manager.claimed == ["wf-mine"]
    assert "status" not in store.objects["wf-stray"]


async def test_a_claim_that_loses_the_race_is_left_to_the_winner() -> None:
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-raced", priority=1)  # claimed first ...
    await create(store, "wf-free")  # ... then this one
    other_claims: list[str] = []

    def another_replica_first(name: str) -> None:
        if name == "wf-raced" and not other_claims:  # the other replica's claim lands first
            other_claims.append(name)
            store.merge_status(name, claim_by("p2", datetime.now(UTC)))

    store.before_status_write = another_replica_first
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    outcome = await manager.wait("wf-free", 5, check_store=False)
    await until(lambda: store.conflicts == 1, what="the lost claim")
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert other_claims == ["wf-raced"]
    assert store.conflicts == 1
    assert gate.calls == ["wf-free"]  # the raced run never executed here
    assert manager.claimed == ["wf-free"]
    assert store.objects["wf-raced"]["status"]["claimedBy"] == "p2"
    assert len(store.writes_of("wf-raced")) == 1  # only the winner wrote


async def test_two_replicas_run_each_of_twenty_runs_exactly_once() -> None:
    store = MemoryRunStore(WORKFLOW)
    for index in range(20):
        await create(store, f"wf-r{index:02d}")
    executed: list[str] = []

    async def work(ctx: NodeContext) -> NodeOutcome:
        executed.append(str(ctx.trigger["runId"]))
        await asyncio.sleep(0.01)
        return NodeOutcome({})

    first = make_manager(store, gated_workflow(), pod="p1", executor=work, max_concurrent_runs=3)
    second = make_manager(store, gated_workflow(), pod="p2", executor=work, max_concurrent_runs=3)
    await asyncio.gather(first.start(), second.start())
    await until(
        lambda: all(obj.get("status", {}).get("phase") == "Completed" for obj in store.objects.values()),
        what="every run to complete",
    )
    await asyncio.gather(first.close(), second.close())
    assert sorted(executed) == sorted(store.objects)
    assert len(set(first.claimed) & set(second.claimed)) == 0
    assert first.claimed
    assert second.claimed
    owners = {obj["status"]["claimedBy"] for obj in store.objects.values()}
    assert owners == {"p1", "p2"}
    for obj in store.objects.values():
        assert claimed_condition(obj)["message"].startswith("claim 1 by")


class LaggingStore(MemoryRunStore):
    """A store whose reads and writes take a turn of the loop, like a network round trip."""

    async def get(self, name: str) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return await super().get(name)

    async def replace_status(
        self, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        return await super().replace_status(name, status, resource_version)


async def test_replicas_claiming_in_parallel_still_run_each_run_once() -> None:
    store = LaggingStore(WORKFLOW)
    for index in range(30):
        await create(store, f"wf-p{index:02d}")
    executed: list[str] = []

    async def work(ctx: NodeContext) -> NodeOutcome:
        executed.append(str(ctx.trigger["runId"]))
        await asyncio.sleep(0.005)
        return NodeOutcome({})

    managers = [
        make_manager(
            store, gated_workflow(), pod=pod, executor=work, max_concurrent_runs=8, parallel_claims=4
        )
        for pod in ("p1", "p2", "p3")
    ]
    await asyncio.gather(*(manager.start() for manager in managers))
    await until(
        lambda: all(obj.get("status", {}).get("phase") == "Completed" for obj in store.objects.values()),
        what="every run to complete",
    )
    await asyncio.gather(*(manager.close() for manager in managers))
    assert sorted(executed) == sorted(store.objects)  # each run executed exactly once
    assert store.conflicts > 0  # the replicas did compete for the same runs
    for obj in store.objects.values():
        assert claimed_condition(obj)["message"].startswith("claim 1 by")


async def test_a_run_whose_lease_expired_is_reclaimed_and_counted() -> None:
    clock = MovableClock()
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-orphan")
    store.merge_status(
        "wf-orphan",
        {
            "phase": "Running",
            "claimedBy": "dead-pod",
            "claimedAt": timestamp(clock()),
            "startedAt": timestamp(clock()),
        },
    )
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute, clock=clock, lease_seconds=60)
    await manager.start()
    await manager.wait_watching()
    clock.advance(59)
    manager.poke()
    await until(lambda: manager.watching)
    assert manager.claimed == []  # the lease still holds
    clock.advance(2)
    manager.poke()
    await until(lambda: store.objects["wf-orphan"]["status"].get("phase") == "Completed", what="the reclaim")
    await manager.close()
    status = store.objects["wf-orphan"]["status"]
    assert status["claimedBy"] == "p1"
    condition = claimed_condition(store.objects["wf-orphan"])
    assert condition["reason"] == "Reclaimed"
    assert condition["message"] == "claim 2 by p1; the claim of dead-pod expired"
    assert gate.calls == ["wf-orphan"]


async def test_a_restarted_pod_reclaims_its_own_runs_at_once() -> None:
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-mine")
    store.merge_status("wf-mine", claim_by("p1", datetime.now(UTC)))
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute, lease_seconds=3600)
    await manager.start()
    outcome = await manager.wait("wf-mine", 5, check_store=False)
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert claimed_condition(store.objects["wf-mine"])["message"] == (
        "claim 2 by p1; the previous process of this pod ended"
    )


async def test_a_run_created_by_another_replica_is_left_to_it_for_the_grace_period() -> None:
    store = MemoryRunStore(WORKFLOW)
    await store.create(new_run(WORKFLOW, name="wf-theirs", origin_pod="p2"))
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute, origin_grace=0.3)
    loop = asyncio.get_running_loop()
    await manager.start()
    await manager.wait_watching()
    seen = loop.time()
    outcome = await manager.wait("wf-theirs", 5, check_store=False)
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert loop.time() - seen >= 0.25


# --------------------------------------------------------------------------------------------
# Cancellation, lost claims, hand-back, approvals, idempotency
# --------------------------------------------------------------------------------------------


async def test_a_cancel_written_by_someone_else_stops_the_execution() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="api")
    name = obj["metadata"]["name"]
    await until(lambda: gate.calls, what="the run to start")
    store.merge_status(
        name, {"phase": "Cancelled", "error": "cancelled by the API", "completedAt": "2025-01-01T00:00:00Z"}
    )
    outcome = await manager.wait(name, 5, check_store=False)
    await until(lambda: not manager.executing())
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.CANCELLED
    status = store.objects[name]["status"]
    assert status["phase"] == "Cancelled"
    assert status["error"] == "cancelled by the API"
    assert next(n for n in status["nodes"] if n["nodeId"] == "work")["status"] == "cancelled"


async def test_cancel_through_the_manager_of_a_local_and_of_a_pending_run() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute, max_concurrent_runs=1)
    await manager.start()
    running, _ = await manager.create_run(trigger_type="api", priority=1)  # claimed first
    waiting, _ = await manager.create_run(trigger_type="api")
    await until(lambda: gate.calls)
    cancelled = await manager.cancel(waiting["metadata"]["name"], "not needed")
    assert cancelled["status"]["phase"] == "Cancelled"
    stopped = await manager.cancel(running["metadata"]["name"])
    assert stopped["status"]["phase"] == "Cancelled"
    with pytest.raises(RunStateError) as refused:
        await manager.cancel(running["metadata"]["name"])
    assert refused.value.status == 409
    await manager.close()
    assert gate.calls == [running["metadata"]["name"]]  # the cancelled Pending run never ran


CANCEL = names.ANNOTATION_CANCEL


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("true", "cancelled by request"),
        ("TRUE", "cancelled by request"),
        ("  Replaced by a newer scheduled run. ", "Replaced by a newer scheduled run."),
        ("false", None),
        ("", None),
        (None, None),
    ],
)
def test_the_cancel_annotation_gives_the_reason(value: str | None, reason: str | None) -> None:
    run = new_run(WORKFLOW, name="wf-x")
    if value is not None:
        run["metadata"].setdefault("annotations", {})[CANCEL] = value
    assert cancel_request(run) == reason


def test_a_long_cancel_reason_is_cut_to_the_error_limit() -> None:
    run = new_run(WORKFLOW, name="wf-x")
    run["metadata"]["annotations"] = {CANCEL: "why " * 5000}
    reason = cancel_request(run)
    assert reason is not None
    assert len(reason) <= MAX_ERROR_LENGTH


async def test_the_cancel_annotation_on_a_running_run_cancels_its_execution() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="schedule")
    name = obj["metadata"]["name"]
    await until(lambda: gate.calls, what="the run to start")
    store.annotate(name, CANCEL, "Replaced by a newer scheduled run (concurrencyPolicy Replace).")
    outcome = await manager.wait(name, 5, check_store=False)
    await until(lambda: not manager.executing())
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.CANCELLED
    status = store.objects[name]["status"]
    assert status["phase"] == "Cancelled"
    assert status["error"] == "Replaced by a newer scheduled run (concurrencyPolicy Replace)."
    assert status["claimedBy"] == "p1"
    assert status["completedAt"]
    assert next(n for n in status["nodes"] if n["nodeId"] == "work")["status"] == "cancelled"
    assert gate.calls == [name]


async def test_the_cancel_annotation_without_a_reason_says_cancelled_by_request() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="api")
    name = obj["metadata"]["name"]
    await until(lambda: gate.calls, what="the run to start")
    store.annotate(name, CANCEL, "true")
    await until(lambda: store.objects[name].get("status", {}).get("phase") == "Cancelled")
    await until(lambda: not manager.executing())
    await manager.close()
    assert store.objects[name]["status"]["error"] == "cancelled by request"


async def test_a_pending_run_with_the_cancel_annotation_is_cancelled_not_claimed() -> None:
    clock = MovableClock()
    store = MemoryRunStore(WORKFLOW, clock=clock)
    await create(store, "wf-unwanted", priority=5)
    store.annotate("wf-unwanted", CANCEL, "true")
    await create(store, "wf-wanted")
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute, clock=clock)
    await manager.start()
    done = await manager.wait("wf-wanted", 5, check_store=False)
    await until(lambda: store.objects["wf-unwanted"].get("status", {}).get("phase") == "Cancelled")
    await manager.close()
    assert done is not None
    assert done.phase is RunPhase.COMPLETED
    assert gate.calls == ["wf-wanted"]  # the higher-priority run was never executed ...
    assert manager.claimed == ["wf-wanted"]  # ... nor claimed
    status = store.objects["wf-unwanted"]["status"]
    assert status == {
        "phase": "Cancelled",
        "completedAt": timestamp(clock()),
        "error": "cancelled by request",
    }
    assert len(store.writes_of("wf-unwanted")) == 1


async def test_a_cancel_request_that_arrives_while_a_claim_is_in_flight_wins() -> None:
    """The claim was built from the version before the annotation: it is a 409, then a cancel."""
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-raced")
    annotated: list[str] = []

    def annotate_first(name: str) -> None:
        if not annotated:
            annotated.append(name)
            store.annotate(name, CANCEL, "stop it")

    store.before_status_write = annotate_first
    gate = Gate(open_now=True)
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    await until(lambda: store.objects["wf-raced"].get("status", {}).get("phase") == "Cancelled")
    await manager.close()
    assert annotated == ["wf-raced"]
    assert store.conflicts == 1
    assert gate.calls == []
    assert manager.claimed == []
    assert store.objects["wf-raced"]["status"]["error"] == "stop it"


async def test_a_pending_run_cancelled_while_waiting_resolves_its_waiter() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute, max_concurrent_runs=1)
    await manager.start()
    busy, _ = await manager.create_run(trigger_type="api", priority=1)
    queued, _ = await manager.create_run(trigger_type="api")
    await until(lambda: gate.calls)
    waiter = asyncio.ensure_future(manager.wait(queued["metadata"]["name"], 5, check_store=False))
    store.annotate(queued["metadata"]["name"], CANCEL, "true")
    outcome = await waiter
    gate.opened.set()
    await manager.wait(busy["metadata"]["name"], 5)
    await manager.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.CANCELLED
    assert outcome.error == "cancelled by request"
    assert gate.calls == [busy["metadata"]["name"]]


async def test_a_running_run_of_another_replica_is_left_to_it_until_its_lease_expires() -> None:
    clock = MovableClock()
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-theirs")
    store.merge_status("wf-theirs", claim_by("p2", clock()))
    store.annotate("wf-theirs", CANCEL, "true")
    manager = make_manager(store, gated_workflow(), executor=Gate().execute, clock=clock, lease_seconds=60)
    await manager.start()
    await manager.wait_watching()
    clock.advance(30)
    manager.poke()
    await until(lambda: manager.watching)
    assert store.objects["wf-theirs"]["status"]["phase"] == "Running"  # p2 is alive: p2 cancels it
    clock.advance(31)  # p2 died without cancelling it: this replica does, instead of reclaiming it
    manager.poke()
    await until(lambda: store.objects["wf-theirs"]["status"]["phase"] == "Cancelled", what="the cancel")
    await manager.close()
    assert manager.claimed == []
    assert store.objects["wf-theirs"]["status"]["claimedBy"] == "p2"


async def test_a_paused_run_with_the_cancel_annotation_is_cancelled() -> None:
    store = MemoryRunStore(WORKFLOW)
    manager = make_manager(store, approval_workflow())
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="manual")
    name = obj["metadata"]["name"]
    paused = await manager.wait(name, 5, check_store=False)
    assert paused is not None
    assert paused.phase is RunPhase.AWAITING_INTERACTION
    store.annotate(name, CANCEL, "nobody will approve this")
    await until(lambda: store.objects[name]["status"]["phase"] == "Cancelled")
    await manager.close()
    status = store.objects[name]["status"]
    assert status["error"] == "nobody will approve this"
    assert "snapshot" in status["output"]  # the rest of the status is kept


async def test_a_cancel_write_that_fails_is_retried() -> None:
    store = MemoryRunStore(WORKFLOW)
    await create(store, "wf-flaky")
    store.annotate("wf-flaky", CANCEL, "true")
    failures: list[str] = []

    def fail_twice(name: str) -> None:
        if len(failures) < 2:
            failures.append(name)
            raise KubeError(503, "ServiceUnavailable", "the API server is busy")

    store.before_status_write = fail_twice
    manager = make_manager(store, gated_workflow(), executor=Gate().execute)
    await manager.start()
    await until(lambda: store.objects["wf-flaky"].get("status", {}).get("phase") == "Cancelled")
    await manager.close()
    assert failures == ["wf-flaky", "wf-flaky"]
    assert manager.claimed == []


async def test_a_lost_claim_stops_the_execution_without_another_write() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    manager = make_manager(store, gated_workflow(), executor=gate.execute)
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="api")
    name = obj["metadata"]["name"]
    await until(lambda: gate.calls)
    store.merge_status(name, {"claimedBy": "p9", "claimedAt": timestamp(datetime.now(UTC))})
    writes_before = len(store.writes_of(name))
    await until(lambda: not manager.executing(), what="the execution to stop")
    await manager.close()
    assert len(store.writes_of(name)) == writes_before
    assert store.objects[name]["status"]["claimedBy"] == "p9"
    assert store.objects[name]["status"]["phase"] == "Running"


async def test_drain_hands_in_flight_runs_back_and_another_replica_finishes_them() -> None:
    store = MemoryRunStore(WORKFLOW)
    gate = Gate()
    first = make_manager(store, gated_workflow(), pod="p1", executor=gate.execute)
    await first.start()
    obj, _ = await first.create_run(trigger_type="api")
    name = obj["metadata"]["name"]
    await until(lambda: gate.calls)
    waiter = asyncio.ensure_future(first.wait(name, 30, check_store=False))
    await first.drain(0)
    assert await waiter is None  # a sync caller is answered "accepted" when the runtime drains
    await first.close()
    handed_back = store.objects[name]["status"]
    assert handed_back["phase"] == "Pending"
    assert "claimedBy" not in handed_back
    assert "startedAt" not in handed_back
    assert claimed_condition(store.objects[name])["reason"] == "HandedBack"
    gate.opened.set()
    second = make_manager(store, gated_workflow(), pod="p2", executor=gate.execute)
    await second.start()
    outcome = await second.wait(name, 5)
    await second.close()
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert store.objects[name]["status"]["claimedBy"] == "p2"
    assert claimed_condition(store.objects[name])["message"] == "claim 2 by p2"


def approval_workflow() -> WorkflowDefinition:
    return definition(
        [
            node("start", "manual_trigger"),
            node("check", "approval", {"message": "ship it?"}),
            node("ship", "transform", {"set": {"shipped": True}}),
        ],
        [("start", "check"), ("check", "approved", "ship")],
    )


async def test_an_approval_pauses_and_a_recorded_decision_resumes_the_run() -> None:
    store = MemoryRunStore(WORKFLOW)
    manager = make_manager(store, approval_workflow())
    await manager.start()
    obj, _ = await manager.create_run(trigger_type="manual", inputs={"order": 7})
    name = obj["metadata"]["name"]
    paused = await manager.wait(name, 5, check_store=False)
    assert paused is not None
    assert paused.phase is RunPhase.AWAITING_INTERACTION
    assert paused.awaiting == [
        {"nodeId": "check", "type": "approval", "request": {"message": "ship it?", "approvers": []}}
    ]
    status = store.objects[name]["status"]
    assert status["phase"] == "AwaitingInteraction"
    assert "snapshot" in status["output"]
    with pytest.raises(RunStateError) as malformed:
        await manager.decide(name, {"approved": "yes"})
    assert malformed.value.status == 422
    decided = await manager.decide(name, {"approved": True, "decidedBy": "alice"})
    assert decided["status"]["phase"] == "Pending"
    assert decided["status"]["output"]["decision"]["decidedBy"] == "alice"
    done = await manager.wait(name, 5, check_store=False)
    await manager.close()
    assert done is not None
    assert done.phase is RunPhase.COMPLETED
    final = store.objects[name]["status"]
    assert final["output"] == {"ship": {"shipped": True}}
    assert [(n["nodeId"], n["status"]) for n in final["nodes"]] == [
        ("start", "completed"),
        ("check", "completed"),
        ("ship", "completed"),
    ]
    with pytest.raises(RunStateError) as again:
        await manager.decide(name, {"approved": True})
    assert again.value.status == 409


async def test_a_repeated_idempotency_key_returns_the_existing_run() -> None:
    store = MemoryRunStore(WORKFLOW)
    manager = make_manager(store, gated_workflow(), executor=Gate(open_now=True).execute)
    await manager.start()
    first, created = await manager.create_run(trigger_type="api", idempotency_key="order-1")
    again, created_again = await manager.create_run(trigger_type="api", idempotency_key="order-1")
    outcome = await manager.wait(first["metadata"]["name"], 5)
    await manager.close()
    assert created
    assert not created_again
    assert first["metadata"]["name"] == again["metadata"]["name"] == idempotent_run_name(WORKFLOW, "order-1")
    assert outcome is not None
    assert outcome.phase is RunPhase.COMPLETED
    assert len(store.objects) == 1


# --------------------------------------------------------------------------------------------
# Activity
# --------------------------------------------------------------------------------------------


def test_activity_is_written_at_most_once_per_interval_with_the_latest_time() -> None:
    written: list[tuple[float, datetime]] = []
    clock = MovableClock()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def write(moment: datetime) -> None:
            written.append((loop.time(), moment))

        reporter = ActivityReporter(write, interval=30, clock=clock)
        reporter.note()  # the first activity is written at once
        await asyncio.sleep(1)
        for _ in range(10):  # then folded into one write at the end of the interval
            clock.advance(2)
            reporter.note()
            await asyncio.sleep(2)
        await asyncio.sleep(60)
        await reporter.close()

    run_virtual(scenario())
    assert [round(at) for at, _ in written] == [0, 30]
    assert written[0][1] == datetime(2025, 1, 1, tzinfo=UTC)
    assert written[1][1] == datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=20)
