"""Graph editing without a cluster: ids, positions, the layout, merge patches, required scopes, and the
router's checks (which ports a connection gets, which validation errors block an edit)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tideflow.api.errors import ApiError
from tideflow.api.routers.graph import NodeCreate, _check_node, _default_port, _refuse_deep
from tideflow.core import graph
from tideflow.core.catalog import CATALOG
from tideflow.core.models import SCOPE_PATTERN, Node, WorkflowSpec

JSON = dict[str, Any]


def _box_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) < graph.NODE_WIDTH and abs(a[1] - b[1]) < graph.NODE_HEIGHT


# --- ids and positions ---------------------------------------------------------------------------


def test_new_node_ids_take_the_first_free_number_and_stay_valid() -> None:
    assert graph.new_node_id("log", set()) == "log_1"
    assert graph.new_node_id("log", {"log_1", "log_3"}) == "log_2"
    long_type = "a" * 63
    generated = graph.new_node_id(long_type, {long_type[:61] + "_1"})
    assert generated == long_type[:61] + "_2"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,63}", generated)


def test_new_connection_ids_are_readable_and_unique() -> None:
    assert graph.new_connection_id("a", "b", set()) == "c-a-b"
    assert graph.new_connection_id("a", "b", {"c-a-b", "c-a-b-2"}) == "c-a-b-3"


def test_a_new_node_goes_right_of_the_right_most_node() -> None:
    assert graph.next_position([]) == graph.ORIGIN
    placed = [(0.0, 0.0), (500.0, 80.0), (500.0, 40.0), (120.0, 900.0)]
    assert graph.next_position(placed) == (500.0 + graph.COLUMN_WIDTH, 40.0)


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), max_size=30))
def test_a_new_node_overlaps_no_existing_node(placed: list[tuple[float, float]]) -> None:
    new = graph.next_position(placed)
    assert not any(_box_overlap(new, old) for old in placed)


# --- layout --------------------------------------------------------------------------------------


def test_layout_puts_each_node_in_the_column_of_its_longest_path_from_the_triggers() -> None:
    nodes = ["t", "c", "yes", "no", "j", "late"]
    edges = [("t", "c"), ("c", "yes"), ("c", "no"), ("yes", "j"), ("no", "j"), ("t", "j"), ("j", "late")]
    positions = graph.layout(nodes, edges, first={"t"})
    x0, y0 = graph.ORIGIN
    column = {node: round((x - x0) / graph.COLUMN_WIDTH) for node, (x, _) in positions.items()}
    assert column == {"t": 0, "c": 1, "yes": 2, "no": 2, "j": 3, "late": 4}
    # The branches sit either side of the condition, the join between them again.
    assert positions["yes"][1] < positions["c"][1] < positions["no"][1]
    assert positions["yes"][1] + positions["no"][1] == 2 * positions["c"][1]
    assert positions["j"][1] == positions["c"][1] == positions["late"][1]
    assert min(y for _, y in positions.values()) == y0


def test_layout_puts_triggers_first_and_keeps_separate_chains_straight() -> None:
    positions = graph.layout(
        ["loose", "a1", "t1", "t2", "a2"], [("t1", "a1"), ("t2", "a2")], first={"t1", "t2"}
    )
    first_column = sorted((y, node) for node, (x, y) in positions.items() if x == graph.ORIGIN[0])
    assert [node for _, node in first_column] == ["t1", "t2", "loose"]
    assert positions["a1"][1] == positions["t1"][1]
    assert positions["a2"][1] == positions["t2"][1]


def test_layout_survives_cycles_self_loops_and_unknown_ends() -> None:
    positions = graph.layout(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a"), ("b", "b"), ("x", "a")])
    assert [positions[n][0] for n in "abc"] == [graph.ORIGIN[0] + k * graph.COLUMN_WIDTH for k in range(3)]
    assert graph.layout([], []) == {}


@st.composite
def _dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    count = draw(st.integers(1, 25))
    nodes = [f"n{i}" for i in range(count)]
    pairs = [(i, j) for i in range(count) for j in range(i + 1, count)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=40)) if pairs else []
    order = draw(st.permutations(nodes))
    return list(order), [(f"n{i}", f"n{j}") for i, j in chosen]


@settings(max_examples=200, deadline=None)
@given(_dags(), st.randoms(use_true_random=False))
def test_layout_never_overlaps_respects_edges_and_depends_only_on_the_graph(
    dag: tuple[list[str], list[tuple[str, str]]], rng: Any
) -> None:
    nodes, edges = dag
    positions = graph.layout(nodes, edges, first={nodes[0]})
    assert set(positions) == set(nodes)
    placed = list(positions.values())
    assert not any(_box_overlap(a, b) for i, a in enumerate(placed) for b in placed[i + 1 :])
    assert all(positions[s][0] < positions[t][0] for s, t in edges)
    assert all(x == int(x) and y == int(y) for x, y in placed)
    shuffled = list(edges)
    rng.shuffle(shuffled)
    assert graph.layout(nodes, shuffled, first={nodes[0]}) == positions


def test_cycle_through_finds_the_path_a_new_connection_would_close() -> None:
    edges = [("a", "b"), ("b", "c"), ("x", "y")]
    assert graph.cycle_through(edges, "c", "a") == ["a", "b", "c"]
    assert graph.cycle_through(edges, "a", "c") is None
    assert graph.cycle_through(edges, "y", "a") is None


# --- merge patches -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # the examples of RFC 7396, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7396(target: Any, patch: Any, result: Any) -> None:
    assert graph.merge_patch(target, patch) == result


# --- required scopes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://API.Example.com/users/{{ trigger.inputs.id }}", "api.example.com"),
        ("http://user:secret@host.example:8080/path", "host.example"),
        ("https://[2001:db8::1]:443/", "[2001:db8::1]"),
        ("https://bücher.example/", "xn--bcher-kva.example"),
        ("https://{{ run.tenant }}.hooks.example.org/in", "*.hooks.example.org"),
        ("https://{{ a }}.{{ b }}.org", "*"),
        ("https://api.{{ domain }}/x", "*"),
        ("{{ trigger.inputs.url }}", "*"),
        ("{{ scheme }}://example.com", "*"),
        ("relative/path", None),
        ("https:///nothing", None),
    ],
)
def test_the_host_an_http_node_calls(url: str, host: str | None) -> None:
    assert graph.http_host(url) == host


def _node(node_id: str, node_type: str, config: JSON) -> Node:
    return Node(id=node_id, type=node_type, config=config)


def test_required_scopes_name_the_secrets_and_hosts_and_the_nodes_that_need_them() -> None:
    token = {"type": "bearer", "secretRef": {"name": "crm", "key": "token"}}
    nodes = [
        _node("fetch", "http_request", {"url": "https://api.example.com/a", "auth": token}),
        _node("again", "http_request", {"url": "https://api.example.com/b", "auth": token}),
        _node(
            "hook", "webhook_trigger", {"auth": {"type": "hmac", "secretRef": {"name": "hooks", "key": "k"}}}
        ),
        _node("odd", "transform", {"set": {"secretRef": {"name": "Not A Secret Name", "key": "k"}}}),
        _node("note", "log", {"message": "https://elsewhere.example"}),
    ]
    needs = graph.required_scopes(nodes)
    assert [(n.scope, n.nodes) for n in needs] == [
        ("http:request:api.example.com", ["fetch", "again"]),
        ("secrets:read:crm", ["fetch", "again"]),
        ("secrets:read:hooks", ["hook"]),
    ]
    assert needs[1].reasons == [
        "fetch reads key 'token' of Secret 'crm'",
        "again reads key 'token' of Secret 'crm'",
    ]
    assert graph.required_scopes([]) == []


@settings(max_examples=300)
@given(st.text(max_size=80), st.text(min_size=1, max_size=300))
def test_every_derived_scope_fits_the_spec_field(url: str, secret: str) -> None:
    config = {"url": url, "auth": {"type": "bearer", "secretRef": {"name": secret, "key": "k"}}}
    scopes = [need.scope for need in graph.required_scopes([_node("n", "http_request", config)])]
    spec = WorkflowSpec.model_validate({"requiredScopes": scopes})
    assert spec.required_scopes == scopes
    assert all(re.fullmatch(SCOPE_PATTERN, scope) for scope in scopes)


def test_the_spec_field_refuses_repeats_and_malformed_scopes() -> None:
    assert WorkflowSpec.model_validate({}).to_dict().get("requiredScopes") is None
    assert WorkflowSpec.model_validate({"requiredScopes": []}).to_dict()["requiredScopes"] == []
    for bad in (["secrets:read:a", "secrets:read:a"], ["no scope here"], ["secrets:read:"], ["x:y:a b"]):
        with pytest.raises(ValidationError):
            WorkflowSpec.model_validate({"requiredScopes": bad})


# --- the router's checks -------------------------------------------------------------------------


def test_a_new_node_names_its_type_by_node_id_or_its_alias_node_type() -> None:
    assert NodeCreate.model_validate({"nodeId": "log"}).type_id == "log"
    assert NodeCreate.model_validate({"nodeType": "log"}).type_field == "body.nodeType"
    assert NodeCreate.model_validate({"nodeId": "log", "nodeType": "log"}).type_id == "log"
    for body in ({}, {"nodeId": "log", "nodeType": "delay"}, {"nodeId": "log", "colour": "red"}):
        with pytest.raises(ValidationError):
            NodeCreate.model_validate(body)


def test_ports_default_to_output_and_input_or_the_only_port() -> None:
    condition, log = CATALOG["condition"], CATALOG["log"]
    assert _default_port(log.outputs, "output", None, "output", "n", log) == ("output", "")
    assert _default_port(condition.outputs, "output", "false", "output", "c", condition) == ("false", "")
    port, problem = _default_port(condition.outputs, "output", None, "output", "c", condition)
    assert port is None
    assert problem == "required: condition node 'c' has the output ports true, false"
    port, problem = _default_port(log.inputs, "input", "ai", "input", "n", log)
    assert port is None
    assert "no input port 'ai'" in problem
    agent_like = ("input", "ai", "tools")
    assert _default_port(agent_like, "input", None, "input", "a", log) == ("input", "")
    assert _default_port(agent_like, "input", "tools", "input", "a", log) == ("tools", "")


def _spec(*nodes: JSON) -> JSON:
    return {
        "nodes": [{"id": "start", "type": "manual_trigger"}, *nodes],
        "connections": [{"id": f"c{i}", "source": "start", "target": n["id"]} for i, n in enumerate(nodes)],
    }


def test_an_edit_is_refused_only_for_errors_it_introduces_in_the_fields_it_changes() -> None:
    broken: JSON = {"id": "fetch", "type": "http_request", "config": {"url": "{{ gone.url }}"}}
    before = _spec(broken)
    # The old error (a reference to a missing node) does not block an unrelated change of the config...
    after = _spec({**broken, "config": {**broken["config"], "method": "POST"}})
    _check_node(before, after, "fetch", {"config": "body"})
    # ...but a new one does, at the body's path.
    worse = _spec({**broken, "config": {**broken["config"], "method": "FETCH"}})
    with pytest.raises(ApiError) as refused:
        _check_node(before, worse, "fetch", {"config": "body"})
    assert (refused.value.status, [d.path for d in refused.value.details]) == (422, ["body.method"])
    # An empty config is a node not configured yet, not an error.
    _check_node(None, _spec({"id": "fetch", "type": "http_request"}), "fetch", {"config": "body.config"})
    # Errors elsewhere in the node are not the edit's business.
    mapped = _spec({"id": "fetch", "type": "http_request", "inputMappings": {"x": "{{ oops"}})
    _check_node(None, mapped, "fetch", {"config": "body.config"})
    with pytest.raises(ApiError) as refused:
        _check_node(None, mapped, "fetch", {"inputMappings": "body.inputMappings"})
    assert [d.path for d in refused.value.details] == ["body.inputMappings.x"]


def test_values_nested_deeper_than_validation_allows_are_refused_before_anything_recurses() -> None:
    def nested(depth: int) -> Any:
        value: Any = "leaf"
        for level in range(depth):
            value = {"k": value} if level % 2 else [value]
        return value

    _refuse_deep(nested(32), "body.config")
    with pytest.raises(ApiError) as refused:
        _refuse_deep(nested(5000), "body.config")
    assert [d.path for d in refused.value.details] == ["body.config"]
