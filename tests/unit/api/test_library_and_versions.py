"""Built-in templates, versions, sharing and discovery helpers, without a cluster.

Every built-in template validates and runs to completion on the engine (HTTP answered in process), as
the examples do; the API's copies of the operator's and runtime's naming rules (Deployment names,
webhook paths) are checked against the originals so they cannot drift apart.
"""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.unit.runtime.helpers import run_virtual, services
from tideflow.api.app import create_app
from tideflow.api.keys import KeyRing
from tideflow.api.routers import library, sharing, versions
from tideflow.api.settings import ApiSettings
from tideflow.core.kube import Conflict, NotFound
from tideflow.core.models import RunPhase, WorkflowDefinition, WorkflowSpec
from tideflow.core.validation import validate_workflow
from tideflow.operator.builders import child_name
from tideflow.runtime.engine import TriggerEvent, WorkflowEngine
from tideflow.runtime.webhooks import webhook_routes

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = library.builtin_templates()
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _engine(spec: WorkflowSpec) -> WorkflowEngine:
    hosts = {httpx.URL(n.config["url"]).host: ["93.184.216.34"] for n in spec.nodes if "url" in n.config}
    body = {"orders": [{"id": 1}, {"id": 2}], "ok": True}
    return WorkflowEngine(
        spec,
        services=services(handler=lambda request: httpx.Response(200, json=body), resolver=hosts),
    )


def _statuses(nodes: list[Any]) -> dict[str, str]:
    return {entry.node_id: entry.status for entry in nodes}


def test_the_built_in_templates_cover_webhook_schedule_and_approval() -> None:
    assert set(TEMPLATES) >= {"tpl_webhook-to-http", "tpl_scheduled-report", "tpl_approval-flow"}
    triggers = {
        n["type"] for spec in TEMPLATES.values() for n in spec["nodes"] if n["type"].endswith("_trigger")
    }
    assert {"webhook_trigger", "schedule_trigger", "manual_trigger"} <= triggers
    for template_id, spec in TEMPLATES.items():
        assert spec.get("displayName"), template_id
        assert spec.get("description"), template_id
        assert "template" in spec["tags"], template_id
        assert (spec["deployed"], spec["state"]) == (False, "Draft"), template_id


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_each_built_in_template_validates_without_errors_or_warnings(template_id: str) -> None:
    result = validate_workflow(WorkflowSpec.model_validate(TEMPLATES[template_id]))
    assert (result.errors, result.warnings) == ([], [])


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_each_built_in_template_runs_to_completion(template_id: str) -> None:
    spec = WorkflowSpec.model_validate(TEMPLATES[template_id])
    engine = _engine(spec)
    trigger = next(node.type for node in spec.nodes if node.type.endswith("_trigger"))
    inputs = {"item": "laptop", "amount": 1200, "requester": "ann", "event": "signup"}
    event = TriggerEvent(type=trigger.removesuffix("_trigger"), inputs=inputs, run_id="r1")
    result, _ = run_virtual(engine.run(event))
    if result.phase is RunPhase.AWAITING_INTERACTION:
        # An approval: both decisions must finish the run, each on its own branch.
        assert result.snapshot is not None
        for approved in (True, False):
            resumed, _ = run_virtual(
                engine.resume(result.snapshot, {"approved": approved, "decidedBy": "bob", "comment": "ok"})
            )
            assert resumed.phase is RunPhase.COMPLETED, resumed.error
            assert "skipped" in _statuses(resumed.nodes).values()
        return
    assert result.phase is RunPhase.COMPLETED, result.error
    assert "failed" not in _statuses(result.nodes).values()


def test_the_webhook_template_forwards_the_payload_and_answers_the_caller() -> None:
    spec = WorkflowSpec.model_validate(TEMPLATES["tpl_webhook-to-http"])
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, json={"received": True})

    engine = WorkflowEngine(
        spec, services=services(handler=upstream, resolver={"httpbin.org": ["93.184.216.34"]})
    )
    result, _ = run_virtual(engine.run(TriggerEvent(type="webhook", inputs={"event": "signup"}, run_id="r7")))
    assert result.phase is RunPhase.COMPLETED, result.error
    assert [request.method for request in sent] == ["POST"]
    forwarded = httpx.Response(200, content=sent[0].content).json()
    assert forwarded["payload"] == {"event": "signup"}
    assert forwarded["runId"] == "r7"
    assert result.response is not None
    assert result.response.status == 202


def test_the_approval_template_places_the_order_only_when_approved() -> None:
    spec = WorkflowSpec.model_validate(TEMPLATES["tpl_approval-flow"])
    engine = _engine(spec)
    paused, _ = run_virtual(engine.run(TriggerEvent(inputs={"item": "desk", "amount": 300}, run_id="r")))
    assert paused.phase is RunPhase.AWAITING_INTERACTION
    assert paused.awaiting[0].node_id == "approve"
    assert paused.snapshot is not None
    approved, _ = run_virtual(engine.resume(paused.snapshot, {"approved": True, "decidedBy": "m"}))
    rejected, _ = run_virtual(engine.resume(paused.snapshot, {"approved": False, "decidedBy": "m"}))
    assert _statuses(approved.nodes)["place_order"] == "completed"
    assert _statuses(approved.nodes)["log_rejection"] == "skipped"
    assert _statuses(rejected.nodes)["place_order"] == "skipped"
    assert _statuses(rejected.nodes)["log_rejection"] == "completed"


def test_the_templates_ship_as_package_data() -> None:
    with (ROOT / "pyproject.toml").open("rb") as stream:
        package_data = tomllib.load(stream)["tool"]["setuptools"]["package-data"]
    shipped = {
        path.relative_to(ROOT / "tideflow" / "api").as_posix()
        for pattern in package_data["tideflow.api"]
        for path in (ROOT / "tideflow" / "api").glob(pattern)
    }
    on_disk = {f"templates/{path.name}" for path in (ROOT / "tideflow" / "api" / "templates").glob("*")}
    assert shipped == on_disk
    assert len(TEMPLATES) == len(on_disk)


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_webhook_paths_are_the_runtimes(template_id: str) -> None:
    spec = TEMPLATES[template_id]
    runtime = webhook_routes(WorkflowDefinition.model_validate({"nodes": spec["nodes"]}))
    assert {path: (node, method) for node, path, method, _ in library.webhook_paths(spec)} == {
        route.path: (route.node_id, route.method) for route in runtime.values()
    }


def test_webhook_paths_default_to_the_node_id_and_drop_slashes() -> None:
    nodes = [
        {"id": "hook", "type": "webhook_trigger"},
        {"id": "other", "type": "webhook_trigger", "config": {"path": "/orders/new/", "method": "put"}},
        {
            "id": "signed",
            "type": "webhook_trigger",
            "config": {"path": "s", "auth": {"type": "bearer", "secretRef": {"name": "n", "key": "k"}}},
        },
        {"id": "start", "type": "manual_trigger"},
    ]
    runtime = webhook_routes(WorkflowDefinition.model_validate({"nodes": nodes}))
    found = library.webhook_paths({"nodes": nodes})
    assert found == [
        ("hook", "hook", None, False),
        ("other", "orders/new", "PUT", False),
        ("signed", "s", None, True),
    ]
    assert sorted(path for _, path, _, _ in found) == sorted(runtime)


@pytest.mark.parametrize("name", ["hello", "daily-etl", "a" * 63])
def test_the_deployment_name_is_the_operators(name: str) -> None:
    assert library.deployment_name(name) == child_name(name)


def test_version_names_are_deterministic_distinct_and_never_a_workflow_name() -> None:
    tags = ["v1", "V1", "1.0.0", "release_2025-06-01", "a" * 63]
    names = [versions.version_name("a" * 63, tag) for tag in tags]
    assert len(set(names)) == len(tags)
    assert versions.version_name("wf", "v1") == versions.version_name("wf", "v1")
    assert versions.version_name("wf", "v1") != versions.version_name("wf2", "v1")
    for name in names:
        assert len(name) <= 253
        assert _DNS_SUBDOMAIN.match(name), name
        assert "." in name  # a Workflow name is a DNS label: no version can be a runtime's ConfigMap


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1", True),
        ("1.4.0", True),
        ("2025-06-01_release", True),
        ("a" * 63, True),
        ("", False),
        ("-v1", False),
        ("v1.", False),
        ("v 1", False),
        ("v/1", False),
        ("a" * 64, False),
    ],
)
def test_version_tags_are_label_values(tag: str, ok: bool) -> None:
    assert bool(re.match(versions.VERSION_TAG_PATTERN, tag)) is ok
    if ok:
        versions.VersionCreate.model_validate({"versionTag": tag})
    else:
        with pytest.raises(ValueError, match=r"versionTag|version_tag"):
            versions.VersionCreate.model_validate({"versionTag": tag})


def test_a_snapshot_keeps_the_definition_not_access_or_deployment() -> None:
    spec = WorkflowSpec.model_validate(
        {
            "displayName": "Daily",
            "description": "d",
            "tags": ["x"],
            "owner": "ann",
            "sharedWith": ["bob"],
            "isPublic": True,
            "isTemplate": True,
            "state": "Active",
            "deployed": True,
            "replicas": 3,
            "lifecycle": {"type": "on-demand"},
            "schedule": {"type": "interval", "value": "5 minutes"},
            "nodes": [{"id": "t", "type": "manual_trigger"}],
        }
    ).to_dict()
    snapshot = versions.snapshot_of(spec)
    assert set(snapshot) == {"displayName", "description", "nodes", "connections", "settings", "schedule"}
    assert snapshot["nodes"] == spec["nodes"]


class _Secrets:
    """Key Secrets of one namespace, one of them malformed."""

    def __init__(self, users: list[str]) -> None:
        self.items = [{"data": {"user": base64.b64encode(user.encode()).decode()}} for user in users] + [
            {"data": {"user": "not base64!"}},
            {"data": {}},
        ]
        self.selectors: list[str | None] = []

    async def list_all(self, resource: object, namespace: str, *, label_selector: str | None = None) -> Any:
        self.selectors.append(label_selector)
        return self.items


async def test_organization_users_are_key_holders_and_the_bootstrap_admin() -> None:
    kube = _Secrets(["ann", "bob"])
    ring = KeyRing(kube)  # type: ignore[arg-type]
    ring.set_bootstrap("b" * 32, "org")
    context: Any = type("C", (), {"kube": kube, "keys": ring})()
    assert await sharing.organization_users(context, "org") == {"ann", "bob", "admin"}
    assert await sharing.organization_users(context, "elsewhere") == {"ann", "bob"}
    assert kube.selectors == ["tideflow.io/api-key=true"] * 2


class _EmptyCluster:
    """A cluster with no objects: enough for the API to start and answer lists."""

    async def __aenter__(self) -> _EmptyCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def list_all(self, resource: object, namespace: str, **_: Any) -> list[Any]:
        return []

    async def get(self, resource: object, namespace: str, name: str, subresource: str | None = None) -> Any:
        raise NotFound(404, "NotFound", f"{name} not found")


@pytest.mark.parametrize(
    ("method", "path", "status", "answer"),
    [
        ("GET", "/api/v1/workflows/templates", 200, '"source":"builtin"'),
        ("GET", "/api/v1/workflows/stats", 200, '"byStatus"'),
        ("GET", "/api/v1/workflows/discover?appId=shop", 200, '"appId":"shop"'),
        (
            "POST",
            "/api/v1/workflows/templates/tpl_nothing/instantiate",
            404,
            "template tpl_nothing not found",
        ),
    ],
)
def test_the_library_routes_come_before_get_workflow(
    method: str, path: str, status: int, answer: str
) -> None:
    settings = ApiSettings(bootstrap_api_key="k" * 32, bootstrap_org="org")
    app = create_app(settings, kube_factory=lambda: _EmptyCluster())  # type: ignore[arg-type,return-value]
    with TestClient(app) as client:
        got = client.request(method, path, headers={"X-API-Key": "k" * 32})
    assert (got.status_code, answer in got.text) == (status, True), got.text


class _Cluster(_EmptyCluster):
    """One Workflow (uid ``uid-now``) and whatever ConfigMaps the test puts in, with create conflicts."""

    def __init__(self, config_maps: list[Any]) -> None:
        self.workflow = {
            "metadata": {"name": "w", "namespace": "org", "uid": "uid-now", "generation": 1},
            "spec": {"owner": "admin", "nodes": [{"id": "t", "type": "manual_trigger"}]},
        }
        self.config_maps = {cm["metadata"]["name"]: cm for cm in config_maps}
        self.created: list[str] = []
        self.deleted: list[str] = []

    async def list_all(self, resource: object, namespace: str, **_: Any) -> list[Any]:
        return list(self.config_maps.values()) if getattr(resource, "plural", "") == "configmaps" else []

    async def get(self, resource: object, namespace: str, name: str, subresource: str | None = None) -> Any:
        if getattr(resource, "plural", "") == "workflows" and name == "w":
            return self.workflow
        if getattr(resource, "plural", "") == "configmaps" and name in self.config_maps:
            return self.config_maps[name]
        raise NotFound(404, "NotFound", f"{name} not found")

    async def get_or_none(self, resource: object, namespace: str, name: str) -> Any:
        try:
            return await self.get(resource, namespace, name)
        except NotFound:
            return None

    async def create(self, resource: object, namespace: str, body: Any) -> Any:
        name = body["metadata"]["name"]
        if name in self.config_maps:
            raise Conflict(409, "AlreadyExists", f"{name} exists")
        self.created.append(name)
        self.config_maps[name] = body
        return body

    async def delete(self, resource: object, namespace: str, name: str, **_: Any) -> Any:
        self.deleted.append(name)
        del self.config_maps[name]
        return {}


def _version_map(tag: str, owner_uid: str, data: str = '{"nodes": []}') -> dict[str, Any]:
    return {
        "metadata": {
            "name": versions.version_name("w", tag),
            "labels": {versions.LABEL_VERSION: tag, versions.LABEL_VERSION_OF: "w"},
            "annotations": {},
            "ownerReferences": [{"kind": "Workflow", "uid": owner_uid, "name": "w"}],
        },
        "immutable": True,
        "data": {"spec.json": data},
    }


def _client(cluster: _Cluster) -> TestClient:
    settings = ApiSettings(bootstrap_api_key="k" * 32, bootstrap_org="org")
    app = create_app(settings, kube_factory=lambda: cluster)  # type: ignore[arg-type,return-value]
    return TestClient(app, headers={"X-API-Key": "k" * 32})


def test_a_workflow_keeps_at_most_max_versions() -> None:
    cluster = _Cluster([_version_map(f"v{n}", "uid-now") for n in range(versions.MAX_VERSIONS)])
    with _client(cluster) as client:
        answer = client.post("/api/v1/workflows/wf_w/versions", json={"versionTag": "one-more"})
    assert answer.status_code == 409, answer.text
    assert "delete old ones" in answer.json()["error"]["message"]
    assert cluster.created == []


def test_a_version_left_by_a_deleted_namesake_is_ignored_and_replaced() -> None:
    stale = _version_map("v1", "uid-of-a-deleted-workflow")
    cluster = _Cluster([stale])
    with _client(cluster) as client:
        assert client.get("/api/v1/workflows/wf_w/versions").json()["count"] == 0
        assert client.post("/api/v1/workflows/wf_w/versions/v1/restore").status_code == 404
        created = client.post("/api/v1/workflows/wf_w/versions", json={"versionTag": "v1"})
        assert created.status_code == 201, created.text
        duplicate = client.post("/api/v1/workflows/wf_w/versions", json={"versionTag": "v1"})
    assert duplicate.status_code == 409
    name = versions.version_name("w", "v1")
    assert (cluster.deleted, cluster.created) == ([name], [name])
    assert cluster.config_maps[name]["metadata"]["ownerReferences"][0]["uid"] == "uid-now"


def test_a_corrupt_version_is_listed_but_not_restored() -> None:
    cluster = _Cluster([_version_map("broken", "uid-now", data="[1, 2")])
    with _client(cluster) as client:
        listed = client.get("/api/v1/workflows/wf_w/versions").json()
        restored = client.post("/api/v1/workflows/wf_w/versions/broken/restore")
    assert [(v["versionTag"], v["nodeCount"]) for v in listed["versions"]] == [("broken", 0)]
    assert restored.status_code == 422
    assert "spec.json" in restored.json()["error"]["message"]
