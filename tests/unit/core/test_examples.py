"""Tests of the Workflow manifests in ``examples/``: users apply them as they are, so each must be accepted by
the CRD schema (as the API server would, after its defaults) and by the models, use only catalog node types
with valid configs, form a sound graph, and show what its file name promises."""

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tideflow.core import catalog, crdgen, names, templating
from tideflow.core.models import ConcurrencyPolicy, LifecycleType, ScheduleType, Workflow
from tideflow.sandbox import schema as crd_validation

EXAMPLES_DIR = crdgen.ROOT / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
SCHEMA = crdgen.crd_schema(crdgen.crds()[crdgen.WORKFLOW_CRD_FILE])
LIFECYCLE_EXAMPLES = {
    "lifecycle-always-on.yaml": LifecycleType.ALWAYS_ON,
    "lifecycle-idle-shutdown.yaml": LifecycleType.IDLE_SHUTDOWN,
    "lifecycle-on-demand.yaml": LifecycleType.ON_DEMAND,
    "lifecycle-scheduled-window.yaml": LifecycleType.SCHEDULED_WINDOW,
}


def _load(path: Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert len(documents) == 1, f"{path.name}: one manifest per file"
    document: dict[str, Any] = documents[0]
    return document


def _workflow(name: str) -> Workflow:
    return Workflow.model_validate(_load(EXAMPLES_DIR / name))


def test_the_promised_examples_exist() -> None:
    present = {path.name for path in EXAMPLES}
    assert {"manual-webhook.yaml", "daily-etl.yaml", *LIFECYCLE_EXAMPLES} <= present


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_is_a_plain_workflow_manifest(path: Path) -> None:
    document = _load(path)
    assert document["apiVersion"] == names.API_VERSION
    assert document["kind"] == names.WORKFLOW_KIND
    metadata = document["metadata"]
    assert metadata["name"] == path.stem
    assert "namespace" not in metadata, "users choose the namespace with kubectl -n"
    assert metadata["labels"][names.LABEL_PART_OF] == names.PART_OF
    assert "status" not in document


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_passes_the_crd_schema_after_defaults(path: Path) -> None:
    document = crd_validation.apply_defaults(SCHEMA, copy.deepcopy(_load(path)))
    assert [(error.path, error.message) for error in crd_validation.validate(SCHEMA, document)] == []
    assert crd_validation.prune(SCHEMA, copy.deepcopy(document)) == document, "no field would be pruned"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_passes_the_models_and_the_catalog(path: Path) -> None:
    workflow = Workflow.model_validate(_load(path))
    assert workflow.spec.nodes
    for node in workflow.spec.nodes:
        node_type = catalog.get_node_type(node.type)
        assert node_type is not None, f"{node.id}: unknown node type {node.type}"
        assert catalog.check_config(node_type, node.config, templates_allowed=True) == [], node.id


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_graph_is_sound(path: Path) -> None:
    """One trigger, every node reachable from it, ports that exist, and expressions over upstream nodes."""
    spec = Workflow.model_validate(_load(path)).spec
    types = {node.id: catalog.CATALOG[node.type] for node in spec.nodes}
    triggers = [node_id for node_id, node_type in types.items() if node_type.is_trigger]
    assert len(triggers) == 1
    upstream: dict[str, set[str]] = {node_id: set() for node_id in types}
    for connection in spec.connections:
        assert connection.source_port in types[connection.source].outputs, connection.id
        assert connection.target_port in types[connection.target].inputs, connection.id
        upstream[connection.target].add(connection.source)

    def ancestors(node_id: str) -> set[str]:
        found: set[str] = set()
        pending = list(upstream[node_id])
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending += upstream[current]
        return found

    for node in spec.nodes:
        before = ancestors(node.id)
        if node.id not in triggers:
            assert triggers[0] in before, f"{node.id} is not reachable from the trigger"
        assert node.id not in before, f"{node.id} is on a cycle"
        expressions: list[templating.Expression | templating.Template] = [
            templating.parse_expression(node.config[key])
            for key in types[node.id].expression_keys & set(node.config)
            if isinstance(node.config[key], str)
        ]
        templates = [
            templating.parse_template(text)
            for text in _strings([node.config, node.input_mappings])
            if "{{" in text
        ]
        for parsed in [*expressions, *templates]:
            for reference in parsed.references():
                assert reference.root in before, (
                    f"{node.id} reads {reference} from a node that does not run before it"
                )


def test_manual_webhook_posts_the_run_id_as_json() -> None:
    spec = _workflow("manual-webhook.yaml").spec
    trigger, post = spec.nodes
    assert (trigger.id, trigger.type) == ("n1", "manual_trigger")
    assert post.type == "http_request"
    assert post.config["method"] == "POST"
    assert post.config["url"].startswith("https://")
    assert "{{ n1.run_id }}" in list(_strings(post.config["body"]))
    assert [(c.source, c.target) for c in spec.connections] == [("n1", post.id)]


def test_daily_etl_runs_at_two_in_berlin_and_branches_on_the_condition() -> None:
    spec = _workflow("daily-etl.yaml").spec
    assert spec.schedule is not None
    assert (spec.schedule.type, spec.schedule.time, spec.schedule.timezone) == (
        ScheduleType.DAILY,
        "02:00",
        "Europe/Berlin",
    )
    assert spec.schedule.concurrency_policy is ConcurrencyPolicy.FORBID
    by_id = {node.id: node for node in spec.nodes}
    chain = ["schedule_trigger", "http_request", "transform", "condition"]
    edges = {(c.source, c.source_port): c.target for c in spec.connections}
    current = next(node.id for node in spec.nodes if node.type == "schedule_trigger")
    for expected_type in chain:
        assert by_id[current].type == expected_type
        if expected_type != "condition":
            current = edges[(current, "output")]
    assert by_id[edges[(current, "true")]].type == "http_request"
    assert by_id[edges[(current, "false")]].type == "log"


@pytest.mark.parametrize(("name", "policy"), LIFECYCLE_EXAMPLES.items())
def test_lifecycle_examples_are_deployed_with_their_policy(name: str, policy: LifecycleType) -> None:
    spec = _workflow(name).spec
    assert spec.deployed is True
    assert spec.lifecycle.type is policy


def test_idle_shutdown_example_sets_its_timeout() -> None:
    assert _workflow("lifecycle-idle-shutdown.yaml").spec.lifecycle.idle_timeout_minutes is not None


def test_scheduled_window_example_crosses_midnight_in_a_real_time_zone() -> None:
    schedule = _workflow("lifecycle-scheduled-window.yaml").spec.lifecycle.schedule
    assert schedule is not None
    ZoneInfo(schedule.timezone)  # raises for an unknown zone
    assert schedule.timezone != "UTC"
    assert any(window.end_time < window.start_time for window in schedule.windows)
