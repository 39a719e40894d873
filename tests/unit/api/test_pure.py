"""Ids, settings, the error shape and how resources are rendered, without a cluster."""

from __future__ import annotations

import json

import pytest

from tideflow.api import ids
from tideflow.api.errors import ApiError, error_body, from_kube, loc_path
from tideflow.api.schemas import ExecutionStatus, WorkflowStatusValue, execution_out, workflow_out
from tideflow.api.settings import ApiSettings, SettingsError
from tideflow.core.kube import Invalid, KubeError


def test_ids_map_one_to_one_onto_names() -> None:
    assert ids.workflow_id("daily-etl") == "wf_daily-etl"
    assert ids.workflow_name("wf_daily-etl") == "daily-etl"
    assert ids.run_name(ids.execution_id("daily-etl-s-20250101000000")) == "daily-etl-s-20250101000000"
    for bad in ("daily-etl", "wf_", "wf_Daily", "wf_a_b", "wf_-a", "exec_x", "wf_" + "a" * 64):
        with pytest.raises(ApiError) as refused:
            ids.workflow_name(bad)
        assert refused.value.status == 404


def test_new_names_are_readable_valid_and_distinct() -> None:
    name = ids.new_workflow_name("Daily Report: Sales & Ops!")
    assert name.startswith("daily-report-sales-ops-")
    assert ids.workflow_name(ids.workflow_id(name)) == name
    assert ids.new_workflow_name("!!!").startswith("workflow-")
    assert len(ids.new_workflow_name("x" * 300)) <= 46
    assert len({ids.new_workflow_name("same") for _ in range(50)}) == 50


def test_settings_from_the_environment() -> None:
    settings = ApiSettings.from_env(
        {"TIDEFLOW_API_PORT": "9000", "TIDEFLOW_NAMESPACES": "a, b,", "TIDEFLOW_RUNTIME_ADDRESS": "pod"}
    )
    assert (settings.api_port, settings.namespaces, settings.runtime_address) == (9000, ("a", "b"), "pod")
    assert settings.serves("a")
    assert not settings.serves("c")
    assert ApiSettings.from_env({}).serves("anything")
    with pytest.raises(SettingsError, match="TIDEFLOW_API_PORT"):
        ApiSettings.from_env({"TIDEFLOW_API_PORT": "http"})
    with pytest.raises(SettingsError, match="TIDEFLOW_BOOTSTRAP_API_KEY"):
        ApiSettings.from_env({"TIDEFLOW_BOOTSTRAP_API_KEY": "short"})


def test_error_shape_and_kubernetes_errors() -> None:
    assert loc_path(("body", "nodes", 0, "type")) == "body.nodes[0].type"
    body = json.loads(error_body(404, "gone"))
    assert body == {"error": {"status": 404, "code": "not_found", "message": "gone", "details": []}}
    invalid = from_kube(
        Invalid(
            422, "Invalid", "bad", {"details": {"causes": [{"field": "spec.replicas", "message": "too big"}]}}
        )
    )
    assert (invalid.status, [d.path for d in invalid.details]) == (422, ["spec.replicas"])
    assert from_kube(KubeError(500, "InternalError", "boom")).status == 502
    assert from_kube(KubeError(429, "TooManyRequests", "slow")).headers == {"Retry-After": "2"}


def test_rendering_a_workflow_and_a_run() -> None:
    obj = {
        "metadata": {"name": "etl", "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"displayName": "ETL", "state": "Paused", "deployed": True, "replicas": 2, "owner": "ann"},
        "status": {
            "observedGeneration": 3,
            "deploymentStatus": "Running",
            "readyReplicas": 2,
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Valid", "status": "False"}],
            "errors": [{"path": "spec.nodes[0]", "message": "bad"}],
        },
    }
    out = workflow_out(obj)
    assert (out.id, out.name, out.status, out.valid) == ("wf_etl", "ETL", WorkflowStatusValue.PAUSED, False)
    assert (out.deployment.ready, out.deployment.observed, out.deployment.replicas) == (True, True, 2)
    assert out.errors[0].path == "spec.nodes[0]"

    run = {
        "metadata": {"name": "etl-abc"},
        "spec": {"workflowRef": {"name": "etl"}, "triggerType": "webhook", "inputs": {"a": 1}},
        "status": {
            "phase": "AwaitingInteraction",
            "durationSeconds": 1.5,
            "nodes": [{"nodeId": "n", "status": "running"}],
        },
    }
    execution = execution_out(run)
    assert execution.status is ExecutionStatus.AWAITING_UI_INTERACTION
    dumped = execution.model_dump(by_alias=True)
    assert (dumped["executionId"], dumped["workflowId"], dumped["duration_in_seconds"]) == (
        "exec_etl-abc",
        "wf_etl",
        1.5,
    )
    assert dumped["logs"][0]["nodeId"] == "n"
    assert (
        execution_out({"metadata": {"name": "x"}, "spec": {"workflowRef": {"name": "w"}}}).status
        is ExecutionStatus.PENDING
    )


def test_a_body_that_is_not_utf8_is_a_422_like_any_body_that_is_not_json() -> None:
    from fastapi.testclient import TestClient

    from tideflow.api.app import create_app

    client = TestClient(create_app(ApiSettings()))  # no lifespan: the body fails before any dependency
    for content in (b"\xff\xfe{", b"{not json"):
        answer = client.post(
            "/api/v1/workflows", content=content, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid"
        assert answer.json()["error"]["details"][0]["path"].startswith("body")
