"""validate_workflow, rule by rule, and a fuzz test that it never raises on what the model accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tideflow.core.catalog import CATALOG
from tideflow.core.models import Connection, Node, WorkflowDefinition, WorkflowSpec
from tideflow.core.validation import MAX_CONFIG_DEPTH, ValidationResult, validate_workflow


def node(node_id: str, node_type: str, config: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config or {}, **fields}


def edge(
    source: str, target: str, port: str = "output", target_port: str = "input", cid: str = ""
) -> dict[str, Any]:
    return {
        "id": cid or f"{source}-{port}-{target}",
        "source": source,
        "sourcePort": port,
        "target": target,
        "targetPort": target_port,
    }


TRIGGER = node("t", "manual_trigger")
LOG = node("say", "log", {"message": "hello"})


def check(nodes: list[dict[str, Any]], connections: list[dict[str, Any]] | None = None) -> ValidationResult:
    return validate_workflow(
        WorkflowDefinition.model_validate({"nodes": nodes, "connections": connections or []})
    )


def errors(result: ValidationResult) -> list[tuple[str, str, str | None]]:
    return [(issue.path, issue.message, issue.node_id) for issue in result.errors]


def warnings(result: ValidationResult) -> list[tuple[str, str, str | None]]:
    return [(issue.path, issue.message, issue.node_id) for issue in result.warnings]


def test_a_sound_workflow_is_valid() -> None:
    result = check([TRIGGER, LOG], [edge("t", "say")])
    assert result.valid
    assert (result.errors, result.warnings, result.node_count, result.connection_count) == ([], [], 2, 1)
    assert result.to_dict() == {
        "valid": True,
        "errors": [],
        "warnings": [],
        "nodeCount": 2,
        "connectionCount": 1,
    }


def test_empty_workflow() -> None:
    assert errors(check([])) == [("spec.nodes", "the workflow has no nodes", None)]


def test_no_trigger_node() -> None:
    assert errors(check([LOG])) == [
        (
            "spec.nodes",
            "the workflow has no trigger node (one of: email_trigger, event_trigger, manual_trigger, "
            "queue_trigger, schedule_trigger, webhook_trigger)",
            None,
        )
    ]


def test_duplicate_ids_are_reported_even_past_the_model() -> None:
    spec = WorkflowDefinition.model_construct(
        nodes=[Node(id="t", type="manual_trigger"), Node(id="t", type="manual_trigger")],
        connections=[
            Connection(id="c", source="t", target="t2"),
            Connection(id="c", source="t", target="t2"),
        ],
    )
    result = validate_workflow(spec)
    assert ("spec.nodes[1].id", "duplicate node id 't' (also spec.nodes[0])", "t") in errors(result)
    assert (
        "spec.connections[1].id",
        "duplicate connection id 'c' (also spec.connections[0])",
        None,
    ) in errors(result)


def test_reserved_node_ids() -> None:
    result = check([TRIGGER, node("run", "log", {"message": "x"})], [edge("t", "run")])
    assert errors(result) == [
        (
            "spec.nodes[1].id",
            "node id 'run' is reserved: {{ run }} means something else in templates "
            "(only a trigger node may be called 'trigger')",
            "run",
        )
    ]
    assert check([node("trigger", "schedule_trigger"), LOG], [edge("trigger", "say")]).valid


def test_unknown_node_type_and_version() -> None:
    result = check([TRIGGER, node("x", "teleport"), node("y", "log", {"message": "m"}, version="9")])
    assert errors(result)[:2] == [
        ("spec.nodes[1].type", f"unknown node type 'teleport' (known: {', '.join(sorted(CATALOG))})", "x"),
        ("spec.nodes[2].version", "log has no version '9' (available: 1)", "y"),
    ]


def test_config_required_and_schema_violations_have_field_paths() -> None:
    result = check(
        [TRIGGER, node("call", "http_request"), node("slow", "delay", {"seconds": "soon", "extra": 1})],
        [edge("t", "call"), edge("t", "slow")],
    )
    assert errors(result) == [
        ("spec.nodes[1].config", "http_request nodes need a configuration (required: url)", "call"),
        ("spec.nodes[2].config.seconds", "must be a number", "slow"),
        ("spec.nodes[2].config.extra", "is not a known setting (allowed: seconds)", "slow"),
    ]


def test_templates_that_do_not_parse() -> None:
    result = check(
        [
            TRIGGER,
            node("call", "http_request", {"url": "https://x/{{ t.inputs.id ", "headers": {"X-A": "{{ | }}"}}),
        ],
        [edge("t", "call")],
    )
    assert errors(result) == [
        (
            "spec.nodes[1].config.url",
            "template error: unclosed '{{' at position 10 in 'https://x/{{ t.inputs.id '",
            "call",
        ),
        (
            'spec.nodes[1].config.headers["X-A"]',
            "template error: unexpected '|' at position 3 in '{{ | }}'",
            "call",
        ),
    ]


def test_templates_referring_to_unknown_or_later_nodes() -> None:
    result = check(
        [
            TRIGGER,
            node("a", "log", {"message": "{{ ghost.x }} {{ b.message }} {{ t.inputs.id }} {{ run.id }}"}),
            node("b", "log", {"message": '{{ nodes["a"].message }} {{ nodes["nobody"].x }} {{ input.y }}'}),
        ],
        [edge("t", "a"), edge("a", "b")],
    )
    assert errors(result) == [
        ("spec.nodes[1].config.message", "{{ ghost.x }} refers to unknown node 'ghost'", "a"),
        ("spec.nodes[2].config.message", "{{ nodes.nobody.x }} refers to unknown node 'nobody'", "b"),
    ]
    assert warnings(result) == [
        (
            "spec.nodes[1].config.message",
            "{{ b.message }} refers to node 'b', which does not run before 'a': the value is undefined "
            "unless a | default(...) filter supplies one",
            "a",
        )
    ]


def test_input_mappings_are_templates_and_pass_through_values_are_not() -> None:
    result = check(
        [
            TRIGGER,
            node(
                "a",
                "log",
                {"message": "m"},
                inputMappings={"k": "{{ nobody.x }}"},
                passThroughValues={"v": "{{"},
            ),
        ],
        [edge("t", "a")],
    )
    assert errors(result) == [
        ("spec.nodes[1].inputMappings.k", "{{ nobody.x }} refers to unknown node 'nobody'", "a")
    ]


def test_expression_keys_are_parsed_as_expressions() -> None:
    result = check(
        [
            TRIGGER,
            node("c1", "condition", {"field": "ghost.status", "operator": "exists"}),
            node("c2", "condition", {"expression": "t.inputs.x =="}),
            node("tr", "transform", {"map": {"id": "body.id", "bad": "a["}}),
        ],
        [edge("t", "c1"), edge("c1", "c2", "true"), edge("c2", "tr", "false")],
    )
    assert errors(result) == [
        ("spec.nodes[1].config.field", "{{ ghost.status }} refers to unknown node 'ghost'", "c1"),
        (
            "spec.nodes[2].config.expression",
            "expression error: unexpected end of expression at position 13 in 't.inputs.x =='",
            "c2",
        ),
        (
            "spec.nodes[3].config.map.bad",
            "expression error: expected a quoted key or an integer index but found end of expression "
            "at position 2 in 'a['",
            "tr",
        ),
    ]


def test_connections_to_missing_nodes() -> None:
    result = check([TRIGGER, LOG], [edge("t", "say"), edge("t", "gone"), edge("nowhere", "say")])
    assert errors(result) == [
        ("spec.connections[1].target", "connection target 'gone' is not a node of the workflow", None),
        ("spec.connections[2].source", "connection source 'nowhere' is not a node of the workflow", None),
    ]


def test_connections_on_ports_the_node_types_do_not_have() -> None:
    result = check(
        [TRIGGER, node("c", "condition", {"expression": "true"}), LOG, node("t2", "webhook_trigger")],
        [edge("t", "c"), edge("c", "say"), edge("c", "say", "true", "side"), edge("c", "t2", "false")],
    )
    assert errors(result) == [
        (
            "spec.connections[1].sourcePort",
            "condition node 'c' has no output port 'output' (its ports: true, false)",
            "c",
        ),
        (
            "spec.connections[2].targetPort",
            "log node 'say' has no input port 'side' (its ports: input)",
            "say",
        ),
        ("spec.connections[3].targetPort", "webhook_trigger node 't2' is a trigger and takes no input", "t2"),
    ]


def test_repeated_connections_are_a_warning() -> None:
    result = check([TRIGGER, LOG], [edge("t", "say", cid="one"), edge("t", "say", cid="two")])
    assert result.valid
    assert warnings(result) == [
        ("spec.connections[1]", "connection repeats spec.connections[0] (t.output -> say)", "say"),
    ]


def test_cycles() -> None:
    result = check(
        [TRIGGER, node("a", "log", {"message": "a"}), node("b", "log", {"message": "b"}), LOG],
        [edge("t", "a"), edge("a", "b"), edge("b", "a"), edge("say", "say")],
    )
    assert errors(result) == [
        ("spec.connections[1]", "connections form a cycle: a -> b -> a", "a"),
        ("spec.connections[3]", "connections form a cycle: say -> say", "say"),
    ]


def test_unreachable_nodes_are_warnings_unless_nothing_is_reachable() -> None:
    result = check([TRIGGER, LOG, node("island", "log", {"message": "x"})], [edge("t", "say")])
    assert result.valid
    assert warnings(result) == [
        ("spec.nodes[2]", "node 'island' is not reachable from a trigger node; it never runs", "island")
    ]
    assert errors(check([TRIGGER, LOG])) == [
        ("spec.connections", "no node is connected to a trigger node", None)
    ]
    assert check([TRIGGER]).valid


def test_configs_nested_too_deeply() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_CONFIG_DEPTH + 5):
        deep = {"k": deep}
    result = check([TRIGGER, node("r", "respond", {"body": deep})], [edge("t", "r")])
    where = "spec.nodes[1].config.body" + ".k" * (
        MAX_CONFIG_DEPTH - 1
    )  # MAX_CONFIG_DEPTH levels below config
    assert errors(result) == [(where, f"nested more than {MAX_CONFIG_DEPTH} levels deep", "r")]


def test_prefix_and_workflow_specs() -> None:
    spec = WorkflowSpec.model_validate({"nodes": [LOG]})
    assert validate_workflow(spec, prefix="definition").errors[0].path == "definition.nodes"


def test_long_messages_are_truncated_to_the_status_limit() -> None:
    result = check([TRIGGER, node("a", "log", {"message": "{{ " + "x" * 3000 + " }}"})], [edge("t", "a")])
    assert len(result.errors[0].message) <= 1024
    assert result.errors[0].message.endswith("...")


# --- fuzz ---------------------------------------------------------------------------------------------------

IDS = st.sampled_from(["t", "a", "b", "c", "trigger", "run", "n-1"])
TYPES = st.sampled_from([*CATALOG, "unknown_type"])
PORTS = st.sampled_from(["output", "input", "true", "false", "approved", "rejected", "other"])
TEMPLATE_BITS = st.sampled_from(
    ["{{ a.x }}", "{{ ghost }}", "{{", "}}", "{{ t.inputs | json }}", "plain", "{{ ( }}"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4) | TEMPLATE_BITS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
CONFIG_KEYS = st.sampled_from(
    ["url", "method", "message", "seconds", "set", "map", "field", "operator", "expression"]
)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(IDS, max_size=6, unique=True))
    nodes = [
        {
            "id": node_id,
            "type": draw(TYPES),
            "config": draw(st.dictionaries(CONFIG_KEYS, JSON, max_size=3)),
            "inputMappings": draw(st.dictionaries(st.text(max_size=3), JSON, max_size=2)),
        }
        for node_id in ids
    ]
    endpoints = st.sampled_from([*ids, "missing"]) if ids else st.just("missing")
    connections = [
        {
            "id": f"c{n}",
            "source": draw(endpoints),
            "sourcePort": draw(PORTS),
            "target": draw(endpoints),
            "targetPort": draw(PORTS),
        }
        for n in range(draw(st.integers(0, 8)))
    ]
    return {"nodes": nodes, "connections": connections}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_fuzz_never_raises_and_is_deterministic(document: dict[str, Any]) -> None:
    try:
        spec = WorkflowDefinition.model_validate(document)
    except ValidationError:
        return
    first = validate_workflow(spec)
    assert first == validate_workflow(spec)
    assert (first.node_count, first.connection_count) == (len(spec.nodes), len(spec.connections))
    assert all(issue.path.startswith("spec.") for issue in first.errors + first.warnings)


@pytest.mark.parametrize("type_id", sorted(CATALOG))
def test_every_type_validates_in_a_minimal_workflow(type_id: str) -> None:
    minimal: dict[str, dict[str, Any]] = {
        "http_request": {"url": "https://example.com"},
        "condition": {"expression": "true"},
        "transform": {"set": {}},
        "delay": {"seconds": 1},
        "log": {"message": "m"},
    }
    if CATALOG[type_id].is_trigger:
        result = check([node("start", type_id), LOG], [edge("start", "say")])
    else:
        port = CATALOG[type_id].outputs[0]
        result = check(
            [TRIGGER, node("x", type_id, minimal.get(type_id)), LOG], [edge("t", "x"), edge("x", "say", port)]
        )
    assert errors(result) == []


def test_long_paths_are_truncated_and_pass_through_values_are_bounded() -> None:
    key = "k" * 40
    body: Any = "{{ ("
    for _ in range(20):
        body = {key: body}
    deep: Any = 1
    for _ in range(MAX_CONFIG_DEPTH + 1):
        deep = [deep]
    result = check(
        [TRIGGER, node("r", "respond", {"body": body}, passThroughValues={"v": deep})],
        [edge("t", "r")],
    )
    paths = [issue.path for issue in result.errors]
    assert paths[0].startswith("spec.nodes[1].passThroughValues.v[0][0]")
    assert len(paths[1]) == 512
    assert paths[1].endswith("...")


def test_the_nodes_name_on_its_own_is_not_a_reference() -> None:
    assert check(
        [TRIGGER, node("a", "log", {"message": "{{ nodes | json }} {{ nodes[0] | default(1) }}"})],
        [edge("t", "a")],
    ).valid
