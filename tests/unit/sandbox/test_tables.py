"""Printer-column JSONPath and the Table rendering that kubectl get asks for."""

from __future__ import annotations

import datetime

from tideflow.sandbox.resources import ResourceType
from tideflow.sandbox.tables import human_duration, jsonpath, render_list

WORKFLOW = {
    "metadata": {"name": "wf1", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"state": "Active"},
    "status": {
        "conditions": [{"type": "Valid", "status": "True"}, {"type": "Ready", "status": "False"}],
        "replicas": 1,
    },
}


def test_jsonpath_subset() -> None:
    assert jsonpath(WORKFLOW, ".spec.state") == ["Active"]
    assert jsonpath(WORKFLOW, '.status.conditions[?(@.type=="Ready")].status') == ["False"]
    assert jsonpath(WORKFLOW, ".status.conditions[1].type") == ["Ready"]
    assert jsonpath(WORKFLOW, ".status.conditions[*].type") == ["Valid", "Ready"]
    assert jsonpath(WORKFLOW, "{.status.replicas}") == [1]
    assert jsonpath(WORKFLOW, ".status.missing") == []


def test_human_duration() -> None:
    now = datetime.datetime(2026, 1, 3, 0, 0, 30, tzinfo=datetime.UTC)
    assert human_duration("2026-01-03T00:00:00Z", now) == "30s"
    assert human_duration("2026-01-02T23:00:30Z", now) == "60m"
    assert human_duration("2026-01-02T00:00:30Z", now) == "24h"
    assert human_duration("2026-01-01T00:00:00Z", now) == "2d"


def test_custom_resource_table_uses_printer_columns() -> None:
    rt = ResourceType(
        group="tideflow.io",
        version="v1alpha1",
        plural="workflows",
        kind="Workflow",
        custom=True,
        printer_columns=(
            {"name": "State", "type": "string", "jsonPath": ".spec.state"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Next Run", "type": "date", "jsonPath": ".status.nextRunAt"},
        ),
    )
    table = render_list(rt, {"metadata": {"resourceVersion": "7"}, "items": [WORKFLOW]})
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "State", "Ready", "Next Run"]
    assert table["rows"][0]["cells"] == ["wf1", "Active", "False", None]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["metadata"] == {"resourceVersion": "7"}
