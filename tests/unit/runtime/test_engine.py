"""The engine: branching, joins, skips, retries, timeouts, cancellation, mappings, progress, approvals."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest

from tests.unit.runtime.helpers import RecordingSleep, definition, node, run_virtual, services
from tideflow.core.models import NodeRunStatus, RunPhase
from tideflow.runtime.engine import (
    MAX_BACKOFF_SECONDS,
    ProgressEvent,
    ProgressKind,
    ResumeError,
    RunResult,
    TriggerEvent,
    WorkflowDefinitionError,
    WorkflowEngine,
    backoff_delay,
)
from tideflow.runtime.nodes.base import NodeContext, NodeImplementation, NodeOutcome
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS

TRIGGER = node("t", "manual_trigger")


def statuses(result: RunResult) -> dict[str, str]:
    return {log.node_id: log.status.value for log in result.nodes}


def log_of(result: RunResult, node_id: str) -> Any:
    return next(log for log in result.nodes if log.node_id == node_id)


def run(
    engine: WorkflowEngine, inputs: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[RunResult, float]:
    return run_virtual(engine.run(TriggerEvent(inputs=inputs or {}, run_id="run-1"), **kwargs))


def test_linear_chain_passes_outputs_through_templates() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node(
                    "a",
                    "transform",
                    {"set": {"user": "{{ trigger.inputs.user_id }}", "tag": "u-{{ t.run_id }}"}},
                ),
                node("b", "transform", {"set": {"again": "{{ a.user }}", "whole": "{{ a.output }}"}}),
            ],
            [("t", "a"), ("a", "b")],
        ),
        services=services(),
    )
    result, _ = run(engine, {"user_id": 42})
    assert result.phase is RunPhase.COMPLETED
    assert result.error is None
    assert statuses(result) == {"t": "completed", "a": "completed", "b": "completed"}
    assert log_of(result, "a").output == {"user": 42, "tag": "u-run-1"}
    assert result.output == {"b": {"again": 42, "whole": {"user": 42, "tag": "u-run-1"}}}
    assert log_of(result, "t").output == {
        "inputs": {"user_id": 42},
        "triggerType": "manual",
        "runId": "run-1",
        "run_id": "run-1",
    }


def branching_workflow() -> WorkflowEngine:
    return WorkflowEngine(
        definition(
            [
                TRIGGER,
                node(
                    "check",
                    "condition",
                    {"field": "trigger.inputs.amount", "operator": "greater_than", "value": 100},
                ),
                node("big", "transform", {"set": {"size": "big"}}),
                node("small", "transform", {"set": {"size": "small"}}),
                node("after_small", "transform", {"includeInput": True, "set": {"seen": True}}),
                node("join", "transform", {"set": {"size": "{{ input.size }}"}}),
            ],
            [
                ("t", "check"),
                ("check", "true", "big"),
                ("check", "false", "small"),
                ("small", "after_small"),
                ("big", "join"),
                ("after_small", "join"),
            ],
        ),
        services=services(),
    )


def test_condition_true_branch_runs_and_false_branch_is_skipped_transitively() -> None:
    result, _ = run(branching_workflow(), {"amount": 500})
    assert result.phase is RunPhase.COMPLETED
    assert statuses(result) == {
        "t": "completed",
        "check": "completed",
        "big": "completed",
        "small": "skipped",
        "after_small": "skipped",
        "join": "completed",
    }
    assert log_of(result, "check").output["result"] is True
    assert log_of(result, "join").output == {"size": "big"}


def test_condition_false_branch() -> None:
    result, _ = run(branching_workflow(), {"amount": 5})
    assert statuses(result)["big"] == "skipped"
    assert statuses(result)["after_small"] == "completed"
    assert log_of(result, "join").output == {"size": "small"}


def test_join_waits_for_every_live_branch_and_merges_their_outputs() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("slow", "delay", {"seconds": 30}, passThroughValues={"left": 1}),
                node("fast", "delay", {"seconds": 10}, passThroughValues={"right": 2}),
                node("join", "transform", {"includeInput": True, "set": {}}),
            ],
            [("t", "slow"), ("t", "fast"), ("slow", "join"), ("fast", "join")],
        ),
        services=services(),
    )
    result, elapsed = run(engine)
    assert result.phase is RunPhase.COMPLETED
    join = log_of(result, "join")
    assert join.output["left"] == 1
    assert join.output["right"] == 2
    # Both delays ran concurrently: the run took as long as the slower one, not their sum.
    assert elapsed == pytest.approx(30)
    assert join.started_at is not None
    assert join.started_at > log_of(result, "slow").finished_at > log_of(result, "fast").finished_at


def test_nodes_run_in_execution_order_in_the_log() -> None:
    result, _ = run(branching_workflow(), {"amount": 500})
    assert [log.node_id for log in result.nodes][:3] == ["t", "check", "small"]


def test_triggers_not_matching_the_trigger_type_are_skipped() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("hook", "webhook_trigger"),
                node("from_manual", "log", {"message": "manual"}),
                node("from_hook", "log", {"message": 'hook {{ trigger.method | default("-") }}'}),
            ],
            [("t", "from_manual"), ("hook", "from_hook")],
        ),
        services=services(),
    )
    event = TriggerEvent(type="webhook", inputs={"a": 1}, run_id="r", metadata={"method": "POST"})
    result, _ = run_virtual(engine.run(event))
    assert statuses(result) == {
        "t": "skipped",
        "from_manual": "skipped",
        "hook": "completed",
        "from_hook": "completed",
    }
    assert [entry.message for entry in result.logs] == ["hook POST"]
    assert log_of(result, "hook").output["method"] == "POST"
    # A trigger type no trigger node listens to (a manual "run now" of a webhook workflow) fires them all.
    result, _ = run_virtual(engine.run(TriggerEvent(type="schedule", run_id="r2")))
    assert statuses(result)["from_manual"] == statuses(result)["from_hook"] == "completed"


def test_input_mappings_and_pass_through_values() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node(
                    "a",
                    "transform",
                    {"includeInput": True, "set": {"greeting": "hi {{ input.name }}"}},
                    inputMappings={"name": "{{ trigger.inputs.user.name | upper }}", "fixed": "{{ run.id }}"},
                    passThroughValues={"fixed": "overridden by the mapping", "constant": {"a": [1, 2]}},
                ),
            ],
            [("t", "a")],
        ),
        services=services(),
    )
    result, _ = run(engine, {"user": {"name": "ada"}})
    output = log_of(result, "a").output
    assert output["name"] == "ADA"
    assert output["greeting"] == "hi ADA"
    assert output["constant"] == {"a": [1, 2]}
    assert output["fixed"] == "run-1"  # mappings are applied after pass-through values
    assert output["inputs"] == {"user": {"name": "ada"}}  # the trigger's output is the node's input


def test_a_template_error_fails_the_node_without_retrying() -> None:
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("a", "log", {"message": "{{ trigger.inputs.missing }}"}, maxRetries=3)],
            [("t", "a")],
        ),
        services=services(),
    )
    result, _ = run(engine)
    assert result.phase is RunPhase.FAILED
    failed = log_of(result, "a")
    assert failed.status is NodeRunStatus.FAILED
    assert failed.attempts == 1
    assert failed.error is not None
    assert "config.message" in failed.error
    assert "'trigger.inputs.missing' is undefined" in failed.error
    assert result.error == f"node 'a' failed: {failed.error}"


def test_rendered_config_is_checked_against_the_schema() -> None:
    engine = WorkflowEngine(
        definition([TRIGGER, node("d", "delay", {"seconds": "{{ trigger.inputs.wait }}"})], [("t", "d")]),
        services=services(),
    )
    result, _ = run(engine, {"wait": "soon"})
    assert log_of(result, "d").error == "invalid config after rendering: config.seconds must be a number"
    result, elapsed = run(engine, {"wait": 12})
    assert result.phase is RunPhase.COMPLETED
    assert elapsed == pytest.approx(12)


def flaky_http(failures: int, status: int = 503) -> tuple[list[httpx.Request], Any]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            return httpx.Response(status, text="unavailable")
        return httpx.Response(200, json={"ok": True})

    return seen, handler


def test_retries_with_exponential_backoff_and_full_jitter() -> None:
    seen, handler = flaky_http(failures=3)
    sleep = RecordingSleep()
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("call", "http_request", {"url": "https://api.example.com/x"})],
            [("t", "call")],
            retryOnFailure=True,
            maxRetries=3,
            retryBackoffSeconds=2.0,
        ),
        services=services(handler=handler, seed=7, sleep=sleep),
    )
    result, elapsed = run(engine)
    assert result.phase is RunPhase.COMPLETED
    assert log_of(result, "call").attempts == 4
    assert len(seen) == 4
    expected_rng = random.Random(7)
    expected = [expected_rng.uniform(0, 2.0), expected_rng.uniform(0, 4.0), expected_rng.uniform(0, 8.0)]
    assert sleep.delays == expected
    assert elapsed == pytest.approx(sum(expected))
    assert [entry.message.split(";")[0] for entry in result.logs] == [
        f"attempt {n} failed: GET https://api.example.com/x answered 503 Service Unavailable: unavailable"
        for n in (1, 2, 3)
    ]


def test_retries_run_out() -> None:
    _, handler = flaky_http(failures=10)
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("call", "http_request", {"url": "https://api.example.com/x"}, maxRetries=2)],
            [("t", "call")],
        ),
        services=services(handler=handler),
    )
    result, _ = run(engine)
    assert result.phase is RunPhase.FAILED
    assert log_of(result, "call").attempts == 3
    assert "answered 503" in (log_of(result, "call").error or "")


def test_non_retryable_failures_are_not_retried() -> None:
    seen, handler = flaky_http(failures=10, status=404)
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("call", "http_request", {"url": "https://api.example.com/x"}, maxRetries=5)],
            [("t", "call")],
        ),
        services=services(handler=handler),
    )
    result, _ = run(engine)
    assert log_of(result, "call").attempts == 1
    assert len(seen) == 1


def test_backoff_delay_doubles_up_to_the_cap() -> None:
    class Upper(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    delays = [backoff_delay(attempt, 1.5, Upper()) for attempt in range(1, 10)]
    assert delays == [
        1.5,
        3.0,
        6.0,
        12.0,
        24.0,
        48.0,
        MAX_BACKOFF_SECONDS,
        MAX_BACKOFF_SECONDS,
        MAX_BACKOFF_SECONDS,
    ]
    seeded = [backoff_delay(attempt, 1.0, random.Random(3)) for attempt in (1, 2, 3)]
    assert seeded == [random.Random(3).uniform(0, bound) for bound in (1.0, 2.0, 4.0)]


def test_node_timeout_fails_the_attempt_and_counts_as_retryable() -> None:
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("wait", "delay", {"seconds": 1000}, timeoutSeconds=5, maxRetries=1)],
            [("t", "wait")],
            retryBackoffSeconds=0.0,
        ),
        services=services(),
    )
    result, elapsed = run(engine)
    assert result.phase is RunPhase.FAILED
    assert log_of(result, "wait").attempts == 2
    assert log_of(result, "wait").error == "timed out after 5s"
    assert elapsed == pytest.approx(10)


def test_settings_timeout_applies_to_nodes_without_their_own() -> None:
    engine = WorkflowEngine(
        definition([TRIGGER, node("wait", "delay", {"seconds": 1000})], [("t", "wait")], timeoutSeconds=7),
        services=services(),
    )
    result, elapsed = run(engine)
    assert log_of(result, "wait").error == "timed out after 7s"
    assert elapsed == pytest.approx(7)


def test_a_failure_fails_the_run_and_cancels_running_nodes() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("slow", "delay", {"seconds": 100}),
                node("after_slow", "log", {"message": "never"}),
                node("broken", "log", {"message": "{{ trigger.inputs.nope }}"}),
            ],
            [("t", "slow"), ("slow", "after_slow"), ("t", "broken")],
        ),
        services=services(),
    )
    result, elapsed = run(engine)
    assert result.phase is RunPhase.FAILED
    assert statuses(result) == {
        "t": "completed",
        "slow": "cancelled",
        "broken": "failed",
        "after_slow": "pending",
    }
    assert log_of(result, "slow").error == result.error
    assert elapsed == 0


def test_run_timeout_cancels_running_nodes() -> None:
    engine = WorkflowEngine(
        definition([TRIGGER, node("wait", "delay", {"seconds": 1000})], [("t", "wait")]),
        services=services(),
        run_timeout_seconds=60,
    )
    result, elapsed = run(engine)
    assert result.phase is RunPhase.FAILED
    assert result.error == "run timed out after 60s"
    assert log_of(result, "wait").status is NodeRunStatus.CANCELLED
    assert elapsed == pytest.approx(60)


def test_cancel_marks_running_nodes_cancelled() -> None:
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("wait", "delay", {"seconds": 1000}), node("next", "log", {"message": "x"})],
            [("t", "wait"), ("wait", "next")],
        ),
        services=services(),
    )

    async def scenario() -> RunResult:
        execution = engine.prepare(TriggerEvent(run_id="r"))
        task = asyncio.create_task(execution.run())
        await asyncio.sleep(10)
        execution.cancel()
        return await task

    result, elapsed = run_virtual(scenario())
    assert result.phase is RunPhase.CANCELLED
    assert result.error == "run cancelled"
    assert statuses(result) == {"t": "completed", "wait": "cancelled", "next": "pending"}
    assert elapsed == pytest.approx(10)


@pytest.mark.parametrize("turns", range(6))
def test_cancel_right_after_spawning_never_hangs(turns: int) -> None:
    # Cancelling node tasks that have not started yet must still let run() return (their
    # count-down cannot live in a finally of the coroutine: a task cancelled before it starts
    # never runs its body).
    engine = WorkflowEngine(
        definition(
            [TRIGGER, *(node(f"d{i}", "delay", {"seconds": 100}) for i in range(3))],
            [("t", f"d{i}") for i in range(3)],
        ),
        services=services(),
    )

    async def scenario() -> RunResult:
        execution = engine.prepare(TriggerEvent(run_id="r"))
        task = asyncio.create_task(execution.run())
        for _ in range(turns):
            await asyncio.sleep(0)
        execution.cancel()
        return await asyncio.wait_for(task, timeout=5)

    result, _ = run_virtual(scenario())
    assert result.phase is RunPhase.CANCELLED


def test_cancelling_the_calling_task_cancels_the_nodes_and_propagates() -> None:
    events: list[ProgressEvent] = []
    engine = WorkflowEngine(
        definition([TRIGGER, node("wait", "delay", {"seconds": 1000})], [("t", "wait")]),
        services=services(),
    )

    async def scenario() -> None:
        task = asyncio.create_task(engine.run(TriggerEvent(run_id="r"), on_progress=events.append))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(scenario())
    finished = [event.node for event in events if event.kind is ProgressKind.NODE_FINISHED and event.node]
    assert [(log.node_id, log.status) for log in finished] == [
        ("t", NodeRunStatus.COMPLETED),
        ("wait", NodeRunStatus.CANCELLED),
    ]


def test_progress_callback_reports_each_node() -> None:
    events: list[ProgressEvent] = []
    result, _ = run(branching_workflow(), {"amount": 1}, on_progress=events.append)
    reported = [
        (event.kind.value, event.node.node_id, event.node.status.value) for event in events if event.node
    ]
    assert reported[:4] == [
        ("node_started", "t", "running"),
        ("node_finished", "t", "completed"),
        ("node_started", "check", "running"),
        ("node_finished", "check", "completed"),
    ]
    assert ("node_finished", "big", "skipped") in reported
    assert reported[-1] == ("node_finished", "join", "completed")
    assert result.phase is RunPhase.COMPLETED


def test_a_failing_progress_callback_does_not_break_the_run() -> None:
    def explode(event: ProgressEvent) -> None:
        raise RuntimeError("boom")

    result, _ = run(branching_workflow(), {"amount": 1}, on_progress=explode)
    assert result.phase is RunPhase.COMPLETED


def test_log_and_respond_nodes() -> None:
    events: list[ProgressEvent] = []
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("say", "log", {"message": "user {{ trigger.inputs.id }}", "level": "warning"}),
                node("reply", "respond", {"status": 201, "body": {"id": "{{ trigger.inputs.id }}"}}),
                node("again", "respond", {"body": "ignored"}),
            ],
            [("t", "say"), ("say", "reply"), ("reply", "again")],
        ),
        services=services(),
    )
    result, _ = run(engine, {"id": 9}, on_progress=events.append)
    assert result.response is not None
    assert (result.response.status, result.response.body) == (201, {"id": 9})
    assert [(entry.level, entry.message, entry.node_id) for entry in result.logs] == [
        ("warning", "user 9", "say"),
        ("warning", "the webhook response was already set; this one is ignored", "again"),
    ]
    assert [event.response for event in events if event.kind is ProgressKind.RESPONSE] == [result.response]


def test_unexpected_executor_exceptions_are_retryable_failures() -> None:
    calls: list[int] = []

    async def crash(ctx: NodeContext) -> NodeOutcome:
        calls.append(ctx.attempt)
        if ctx.attempt < 2:
            raise KeyError("surprise")
        return NodeOutcome({"attempt": ctx.attempt})

    engine = WorkflowEngine(
        definition([TRIGGER, node("x", "log", {"message": "m"}, maxRetries=2)], [("t", "x")]),
        services=services(),
        implementations={**IMPLEMENTATIONS, "log": NodeImplementation(crash)},
    )
    result, _ = run(engine)
    assert calls == [1, 2]
    assert log_of(result, "x").output == {"attempt": 2}
    assert result.logs[0].message.startswith("attempt 1 failed: KeyError: 'surprise'")


def test_invalid_definitions_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="no trigger node"):
        WorkflowEngine(definition([node("a", "log", {"message": "x"})]))


def test_a_runtime_without_an_executor_for_a_type_refuses_the_definition() -> None:
    partial = {key: value for key, value in IMPLEMENTATIONS.items() if key != "log"}
    with pytest.raises(WorkflowDefinitionError, match="cannot run log"):
        WorkflowEngine(
            definition([TRIGGER, node("a", "log", {"message": "x"})], [("t", "a")]), implementations=partial
        )


def test_an_execution_runs_once() -> None:
    engine = branching_workflow()

    async def twice() -> None:
        execution = engine.prepare(TriggerEvent())
        await execution.run()
        with pytest.raises(RuntimeError, match="runs once"):
            await execution.run()

    run_virtual(twice())


# --- approval: pause and resume --------------------------------------------------------------------------


def approval_workflow(*, with_rejected: bool = True) -> WorkflowEngine:
    connections: list[tuple[str, str] | tuple[str, str, str]] = [
        ("t", "prepare"),
        ("prepare", "approve"),
        ("approve", "approved", "ship"),
        ("t", "side"),
    ]
    if with_rejected:
        connections.append(("approve", "rejected", "notify"))
    return WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("prepare", "transform", {"set": {"order": "{{ trigger.inputs.order }}"}}),
                node(
                    "approve",
                    "approval",
                    {"message": "Ship order {{ prepare.order }}?", "approvers": ["ops"]},
                ),
                node("ship", "log", {"message": "shipping {{ prepare.order }} ({{ approve.comment }})"}),
                node("notify", "log", {"message": "rejected by {{ approve.decidedBy }}"}),
                node("side", "transform", {"set": {"independent": True}}),
            ],
            connections,
        ),
        services=services(),
    )


def pause(engine: WorkflowEngine) -> RunResult:
    result, _ = run(engine, {"order": "A-1"})
    assert result.phase is RunPhase.AWAITING_INTERACTION
    return result


def test_approval_pauses_with_a_json_snapshot() -> None:
    result = pause(approval_workflow())
    assert result.completed_at is None
    assert [(item.node_id, item.node_type, dict(item.request)) for item in result.awaiting] == [
        ("approve", "approval", {"message": "Ship order A-1?", "approvers": ["ops"]})
    ]
    # Branches that do not depend on the approval still ran.
    assert statuses(result) == {
        "t": "completed",
        "prepare": "completed",
        "side": "completed",
        "approve": "running",
        "ship": "pending",
        "notify": "pending",
    }
    assert result.snapshot is not None
    assert json.loads(json.dumps(result.snapshot)) == result.snapshot


def test_resume_approved_continues_on_the_approved_port() -> None:
    engine = approval_workflow()
    snapshot = json.loads(json.dumps(pause(engine).snapshot))
    resumed, _ = run_virtual(engine.resume(snapshot, {"approved": True, "comment": "go", "decidedBy": "ann"}))
    assert resumed.phase is RunPhase.COMPLETED
    assert statuses(resumed)["ship"] == "completed"
    assert statuses(resumed)["notify"] == "skipped"
    assert statuses(resumed)["side"] == "completed"
    assert [entry.message for entry in resumed.logs] == ["shipping A-1 (go)"]
    approval = log_of(resumed, "approve")
    assert approval.output["approved"] is True
    assert approval.output["decidedBy"] == "ann"
    assert approval.output["order"] == "A-1"  # the approval passes its input on
    assert resumed.run_id == "run-1"


def test_resume_rejected_continues_on_the_rejected_port() -> None:
    engine = approval_workflow()
    snapshot = pause(engine).snapshot
    assert snapshot is not None
    resumed, _ = run_virtual(engine.resume(snapshot, {"approved": False, "decidedBy": "bob"}))
    assert resumed.phase is RunPhase.COMPLETED
    assert statuses(resumed)["ship"] == "skipped"
    assert [entry.message for entry in resumed.logs] == ["rejected by bob"]


def test_resume_rejected_without_a_rejected_branch_fails() -> None:
    engine = approval_workflow(with_rejected=False)
    snapshot = pause(engine).snapshot
    assert snapshot is not None
    resumed, _ = run_virtual(
        engine.resume(snapshot, {"approved": False, "decidedBy": "bob", "comment": "no"})
    )
    assert resumed.phase is RunPhase.FAILED
    assert resumed.error == "node 'approve' failed: rejected by bob: no"
    assert statuses(resumed)["ship"] == "pending"


def test_resume_refuses_bad_snapshots_and_decisions() -> None:
    engine = approval_workflow()
    snapshot = pause(engine).snapshot
    assert snapshot is not None
    with pytest.raises(ResumeError, match="approved must be true or false"):
        engine.prepare_resume(snapshot, {"approved": "yes"})
    with pytest.raises(ResumeError, match="not a version 1 run snapshot"):
        engine.prepare_resume({"version": 99}, {"approved": True})
    with pytest.raises(ResumeError, match="malformed run snapshot"):
        engine.prepare_resume({**snapshot, "trigger": None}, {"approved": True})
    with pytest.raises(ResumeError, match="'prepare' is not waiting"):
        engine.prepare_resume(snapshot, {"approved": True, "nodeId": "prepare"})
    other = WorkflowEngine(
        definition([TRIGGER, node("approve", "log", {"message": "x"})], [("t", "approve")])
    )
    with pytest.raises(ResumeError, match="not in the workflow any more"):
        other.prepare_resume(snapshot, {"approved": True})


def test_several_waiting_approvals_need_the_decision_to_name_one() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node("a1", "approval"),
                node("a2", "approval"),
                node("done", "log", {"message": "both"}),
            ],
            [("t", "a1"), ("t", "a2"), ("a1", "approved", "done"), ("a2", "approved", "done")],
        ),
        services=services(),
    )
    first, _ = run(engine)
    assert {item.node_id for item in first.awaiting} == {"a1", "a2"}
    assert first.snapshot is not None
    with pytest.raises(ResumeError, match="must name the node"):
        engine.prepare_resume(first.snapshot, {"approved": True})
    second, _ = run_virtual(engine.resume(first.snapshot, {"approved": True, "nodeId": "a2"}))
    assert second.phase is RunPhase.AWAITING_INTERACTION
    assert [item.node_id for item in second.awaiting] == ["a1"]
    assert statuses(second)["done"] == "pending"
    assert second.snapshot is not None
    third, _ = run_virtual(engine.resume(second.snapshot, {"approved": True}))
    assert third.phase is RunPhase.COMPLETED
    assert statuses(third)["done"] == "completed"
    assert third.started_at == first.started_at


# --- executors' view of the run, and what happens when they misbehave ------------------------------------


def test_transform_map_copies_input_fields_and_expression_keys_are_not_rendered() -> None:
    engine = WorkflowEngine(
        definition(
            [
                TRIGGER,
                node(
                    "shape",
                    "transform",
                    {
                        "map": {"who": "inputs.user.name", "missing": "inputs.nope"},
                        "set": {"at": "{{ run.id }}"},
                    },
                ),
                node(
                    "gate",
                    "condition",
                    {"field": "shape.who", "operator": "equals", "value": "{{ trigger.inputs.expected }}"},
                ),
                node("yes", "log", {"message": "{{ gate.who }} passed"}),
            ],
            [("t", "shape"), ("shape", "gate"), ("gate", "true", "yes")],
        ),
        services=services(),
    )
    result, _ = run(engine, {"user": {"name": "ada"}, "expected": "ada"})
    assert log_of(result, "shape").output == {"who": "ada", "missing": None, "at": "run-1"}
    assert [entry.message for entry in result.logs] == ["ada passed"]


def test_executors_see_a_complete_scope_and_non_object_outputs() -> None:
    seen: dict[str, Any] = {}

    async def text(ctx: NodeContext) -> NodeOutcome:
        return NodeOutcome("plain text")

    async def inspect(ctx: NodeContext) -> NodeOutcome:
        seen["names"] = sorted(ctx.scope)
        seen["count"] = len(ctx.scope)
        return NodeOutcome(ctx.config["message"])

    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("a", "respond"), node("b", "log", {"message": "{{ a.output }}!"})],
            [("t", "a"), ("a", "b")],
        ),
        services=services(),
        implementations={
            **IMPLEMENTATIONS,
            "respond": NodeImplementation(text),
            "log": NodeImplementation(inspect),
        },
    )
    result, _ = run(engine)
    assert log_of(result, "b").output == "plain text!"
    assert seen == {"names": ["a", "input", "nodes", "run", "t", "trigger"], "count": 6}


def test_template_errors_inside_an_executor_are_not_retried() -> None:
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("c", "condition", {"expression": "trigger.inputs.n < 'x'"}, maxRetries=4)],
            [("t", "c")],
        ),
        services=services(),
    )
    result, _ = run(engine, {"n": 1})
    assert log_of(result, "c").attempts == 1
    assert (
        log_of(result, "c").error
        == "cannot compare number < string at position 17 in \"trigger.inputs.n < 'x'\""
    )


def test_an_executor_returning_the_wrong_type_is_an_engine_error_not_a_hang() -> None:
    async def broken(ctx: NodeContext) -> NodeOutcome:
        return "not an outcome"  # type: ignore[return-value]

    engine = WorkflowEngine(
        definition([TRIGGER, node("x", "log", {"message": "m"})], [("t", "x")]),
        services=services(),
        implementations={**IMPLEMENTATIONS, "log": NodeImplementation(broken)},
    )
    with pytest.raises(AttributeError, match="interaction"):
        run(engine)


def test_cancelling_a_run_with_a_waiting_approval_cancels_the_approval() -> None:
    engine = WorkflowEngine(
        definition(
            [TRIGGER, node("ask", "approval"), node("wait", "delay", {"seconds": 50})],
            [("t", "ask"), ("t", "wait")],
        ),
        services=services(),
    )

    async def scenario() -> RunResult:
        execution = engine.prepare(TriggerEvent(run_id="r"))
        task = asyncio.create_task(execution.run())
        await asyncio.sleep(5)
        execution.cancel("stopped by user")
        return await task

    result, _ = run_virtual(scenario())
    assert result.phase is RunPhase.CANCELLED
    assert statuses(result) == {"t": "completed", "ask": "cancelled", "wait": "cancelled"}
    assert log_of(result, "ask").error == "stopped by user"
    assert result.snapshot is None


def test_a_forged_snapshot_cannot_resume_a_node_that_does_not_pause() -> None:
    engine = approval_workflow()
    snapshot = pause(engine).snapshot
    assert snapshot is not None
    forged = {**snapshot, "waiting": {"side": {**snapshot["waiting"]["approve"], "type": "transform"}}}
    with pytest.raises(ResumeError, match="node 'side' cannot be resumed"):
        engine.prepare_resume(forged, {"approved": True})
