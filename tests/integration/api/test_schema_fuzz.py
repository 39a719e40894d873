"""Property-based run of schemathesis against the API's own ``/openapi.json``.

Every operation of the served document is fuzzed with a fixed seed and a small example budget; each
answer must not be a 5xx and must match what the document promises for that operation: a documented
status code, content type, headers and body schema. The API runs in-process (ASGI) on the real
sandbox, next to the real operator and runtimes of the ``stack`` fixture, with short hold and wait
limits so that a trigger or a deploy that has to wait answers within a second or two.

Path parameters are aimed at real objects made first (two deployed workflows with ready runtimes, one
of them waiting for approvals, drafts, runs, API keys), so the fuzzer reaches the routes' real logic
and not only their 404s; :func:`test_the_fuzzer_reached_real_objects` checks that it did.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import ALL, Stack, workflow_body
from tests.support import wait_for
from tideflow.api.app import create_app
from tideflow.api.settings import ApiSettings
from tideflow.core.kube import Connection, KubeClient

JSON = dict[str, Any]
Case = schemathesis.Case[Any]
SEED = 20251105
# The fuzzing phase's budget per operation. The coverage phase adds its own deterministic cases (a few
# to a few hundred per operation), positive ones only: the values at the edges of what the schema
# allows, where a valid request that crashes hides. Negative (schema-invalid) input comes from the
# fuzzing phase. The document has no examples, so the examples phase has nothing to run.
MAX_EXAMPLES = 10
# The checks every answer must pass. Not included: checks that need a stateful or comparative
# setting, which this run does not make: negative_data_rejection and positive_data_acceptance (whether
# a 4xx was right depends on the objects' state, e.g. a trigger of a draft is a correct 409),
# use_after_free and ensure_resource_availability (stateful phase only), ignored_auth and
# missing_required_header (authentication has its own tests in test_auth.py), max_response_time
# (timing on a shared 2-core machine is not a property of the API).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
logger = logging.getLogger(__name__)

# Writes that leave a deployed workflow running as it is: they may be aimed at the running workflows.
# Every other write (unknown new routes included) is aimed at the disposable ones only, so the ready
# runtimes the triggers need stay up; a delete of the workflow itself at the doomed ones.
_SAFE_WRITES = {
    "duplicate",
    "validate",
    "deploy",
    "execute",
    "trigger",
    "enqueue",
    "email-trigger",
    "versions",
}


@dataclass
class World:
    """The real objects path parameters are aimed at, and the answers the fuzzer got."""

    running: list[str]
    spare: list[str]
    doomed: list[str]
    executions: list[str]
    key_ids: list[str]
    templates: list[str]
    nodes: tuple[str, ...] = ("start", "echo", "gate")
    users: tuple[str, ...] = ("fuzz-0", "admin", "someone")
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    _turns: Counter[tuple[str, str]] = field(default_factory=Counter)

    def pool(self, method: str, path: str, name: str) -> list[str]:
        """The real values of path parameter ``name`` for this operation (empty: keep the generated one)."""
        if name == "workflow_id":
            tail = path.split("{workflow_id}", 1)[1].strip("/")
            if method == "DELETE" and not tail:
                return self.doomed
            if method in ("GET", "HEAD") or tail in _SAFE_WRITES:
                # The running workflows twice: most triggers should reach a runtime.
                return [*self.running, *self.spare[:1], *self.running, *self.spare[1:]]
            return self.spare
        pools: dict[str, list[str]] = {
            "execution_id": self.executions,
            # The Altostrat-shaped routes name a run fl_run_<name> where /api/v1 says exec_<name>.
            "run_id": [e.replace("exec_", "fl_run_", 1) for e in self.executions],
            "key_id": self.key_ids,
            "template_id": self.templates,
            "node_id": list(self.nodes),
            "connection_id": ["c1"],
            "user_id": list(self.users),
            "version": ["v1", "v2"],
        }
        return pools.get(name, [])

    def aim(self, case: Case) -> None:
        """Point the case's path parameters at real objects: each in turn, and every fifth as generated.

        The coverage phase's cases are built at collection, before any object exists, so a generation
        hook could not give them real ids; aiming here treats every phase alike, deterministically.
        """
        parameters: MutableMapping[str, Any] = case.path_parameters or {}
        for name in sorted(parameters):
            pool = self.pool(case.method.upper(), case.path, name)
            turn = self._turns[(case.operation.label, name)]
            self._turns[(case.operation.label, name)] += 1
            if pool and turn % 5 != 4:
                parameters[name] = pool[turn % len(pool)]

    def record(self, case: Case, status: int) -> None:
        known = {*self.running, *self.spare, *self.doomed, *self.executions, *self.key_ids}
        real = bool(case.path_parameters) and all(
            value in known or name not in ("workflow_id", "execution_id", "key_id")
            for name, value in case.path_parameters.items()
        )
        self.statuses[f"{case.method.upper()} {case.path}" + (" (real)" if real else "")][status] += 1


def _create(api: httpx.Client, body: JSON) -> str:
    answer = api.post("/api/v1/workflows", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["workflowId"])


def _ready(api: httpx.Client, workflow_id: str) -> bool:
    return bool(api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["ready"])


def _awaiting(api: httpx.Client, execution_id: str) -> bool:
    answer = api.get(f"/api/v1/workflows/executions/{execution_id}")
    return bool(answer.json()["status"] == "awaiting_ui_interaction")


def _templates(api: httpx.Client) -> list[str]:
    answer = api.get("/api/v1/workflows/templates")
    if answer.status_code != 200:
        return []
    items = answer.json().get("templates") or []
    return [str(item["id"]) for item in items if isinstance(item, dict) and "id" in item]


def _make_world(stack: Stack) -> World:
    on_demand = {"lifecycle": {"type": "on-demand", "idleTimeoutMinutes": 5}}
    with stack.admin() as api:
        echo = _create(api, workflow_body("Fuzz echo", tags=["fuzz"], isPublic=True))
        gate = _create(
            api,
            workflow_body(
                "Fuzz gate",
                nodes=[
                    {"id": "start", "type": "manual_trigger"},
                    {"id": "gate", "type": "approval", "config": {"message": "ship it?"}},
                ],
                connections=[{"id": "c1", "source": "start", "target": "gate"}],
            ),
        )
        for workflow_id in (echo, gate):
            deployed = api.post(f"/api/v1/workflows/{workflow_id}/deploy")
            assert deployed.status_code == 200, deployed.text
        spare = [
            _create(api, workflow_body("Fuzz spare", tags=["fuzz", "spare"], **on_demand)),
            _create(
                api,
                workflow_body(
                    "Fuzz broken",
                    connections=[{"id": "c1", "source": "start", "target": "nowhere"}],
                    schedule={"type": "interval", "value": "5 minutes"},
                    **on_demand,
                ),
            ),
        ]
        doomed = [_create(api, workflow_body(f"Fuzz doomed {i}")) for i in range(3)]
        # A run that stays pending: the spare workflow is not deployed, so nothing claims it.
        pending = api.post(f"/api/v1/workflows/{spare[0]}/execute", json={"triggerInputs": {"who": "nobody"}})
        assert pending.status_code == 201, pending.text
        executions = [str(pending.json()["executionId"])]
        for workflow_id in (echo, gate):
            wait_for(partial(_ready, api, workflow_id), timeout=60, what=f"{workflow_id}'s runtime")
        done = api.post(f"/api/v1/workflows/{echo}/trigger", json={"inputs": {"who": "fuzz"}, "sync": True})
        assert done.status_code == 200, done.text
        executions.append(str(done.json()["executionId"]))
        for _ in range(3):
            waiting = api.post(f"/api/v1/workflows/{gate}/trigger", json={})
            assert waiting.status_code == 202, waiting.text
            executions.append(str(waiting.json()["executionId"]))
        for execution_id in executions[2:]:
            wait_for(
                partial(_awaiting, api, execution_id),
                timeout=30,
                what=f"{execution_id} to wait for an approval",
            )
        keys = []
        for i in range(2):
            answer = api.post("/api/v1/api-keys", json={"user": f"fuzz-{i}", "scopes": list(ALL)})
            assert answer.status_code == 201, answer.text
            keys.append(str(answer.json()["keyId"]))
        templates = _templates(api)
        # Best effort (these routes are younger than this test): a version and a share to aim at.
        for workflow_id in (echo, spare[0]):
            api.post(f"/api/v1/workflows/{workflow_id}/versions", json={"versionTag": "v1"})
        api.post(f"/api/v1/workflows/{spare[0]}/share", json={"userId": "fuzz-0"})
    return World(
        running=[echo, gate],
        spare=spare,
        doomed=doomed,
        executions=executions,
        key_ids=keys,
        templates=templates,
    )


class ServedLikeAServer:
    """The app as a server runs it: an exception after the app's own 500 answer goes to the log.

    Starlette answers 500 and then re-raises, for the server to log; in-process, schemathesis' client
    would raise it instead of returning the answer, and ``not_a_server_error`` would never see it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: JSON, receive: Any, send: Any) -> None:
        started = False

        async def tracked(message: JSON) -> None:
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if scope.get("type") != "http":
                raise
            logger.exception("the API raised on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": b""})


def _served_document(app: Any) -> JSON:
    """``GET /openapi.json`` of an app, without starting it: the document needs no cluster."""

    async def get() -> JSON:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answer = await client.get("/openapi.json")
        assert answer.status_code == 200, answer.text
        document: JSON = answer.json()
        return document

    return asyncio.run(get())


DOCUMENT = _served_document(create_app(ApiSettings()))
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"coverage": {"generation": {"mode": "positive"}}},
            "output": {"truncation": {"max-payload-size": 400}},
        }
    ),
)


@dataclass
class Target:
    """The app under test, its admin key, and the objects made for it."""

    app: ServedLikeAServer
    admin_key: str
    world: World


@pytest.fixture(scope="module")
def target(stack: Stack) -> Iterator[Target]:
    settings = ApiSettings(
        namespaces=(stack.org, stack.other),
        bootstrap_api_key=stack.admin_key,
        bootstrap_org=stack.org,
        runtime_address="pod",
        max_body_bytes=65536,
        # Short limits, so that an operation that waits (a trigger held for a starting runtime, a
        # deploy waiting for the operator, a sync trigger) answers within a second or two.
        trigger_hold_seconds=1.0,
        operator_wait_seconds=0.5,
        sync_timeout_seconds=2.0,
        key_cache_seconds=5.0,
    )
    connection = Connection(server=stack.sandbox.url, headers={}, verify=True)
    app = create_app(settings, kube_factory=lambda: KubeClient(connection, user_agent="tideflow-api-fuzz"))
    assert _served_document(app) == DOCUMENT, "the app under test serves another document than the one fuzzed"
    try:
        yield Target(app=ServedLikeAServer(app), admin_key=stack.admin_key, world=_make_world(stack))
    finally:
        asgi.shutdown_lifespans()  # schemathesis started the app's lifespan on its first request


@schema.parametrize()
def test_every_answer_matches_the_openapi_document(case: Case, target: Target) -> None:
    target.world.aim(case)
    # The admin key replaces whatever the fuzzer put in X-API-Key, so requests get past authentication.
    headers = {"X-API-Key": target.admin_key}
    response = case.call(app=target.app, headers=headers)
    target.world.record(case, response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_a_sync_trigger_that_stops_at_an_approval_answers_as_documented(target: Target) -> None:
    """An explicit case the fuzzer seldom draws: ``sync: true`` for a run that waits for an approval."""
    operation = schema["/api/v1/workflows/{workflow_id}/trigger"]["POST"]
    case = operation.Case(
        path_parameters={"workflow_id": target.world.running[1]},
        body={"sync": True, "inputs": {}},
        media_type="application/json",
    )
    headers = {"X-API-Key": target.admin_key}
    response = case.call(app=target.app, headers=headers)
    assert response.status_code in (200, 202), response.text
    case.validate_response(response, checks=CHECKS, headers=headers)


# The operations of the Workflows API whose real logic must have been reached: at least one 2xx answer
# for a request naming real objects.
MUST_REACH = [
    "GET /api/v1/workflows",
    "POST /api/v1/workflows",
    "GET /api/v1/workflows/{workflow_id} (real)",
    "PUT /api/v1/workflows/{workflow_id} (real)",
    "DELETE /api/v1/workflows/{workflow_id} (real)",
    "POST /api/v1/workflows/{workflow_id}/duplicate (real)",
    "PUT /api/v1/workflows/{workflow_id}/status (real)",
    "POST /api/v1/workflows/{workflow_id}/validate (real)",
    "POST /api/v1/workflows/{workflow_id}/deploy (real)",
    "POST /api/v1/workflows/{workflow_id}/undeploy (real)",
    "GET /api/v1/workflows/{workflow_id}/lifecycle (real)",
    "PUT /api/v1/workflows/{workflow_id}/lifecycle (real)",
    "POST /api/v1/workflows/{workflow_id}/execute (real)",
    "POST /api/v1/workflows/{workflow_id}/trigger (real)",
    "GET /api/v1/workflows/{workflow_id}/executions (real)",
    "GET /api/v1/workflows/executions/{execution_id} (real)",
    "POST /api/v1/workflows/executions/{execution_id}/resume (real)",
    "POST /api/v1/api-keys",
    "DELETE /api/v1/api-keys/{key_id} (real)",
]


def test_the_fuzzer_reached_real_objects(target: Target) -> None:
    """At least one 2xx answer naming real objects for each operation of MUST_REACH that was fuzzed."""
    statuses = target.world.statuses
    if not statuses:
        pytest.skip("the fuzz test did not run in this session")
    summary = "\n".join(f"{key}: {dict(counts)}" for key, counts in sorted(statuses.items()))
    fuzzed = {key.removesuffix(" (real)") for key in statuses}
    missed = [
        key
        for key in MUST_REACH
        if key.removesuffix(" (real)") in fuzzed and not any(200 <= s < 300 for s in statuses.get(key, {}))
    ]
    assert not missed, f"no 2xx answer for {missed}; answers by operation:\n{summary}"
