"""Graph editing over HTTP: nodes, connections, layout and required scopes, on the real API and sandbox.

Each refusal is checked to change nothing (the Workflow's generation and spec stay the same), and
concurrent node additions against one workflow are checked to lose none of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.integration.api.conftest import Stack, workflow_body
from tideflow.core import names

JSON = dict[str, Any]
BASE = "/api/v1/workflows"


def _new_workflow(api: httpx.Client, name: str, **fields: Any) -> str:
    answer = api.post(BASE, json=workflow_body(name, **fields))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowId"])


def _stored(stack: Stack, workflow_id: str) -> JSON:
    """The Workflow as the cluster has it (the API does not show ``requiredScopes`` or the generation)."""
    name = workflow_id.removeprefix("wf_")
    path = f"/apis/{names.API_VERSION}/namespaces/{stack.org}/workflows/{name}"
    answer = httpx.get(stack.sandbox.url + path, timeout=30)
    assert answer.status_code == 200, answer.text
    obj: JSON = answer.json()
    return obj


def _version(stack: Stack, workflow_id: str) -> tuple[int, JSON]:
    """``(metadata.generation, spec)``: what a spec write changes (the operator's status writes do not)."""
    obj = _stored(stack, workflow_id)
    return int(obj["metadata"]["generation"]), obj["spec"]


def _refused(answer: httpx.Response, status: int, path: str | None = None) -> JSON:
    assert answer.status_code == status, answer.text
    error: JSON = answer.json()["error"]
    if path is not None:
        assert path in [detail["path"] for detail in error["details"]], error
    return error


def _overlap(a: JSON, b: JSON) -> bool:
    """Whether two node boxes (240 x 100, as the layout assumes) overlap."""
    return bool(abs(a["x"] - b["x"]) < 240 and abs(a["y"] - b["y"]) < 100)


def test_nodes_are_added_from_the_catalog_listed_updated_and_removed(stack: Stack) -> None:
    with stack.client(stack.key("node-editor")) as api:
        workflow_id = _new_workflow(api, "Nodes")
        nodes_url = f"{BASE}/{workflow_id}/nodes"
        before = {n["id"]: n for n in api.get(nodes_url).json()["nodes"]}

        added = api.post(nodes_url, json={"nodeId": "http_request", "config": {"url": "https://example.com"}})
        assert added.status_code == 201, added.text
        node = added.json()
        assert (node["id"], node["type"], node["label"], node["version"]) == (
            "http_request_1",
            "http_request",
            "HTTP request",
            "1",
        )
        assert (node["category"], node["hasConfig"]) == ("action", True)
        right_most = max(n["position"]["x"] for n in before.values())
        assert node["position"]["x"] >= right_most + 240
        assert not any(_overlap(node["position"], n["position"]) for n in before.values())

        logged = api.post(
            nodes_url,
            json={"nodeType": "log", "id": "note", "label": "Note", "config": {"message": "hi"}},
        )
        assert logged.status_code == 201, logged.text
        assert (logged.json()["id"], logged.json()["label"]) == ("note", "Note")
        assert logged.json()["position"]["x"] > node["position"]["x"]

        listed = api.get(nodes_url).json()
        assert listed["count"] == 4
        by_id = {n["id"]: n for n in listed["nodes"]}
        assert (by_id["start"]["category"], by_id["start"]["hasConfig"]) == ("trigger", False)
        assert (by_id["start"]["inboundConnections"], by_id["start"]["outboundConnections"]) == (0, 1)
        assert (by_id["echo"]["inboundConnections"], by_id["echo"]["outboundConnections"]) == (1, 0)
        assert api.get(f"{nodes_url}/note").json()["config"] == {"message": "hi"}

        # A wrapped update merges the config (null removes a key) and sets the label.
        wrapped = api.put(
            f"{nodes_url}/http_request_1",
            json={"config": {"method": "POST", "headers": {"A": "1"}}, "label": "Call"},
        )
        assert wrapped.status_code == 200, wrapped.text
        assert wrapped.json()["config"] == {
            "url": "https://example.com",
            "method": "POST",
            "headers": {"A": "1"},
        }
        assert wrapped.json()["label"] == "Call"
        # A body without the wrapper is the config itself.
        bare = api.put(f"{nodes_url}/http_request_1", json={"headers": {"B": "2"}, "method": None})
        assert bare.status_code == 200, bare.text
        assert bare.json()["config"] == {"url": "https://example.com", "headers": {"A": "1", "B": "2"}}

        mappings = api.put(
            f"{nodes_url}/note/input-mappings", json={"inputMappings": {"who": "{{ start.inputs.who }}"}}
        )
        assert mappings.status_code == 200, mappings.text
        assert mappings.json()["inputMappings"] == {"who": "{{ start.inputs.who }}"}
        values = api.put(f"{nodes_url}/note/passthrough-values", json={"team": "ops", "limit": 3})
        assert values.status_code == 200, values.text
        assert values.json()["passThroughValues"] == {"team": "ops", "limit": 3}

        deleted = api.delete(f"{nodes_url}/echo")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {
            "workflowId": workflow_id,
            "nodeId": "echo",
            "connectionsRemoved": 1,
            "removedConnectionIds": ["c1"],
        }
        workflow = api.get(f"{BASE}/{workflow_id}").json()
        assert [n["id"] for n in workflow["nodes"]] == ["start", "http_request_1", "note"]
        assert workflow["connections"] == []
        _refused(api.delete(f"{nodes_url}/echo"), 404)
        _refused(api.put(f"{nodes_url}/echo", json={"config": {}}), 404)


def test_bad_node_edits_are_refused_with_the_field_and_change_nothing(stack: Stack) -> None:
    with stack.client(stack.key("careless")) as api:
        workflow_id = _new_workflow(api, "Guarded")
        nodes_url = f"{BASE}/{workflow_id}/nodes"
        version = _version(stack, workflow_id)

        unknown = _refused(api.post(nodes_url, json={"nodeId": "teleport"}), 422, "body.nodeId")
        assert "unknown node type 'teleport'" in unknown["message"]
        _refused(api.post(nodes_url, json={"nodeType": "teleport"}), 422, "body.nodeType")
        _refused(api.post(nodes_url, json={"label": "no type"}), 422)
        duplicate = _refused(api.post(nodes_url, json={"nodeId": "log", "id": "echo"}), 409, "body.id")
        assert duplicate["code"] == "conflict"
        _refused(
            api.post(
                nodes_url, json={"nodeId": "http_request", "config": {"url": "https://x.io", "verb": "GET"}}
            ),
            422,
            "body.config.verb",
        )
        _refused(api.post(nodes_url, json={"nodeId": "log", "id": "run"}), 422, "body.id")
        _refused(api.post(nodes_url, json={"nodeId": "log", "version": "9"}), 422, "body.version")
        _refused(
            api.post(nodes_url, json={"nodeId": "log", "config": {"message": "{{ nowhere.x }}"}}),
            422,
            "body.config.message",
        )
        _refused(
            api.put(f"{nodes_url}/echo", json={"config": {"set": "not an object"}}), 422, "body.config.set"
        )
        _refused(api.put(f"{nodes_url}/echo", json={"unknownKey": 1}), 422, "body.unknownKey")
        _refused(api.put(f"{nodes_url}/echo", json={"config": {}, "lable": "typo"}), 422, "body.lable")
        _refused(api.put(f"{nodes_url}/echo/input-mappings", json={"x": "{{ broken"}), 422, "body.x")
        assert _version(stack, workflow_id) == version
        assert api.get(f"{nodes_url}/echo").json()["config"] == {
            "set": {"greeting": "hello {{ start.inputs.who }}"}
        }


def test_connections_default_their_ports_and_refuse_missing_nodes_ports_and_cycles(stack: Stack) -> None:
    with stack.client(stack.key("wirer")) as api:
        workflow_id = _new_workflow(api, "Wired")
        nodes_url, connections_url = f"{BASE}/{workflow_id}/nodes", f"{BASE}/{workflow_id}/connections"
        condition = {"nodeId": "condition", "id": "check", "config": {"expression": "start.inputs.ok"}}
        assert api.post(nodes_url, json=condition).status_code == 201
        assert (
            api.post(nodes_url, json={"nodeId": "log", "id": "yes", "config": {"message": "y"}}).status_code
            == 201
        )
        version = _version(stack, workflow_id)

        refusals = [
            ({"source": "start", "target": "ghost"}, 422, "body.target"),
            ({"source": "ghost", "target": "check"}, 422, "body.source"),
            ({"source": "start", "target": "check", "sourcePort": "true"}, 422, "body.sourcePort"),
            ({"source": "start", "target": "check", "targetPort": "ai"}, 422, "body.targetPort"),
            ({"source": "start", "target": "check", "targetPort": "tools"}, 422, "body.targetPort"),
            ({"source": "check", "target": "yes"}, 422, "body.sourcePort"),  # a condition has true/false
            ({"source": "yes", "target": "start"}, 422, "body.target"),  # a trigger takes no input
            ({"source": "echo", "target": "echo"}, 422, "body.target"),
            ({"source": "start", "target": "check", "sourcePort": ""}, 422, "body.sourcePort"),
            ({"source": "start", "target": "echo"}, 409, None),  # c1 joins them already
            ({"id": "c1", "source": "start", "target": "check"}, 409, "body.id"),
        ]
        for body, status, path in refusals:
            _refused(api.post(connections_url, json=body), status, path)
        assert _version(stack, workflow_id) == version

        first = api.post(connections_url, json={"source": "start", "target": "check"})
        assert first.status_code == 201, first.text
        assert first.json() == {
            "id": "c-start-check",
            "source": "start",
            "sourcePort": "output",
            "target": "check",
            "targetPort": "input",
        }
        branch = api.post(connections_url, json={"source": "check", "sourcePort": "true", "target": "yes"})
        assert branch.status_code == 201, branch.text
        assert branch.json()["sourcePort"] == "true"
        cycle = _refused(
            api.post(connections_url, json={"source": "yes", "target": "check"}), 422, "body.target"
        )
        assert "cycle" in cycle["message"]

        listed = api.get(connections_url).json()
        assert [c["id"] for c in listed["connections"]] == ["c1", "c-start-check", "c-check-yes"]
        assert api.post(f"{BASE}/{workflow_id}/validate").json()["valid"] is True

        assert api.delete(f"{connections_url}/c-check-yes").status_code == 204
        _refused(api.delete(f"{connections_url}/c-check-yes"), 404)
        assert [c["id"] for c in api.get(connections_url).json()["connections"]] == ["c1", "c-start-check"]


def test_concurrent_node_additions_are_all_kept(stack: Stack) -> None:
    key = stack.key("crowd")
    with stack.client(key) as api:
        workflow_id = _new_workflow(api, "Crowded")
    count = 30

    async def add_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, headers={"X-API-Key": key}, timeout=90) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{BASE}/{workflow_id}/nodes",
                        json={"nodeId": "log", "config": {"message": f"note {number}"}},
                    )
                    for number in range(count)
                )
            )

    answers = asyncio.run(add_all())
    assert [a.status_code for a in answers] == [201] * count, [
        a.text for a in answers if a.status_code != 201
    ]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == count
    with stack.client(key) as api:
        nodes = api.get(f"{BASE}/{workflow_id}/nodes").json()["nodes"]
    assert ids <= {n["id"] for n in nodes}
    assert {n["config"]["message"] for n in nodes if n["id"] in ids} == {f"note {i}" for i in range(count)}
    # The two nodes of workflow_body have no position (both at 0, 0); no new node overlaps any node.
    for node in nodes:
        others = [n for n in nodes if n["id"] != node["id"]]
        if node["id"] in ids:
            assert not any(_overlap(node["position"], other["position"]) for other in others), node


def test_layout_arranges_layers_without_overlaps_and_a_second_call_changes_nothing(stack: Stack) -> None:
    with stack.client(stack.key("tidy")) as api:
        workflow_id = _new_workflow(api, "Messy")
        nodes_url, connections_url = f"{BASE}/{workflow_id}/nodes", f"{BASE}/{workflow_id}/connections"
        for node in (
            {"nodeId": "condition", "id": "check", "config": {"expression": "echo.greeting"}},
            {"nodeId": "log", "id": "yes", "config": {"message": "y"}},
            {"nodeId": "log", "id": "no", "config": {"message": "n"}},
            {"nodeId": "respond", "id": "reply"},
        ):
            assert api.post(nodes_url, json={**node, "position": {"x": 0.0, "y": 0.0}}).status_code == 201
        for source, port, target in (
            ("echo", None, "check"),
            ("check", "true", "yes"),
            ("check", "false", "no"),
            ("yes", None, "reply"),
            ("no", None, "reply"),
        ):
            body = {"source": source, "target": target, **({"sourcePort": port} if port else {})}
            assert api.post(connections_url, json=body).status_code == 201

        first = api.post(f"{BASE}/{workflow_id}/layout")
        assert first.status_code == 200, first.text
        result = first.json()
        assert result["changed"] is True
        assert result["layers"] == 5
        assert result["nodesRepositioned"] >= 5
        positions = result["positions"]
        columns = {node: positions[node]["x"] for node in positions}
        assert columns["start"] < columns["echo"] < columns["check"] < columns["yes"] < columns["reply"]
        assert columns["yes"] == columns["no"]
        assert positions["yes"]["y"] != positions["no"]["y"]
        stored = {n["id"]: n["position"] for n in api.get(nodes_url).json()["nodes"]}
        assert stored == positions
        assert not any(
            _overlap(a, b) for i, a in enumerate(stored.values()) for b in list(stored.values())[i + 1 :]
        )

        version = _version(stack, workflow_id)
        second = api.post(f"{BASE}/{workflow_id}/layout").json()
        assert (second["changed"], second["nodesRepositioned"], second["positions"]) == (False, 0, positions)
        assert _version(stack, workflow_id) == version


def test_compute_scopes_stores_the_secrets_and_hosts_the_nodes_need(stack: Stack) -> None:
    with stack.client(stack.key("auditor")) as api:
        workflow_id = _new_workflow(api, "Reaching out")
        nodes_url = f"{BASE}/{workflow_id}/nodes"
        calls = [
            {
                "url": "https://API.example.com/users/{{ start.inputs.who }}",
                "auth": {"type": "bearer", "secretRef": {"name": "crm", "key": "token"}},
            },
            {"url": "https://{{ start.inputs.tenant }}.hooks.example.org/in"},
            {"url": "{{ start.inputs.callback }}"},
        ]
        for config in calls:
            assert api.post(nodes_url, json={"nodeId": "http_request", "config": config}).status_code == 201
        hook = {"path": "in", "auth": {"type": "bearer", "secretRef": {"name": "hooks", "key": "token"}}}
        assert (
            api.post(nodes_url, json={"nodeId": "webhook_trigger", "id": "hook", "config": hook}).status_code
            == 201
        )

        answer = api.post(f"{BASE}/{workflow_id}/compute-scopes")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        expected = [
            "http:request:*",
            "http:request:*.hooks.example.org",
            "http:request:api.example.com",
            "secrets:read:crm",
            "secrets:read:hooks",
        ]
        assert result["requiredScopes"] == expected
        assert (result["previousScopes"], result["changed"]) == (None, True)
        assert result["unexposedSecrets"] == ["crm", "hooks"]
        needs = {need["scope"]: need["nodes"] for need in result["needs"]}
        assert needs["secrets:read:hooks"] == ["hook"]
        assert needs["http:request:api.example.com"] == ["http_request_1"]

        assert _stored(stack, workflow_id)["spec"]["requiredScopes"] == expected

        version = _version(stack, workflow_id)
        again = api.post(f"{BASE}/{workflow_id}/compute-scopes").json()
        assert (again["changed"], again["previousScopes"], again["requiredScopes"]) == (
            False,
            expected,
            expected,
        )
        assert _version(stack, workflow_id) == version

        assert api.delete(f"{nodes_url}/hook").status_code == 200
        fewer = api.post(f"{BASE}/{workflow_id}/compute-scopes").json()
        assert fewer["changed"] is True
        assert "secrets:read:hooks" not in fewer["requiredScopes"]


def test_graph_routes_need_the_scopes_and_respect_visibility(stack: Stack) -> None:
    owner_key = stack.key("graph-owner")
    with stack.client(owner_key) as owner:
        private = _new_workflow(owner, "Private graph")
        shared = _new_workflow(owner, "Shared graph", sharedWith=["graph-reader"])
    with stack.client(stack.key("graph-reader", ("workflows:read", "workflows:write"))) as reader:
        assert reader.get(f"{BASE}/{shared}/nodes").status_code == 200
        _refused(reader.post(f"{BASE}/{shared}/nodes", json={"nodeId": "log"}), 403)
        _refused(reader.post(f"{BASE}/{shared}/layout"), 403)
        _refused(reader.get(f"{BASE}/{private}/nodes"), 404)
        _refused(reader.delete(f"{BASE}/{private}/connections/c1"), 404)
    with stack.client(stack.key("graph-viewer", ("workflows:read",))) as viewer:
        _refused(viewer.post(f"{BASE}/{private}/compute-scopes"), 403)
    with stack.client() as anonymous:
        _refused(anonymous.get(f"{BASE}/{private}/nodes"), 401)
