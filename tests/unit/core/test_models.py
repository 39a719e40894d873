"""Unit tests of the resource models: defaults, camelCase aliases both ways, strict scalars, timestamps, and
the messages of the cross-field rules."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from tideflow.core import names
from tideflow.core.models import (
    LIFECYCLE_RULES,
    SCHEDULE_RULES,
    WINDOW_RULES,
    WORKFLOW_NAME_MESSAGE,
    WORKFLOW_REF_RULES,
    CatchupPolicy,
    ConcurrencyPolicy,
    Condition,
    ConditionStatus,
    Connection,
    DstPolicy,
    Lifecycle,
    LifecycleType,
    LifecycleWindow,
    Node,
    NodeRunLog,
    NodeRunStatus,
    RunPhase,
    Schedule,
    ScheduleType,
    Workflow,
    WorkflowDefinition,
    WorkflowRef,
    WorkflowRun,
    WorkflowRunSpec,
    WorkflowRunStatus,
    WorkflowSettings,
    WorkflowSpec,
    WorkflowState,
    WorkflowStatus,
)


def _messages(error: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(detail["msg"] for detail in error.value.errors())


# --- Defaults ----------------------------------------------------------------------------------------------


def test_workflow_spec_defaults() -> None:
    spec = WorkflowSpec()
    assert spec.state is WorkflowState.DRAFT
    assert (spec.nodes, spec.connections, spec.tags, spec.shared_with) == ([], [], [], [])
    assert (spec.is_public, spec.is_template, spec.deployed, spec.replicas) == (False, False, False, 1)
    assert spec.settings == WorkflowSettings(
        timeout_seconds=300, retry_on_failure=False, max_retries=3, retry_backoff_seconds=1.0
    )
    assert spec.lifecycle.type is LifecycleType.ALWAYS_ON
    assert spec.lifecycle.idle_timeout_minutes is None
    assert (spec.schedule, spec.runtime, spec.display_name) == (None, None, None)


def test_schedule_defaults() -> None:
    schedule = Schedule()
    assert schedule.type is ScheduleType.MANUAL
    assert schedule.timezone == "UTC"
    assert (schedule.catchup.policy, schedule.catchup.max_runs, schedule.catchup.window_seconds) == (
        CatchupPolicy.NONE,
        10,
        86400,
    )
    assert schedule.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert schedule.dst_policy is DstPolicy.FIRE_ONCE


def test_node_and_connection_defaults() -> None:
    node = Node(id="a", type="log")
    assert (node.position.x, node.position.y) == (0.0, 0.0)
    assert (node.config, node.input_mappings, node.pass_through_values) == ({}, {}, {})
    assert (node.timeout_seconds, node.max_retries, node.label) == (None, None, None)
    connection = Connection(id="a-b", source="a", target="b")
    assert (connection.source_port, connection.target_port) == ("output", "input")


def test_run_defaults_and_phase() -> None:
    run = WorkflowRun(spec=WorkflowRunSpec(workflow_ref=WorkflowRef(name="orders")))
    assert (run.api_version, run.kind) == (names.API_VERSION, names.WORKFLOWRUN_KIND)
    assert run.spec.trigger_type == "manual"
    assert (run.spec.priority, run.spec.inputs, run.spec.definition) == (0, {}, None)
    phases = [run.phase]  # no status yet means Pending
    run.status = WorkflowRunStatus()
    phases.append(run.phase)
    run.status.phase = RunPhase.CANCELLED
    phases.append(run.phase)
    assert phases == [RunPhase.PENDING, RunPhase.PENDING, RunPhase.CANCELLED]
    assert NodeRunLog(node_id="a").status is NodeRunStatus.PENDING


@pytest.mark.parametrize(
    ("phase", "finished"),
    [
        (RunPhase.PENDING, False),
        (RunPhase.RUNNING, False),
        (RunPhase.AWAITING_INTERACTION, False),
        (RunPhase.COMPLETED, True),
        (RunPhase.FAILED, True),
        (RunPhase.CANCELLED, True),
    ],
)
def test_run_phase_finished(phase: RunPhase, finished: bool) -> None:
    assert phase.finished is finished


def test_names_agree() -> None:
    assert f"{names.GROUP}/{names.VERSION}" == names.API_VERSION
    assert names.WORKFLOW_CRD_NAME == "workflows.tideflow.io"
    assert names.WORKFLOWRUN_CRD_NAME == "workflowruns.tideflow.io"


def test_workflow_api_version_and_kind_are_fixed() -> None:
    workflow = Workflow(spec=WorkflowSpec())
    assert (workflow.api_version, workflow.kind) == (names.API_VERSION, names.WORKFLOW_KIND)
    with pytest.raises(ValidationError):
        Workflow.model_validate({"kind": "WorkflowRun", "spec": {}})
    with pytest.raises(ValidationError):
        Workflow.model_validate({"apiVersion": "tideflow.io/v1", "spec": {}})


# --- Aliases -----------------------------------------------------------------------------------------------

CAMEL_WORKFLOW: dict[str, Any] = {
    "apiVersion": "tideflow.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "orders", "namespace": "acme", "labels": {"team": "data"}},
    "spec": {
        "displayName": "Orders",
        "sharedWith": ["bob"],
        "isPublic": True,
        "isTemplate": True,
        "nodes": [
            {
                "id": "n1",
                "type": "http_request",
                "position": {"x": 1.5, "y": 2.0},
                "config": {"someKey": None, "camelCase": {"stays": "as is"}},
                "inputMappings": {"a": "{{ n0.x }}"},
                "passThroughValues": {"keep": [1, 2]},
                "timeoutSeconds": 5,
                "maxRetries": 1,
            }
        ],
        "connections": [
            {"id": "c", "source": "n0", "sourcePort": "true", "target": "n1", "targetPort": "input"}
        ],
        "settings": {
            "timeoutSeconds": 10,
            "retryOnFailure": True,
            "maxRetries": 1,
            "retryBackoffSeconds": 2.5,
        },
        "schedule": {
            "type": "weekly",
            "time": "08:15",
            "daysOfWeek": [1, 5],
            "timezone": "Europe/Berlin",
            "catchup": {"policy": "all", "maxRuns": 2, "windowSeconds": 600},
            "concurrencyPolicy": "Replace",
            "dstPolicy": "FireBoth",
        },
        "lifecycle": {"type": "idle-shutdown", "idleTimeoutMinutes": 30},
        "runtime": {
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": 536870912}},
            "secretRefs": [],
        },
    },
    "status": {
        "observedGeneration": 2,
        "deploymentStatus": "Stopped",
        "readyReplicas": 0,
        "webhookPath": "/hooks/acme/orders",
        "nextRunAt": "2024-05-06T06:15:00Z",
        "lastActivityAt": "2024-05-01T10:00:00+02:00",
        "stoppedReason": "idle for 30 minutes",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ScaledToZero",
                "message": "",
                "lastTransitionTime": "2024-05-01T08:30:00Z",
            }
        ],
        "errors": [{"path": "spec.nodes[0]", "message": "bad", "nodeId": "n1"}],
    },
}


def test_camel_case_round_trip() -> None:
    workflow = Workflow.model_validate(CAMEL_WORKFLOW)
    assert workflow.spec.nodes[0].pass_through_values == {"keep": [1, 2]}
    assert workflow.spec.schedule is not None
    assert workflow.spec.schedule.days_of_week == [1, 5]
    assert workflow.status is not None
    assert workflow.status.stopped_reason == "idle for 30 minutes"
    dumped = workflow.to_dict()
    # Everything set comes back as it was, plus the defaults of what was left out.
    expected = {**CAMEL_WORKFLOW["spec"], "tags": [], "deployed": False, "replicas": 1, "state": "Draft"}
    assert dumped["spec"] == expected
    assert dumped["status"] == CAMEL_WORKFLOW["status"]
    assert Workflow.model_validate(dumped) == workflow


def test_free_form_fields_keep_their_keys_and_nulls() -> None:
    node = Workflow.model_validate(CAMEL_WORKFLOW).to_dict()["spec"]["nodes"][0]
    assert node["config"] == {"someKey": None, "camelCase": {"stays": "as is"}}


def test_snake_case_names_are_accepted_and_dumped_as_camel_case() -> None:
    node = Node.model_validate({"id": "a", "type": "log", "input_mappings": {"x": 1}, "timeout_seconds": 3})
    assert node.to_dict() == {
        "id": "a",
        "type": "log",
        "position": {"x": 0.0, "y": 0.0},
        "config": {},
        "inputMappings": {"x": 1},
        "passThroughValues": {},
        "timeoutSeconds": 3,
    }
    assert "input_mappings" not in node.model_dump()


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        Node.model_validate({"id": "a", "type": "log", "colour": "red"})


def test_spec_is_a_definition_and_finds_nodes() -> None:
    spec = WorkflowSpec(nodes=[Node(id="a", type="log"), Node(id="b", type="log")])
    assert isinstance(spec, WorkflowDefinition)
    found = spec.node("b")
    assert found is not None
    assert found.id == "b"
    assert spec.node("c") is None


# --- Strict scalars and timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("replicas", "3"), ("replicas", 2.0), ("replicas", True), ("deployed", "true"), ("deployed", 1)],
)
def test_scalars_are_not_coerced(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        WorkflowSpec.model_validate({field: value})


def test_numbers_may_be_integers_where_floats_are_expected() -> None:
    assert WorkflowSettings(retry_backoff_seconds=2).retry_backoff_seconds == 2.0


def _condition(when: Any) -> Condition:
    return Condition.model_validate(
        {"type": "Ready", "status": "True", "reason": "Up", "message": "", "lastTransitionTime": when}
    )


def test_timestamps_need_an_offset_and_dump_as_rfc3339() -> None:
    assert _condition("2024-05-01T02:00:00Z").to_dict()["lastTransitionTime"] == "2024-05-01T02:00:00Z"
    plus_two = _condition("2024-05-01T04:00:00+02:00").last_transition_time
    assert plus_two == datetime(2024, 5, 1, 2, tzinfo=UTC)
    assert plus_two.utcoffset() == timedelta(hours=2)
    aware = datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=-5)))
    assert _condition(aware).to_dict()["lastTransitionTime"] == "2024-05-01T02:00:00-05:00"
    for bad in (
        "2024-05-01T02:00:00",
        "2024-05-01 02:00:00Z",
        "2024-05-01",
        1714528800,
        datetime(2024, 5, 1),
    ):
        with pytest.raises(ValidationError):
            _condition(bad)


def test_condition_status_values() -> None:
    assert [status.value for status in ConditionStatus] == ["True", "False", "Unknown"]
    valid = _condition("2024-05-01T02:00:00Z").to_dict()
    with pytest.raises(ValidationError, match="status"):
        Condition.model_validate({**valid, "status": "true"})


# --- Cross-field rules -------------------------------------------------------------------------------------

SCHEDULE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"type": "interval"}, SCHEDULE_RULES[0].message),
    ({"type": "cron"}, SCHEDULE_RULES[0].message),
    ({"type": "daily"}, SCHEDULE_RULES[1].message),
    ({"type": "monthly", "dayOfMonth": 3}, SCHEDULE_RULES[1].message),
    ({"type": "weekly", "time": "01:00"}, SCHEDULE_RULES[2].message),
    ({"type": "weekly", "time": "01:00", "daysOfWeek": []}, SCHEDULE_RULES[2].message),
    ({"type": "monthly", "time": "01:00"}, SCHEDULE_RULES[3].message),
    ({"type": "interval", "value": "5 mins"}, SCHEDULE_RULES[4].message),
    ({"type": "interval", "value": "05 minutes"}, SCHEDULE_RULES[4].message),
    ({"type": "interval", "value": "1 hour\n"}, SCHEDULE_RULES[4].message),
    ({"type": "cron", "value": "0 2 * *"}, SCHEDULE_RULES[5].message),
    ({"type": "cron", "value": "0 0 2 * * *"}, SCHEDULE_RULES[5].message),
]


@pytest.mark.parametrize(("schedule", "message"), SCHEDULE_CASES)
def test_schedule_rules(schedule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Schedule.model_validate(schedule)
    assert _messages(refused) == f"Value error, {message}"


def test_schedule_rule_failures_are_reported_together() -> None:
    with pytest.raises(ValidationError) as refused:
        Schedule.model_validate({"type": "monthly"})
    assert _messages(refused) == f"Value error, {SCHEDULE_RULES[1].message}; {SCHEDULE_RULES[3].message}"


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "manual"},
        {"type": "interval", "value": "1 second"},
        {"type": "interval", "value": "90 minutes"},
        {"type": "cron", "value": "15 3 * * 1-5"},
        {"type": "cron", "value": " 0  3 1 * * "},
        {"type": "daily", "time": "00:00"},
        {"type": "weekly", "time": "23:59", "daysOfWeek": [6, 0]},
        {"type": "monthly", "time": "12:30", "dayOfMonth": 31},
        {"type": "daily", "time": "09:00", "value": "ignored for daily"},
    ],
)
def test_schedules_that_satisfy_the_rules(schedule: dict[str, Any]) -> None:
    Schedule.model_validate(schedule)


def test_days_must_not_repeat() -> None:
    with pytest.raises(ValidationError, match=r"daysOfWeek must be unique; repeated: 1"):
        Schedule.model_validate({"type": "weekly", "time": "01:00", "daysOfWeek": [1, 2, 1]})
    with pytest.raises(ValidationError, match=r"days must be unique; repeated: 3"):
        LifecycleWindow.model_validate({"days": [3, 3], "startTime": "01:00", "endTime": "02:00"})


@pytest.mark.parametrize(
    ("lifecycle", "message"),
    [
        ({"type": "idle-shutdown"}, LIFECYCLE_RULES[0].message),
        ({"type": "scheduled-window"}, LIFECYCLE_RULES[1].message),
        ({"type": "scheduled-window", "schedule": {"timezone": "Asia/Tokyo"}}, LIFECYCLE_RULES[1].message),
    ],
)
def test_lifecycle_rules(lifecycle: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Lifecycle.model_validate(lifecycle)
    assert _messages(refused) == f"Value error, {message}"


def test_lifecycle_that_satisfy_the_rules() -> None:
    Lifecycle.model_validate({"type": "idle-shutdown", "idleTimeoutMinutes": 5})
    Lifecycle.model_validate({"type": "on-demand"})
    window = {"days": [5, 6], "startTime": "23:00", "endTime": "01:30"}
    lifecycle = Lifecycle.model_validate({"type": "scheduled-window", "schedule": {"windows": [window]}})
    assert lifecycle.schedule is not None
    assert lifecycle.schedule.timezone == "UTC"
    # Unused settings of other policies are allowed: switching policies does not need a cleanup.
    Lifecycle.model_validate({"type": "always-on", "idleTimeoutMinutes": 60})


def test_window_start_and_end_must_differ() -> None:
    with pytest.raises(ValidationError) as refused:
        LifecycleWindow.model_validate({"days": [1], "startTime": "06:00", "endTime": "06:00"})
    assert _messages(refused) == f"Value error, {WINDOW_RULES[0].message}"


def test_duplicate_ids_are_refused() -> None:
    nodes = [{"id": "a", "type": "log"}, {"id": "b", "type": "log"}, {"id": "a", "type": "log"}]
    with pytest.raises(ValidationError, match=r"node ids must be unique; repeated: 'a'"):
        WorkflowDefinition.model_validate({"nodes": nodes})
    connections = [{"id": "c", "source": "a", "target": "b"}] * 2
    with pytest.raises(ValidationError, match=r"connection ids must be unique; repeated: 'c'"):
        WorkflowDefinition.model_validate({"connections": connections})
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "Up",
        "message": "",
        "lastTransitionTime": "2024-05-01T00:00:00Z",
    }
    with pytest.raises(ValidationError, match=r"condition types must be unique; repeated: 'Ready'"):
        WorkflowStatus.model_validate({"conditions": [condition, condition]})


def test_workflow_name_must_be_a_dns_label() -> None:
    Workflow.model_validate({"metadata": {"name": "a" * 63}, "spec": {}})
    Workflow.model_validate({"metadata": {"generateName": "orders-"}, "spec": {}})
    for name in ("a" * 64, "Orders", "orders.v2", "-orders", 42):
        with pytest.raises(ValidationError) as refused:
            Workflow.model_validate({"metadata": {"name": name}, "spec": {}})
        assert _messages(refused) == f"Value error, {WORKFLOW_NAME_MESSAGE}"


def test_only_the_transition_rule_has_no_python_check() -> None:
    rules = [*SCHEDULE_RULES, *LIFECYCLE_RULES, *WINDOW_RULES, *WORKFLOW_REF_RULES]
    assert [rule.rule for rule in rules if rule.check is None] == [WORKFLOW_REF_RULES[0].rule]
    assert all("oldSelf" in rule.rule for rule in rules if rule.check is None)
    assert not any("oldSelf" in rule.rule for rule in rules if rule.check is not None)


def test_any_json_output_is_kept() -> None:
    for output in ({"a": [1, None]}, [1, "x"], "text", 3.5, True):
        assert NodeRunLog(node_id="a", output=output).to_dict()["output"] == output
        assert WorkflowRunStatus(output=output).to_dict()["output"] == output
