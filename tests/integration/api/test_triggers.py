"""Queue, email and event triggers over HTTP: stored first, run by priority, matched by type and source."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.integration.api.conftest import Stack
from tests.support import wait_for
from tideflow.core.clock import parse_time

RUNS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflowruns"


def _graph(trigger: str, config: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "t", "type": trigger, "config": config or {}},
            {"id": "out", "type": "transform", "config": {"set": {"got": "{{ t.inputs }}"}}},
        ],
        "connections": [{"id": "c1", "source": "t", "target": "out"}],
        **fields,
    }


def _deploy(api: httpx.Client, name: str, graph: dict[str, Any]) -> str:
    created = api.post("/api/v1/workflows", json={"name": name, **graph})
    assert created.status_code == 201, created.text
    workflow_id = str(created.json()["workflowId"])
    assert api.post(f"/api/v1/workflows/{workflow_id}/deploy").status_code == 200
    return workflow_id


def _runs(stack: Stack, workflow_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=stack.sandbox.url, timeout=30) as kube:
        answer = kube.get(
            RUNS.format(ns=stack.org), params={"labelSelector": f"tideflow.io/workflow={workflow_id[3:]}"}
        )
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _arrival(run: dict[str, Any]) -> float:
    """The enqueue time the API wrote into a queue run's name (µs, hex), in seconds."""
    stamp = run["metadata"]["name"].rsplit("-q-", 1)[1][:14]
    return int(stamp, 16) / 1_000_000


def _send(api: httpx.Client, workflow_id: str, index: int, priority: int) -> tuple[str, int]:
    answer = api.post(
        f"/api/v1/workflows/{workflow_id}/enqueue",
        json={"message": {"n": index}, "priority": priority, "source": "test"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["trigger_type"], body["priority"]) == ("queue", priority)
    return body["executionId"][len("exec_") :], priority


def _finished(stack: Stack, workflow_id: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        runs = _runs(stack, workflow_id)
        done = [
            r for r in runs if (r.get("status") or {}).get("phase") in ("Completed", "Failed", "Cancelled")
        ]
        return runs if len(done) == len(runs) == count else None

    runs: list[dict[str, Any]] = wait_for(probe, timeout=240, what=f"{count} queued runs to finish")
    return runs


def _completed_once(runs: list[dict[str, Any]], sent: dict[str, int]) -> None:
    assert {r["metadata"]["name"] for r in runs} == set(sent)
    for run in runs:
        status = run["status"]
        assert status["phase"] == "Completed", run
        assert all(node["attempts"] == 1 for node in status["nodes"]), run  # none ran twice
        assert status["nodes"][-1]["output"]["got"]["message"] == run["spec"]["inputs"]["message"]
        assert run["spec"]["priority"] == sent[run["metadata"]["name"]]


def test_200_queued_messages_wake_an_on_demand_workflow_and_run_once_each_by_priority(stack: Stack) -> None:
    chooser = random.Random(7)
    with stack.client(stack.key("queuer")) as api:
        graph = _graph("queue_trigger", lifecycle={"type": "on-demand", "idleTimeoutMinutes": 5})
        workflow_id = _deploy(api, "Queue worker", graph)
        wait_for(
            lambda: api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["status"] == "Stopped",
            timeout=60,
            what="the on-demand workflow to be scaled to zero by its policy",
        )
        # 1. Stopped by its policy: eight producers at once; the first message wakes the runtime.
        priorities = [chooser.choice([0, 1, 2, 5]) for _ in range(200)]
        with ThreadPoolExecutor(max_workers=8) as senders:
            sent = dict(senders.map(lambda i: _send(api, workflow_id, i, priorities[i]), range(200)))
        _completed_once(_finished(stack, workflow_id, 200), sent)

        # 2. Stopped by its user: every message waits, so the claim order is the runtime's choice alone.
        api.post(f"/api/v1/workflows/{workflow_id}/stop")
        wait_for(
            lambda: api.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["readyReplicas"] == 0,
            timeout=60,
            what="the runtime to stop",
        )
        waiting = dict(_send(api, workflow_id, 200 + i, chooser.choice([0, 1, 2, 5])) for i in range(200))
        assert all(
            (r.get("status") or {}).get("phase") is None
            for r in _runs(stack, workflow_id)
            if r["metadata"]["name"] in waiting
        )
        api.post(f"/api/v1/workflows/{workflow_id}/start")
        runs = [r for r in _finished(stack, workflow_id, 400) if r["metadata"]["name"] in waiting]
    _completed_once(runs, waiting)

    # Per replica, claims follow (priority descending, arrival ascending); arrival is the order the
    # API accepted them (one producer), which its run names encode.
    by_replica: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_replica.setdefault(run["status"]["claimedBy"], []).append(run)
    checked = 0
    for claimed in by_replica.values():
        claimed.sort(key=lambda r: (parse_time(r["status"]["claimedAt"]), r["metadata"]["name"]))
        for first, later in itertools.pairwise(claimed):
            if first["status"]["claimedAt"] == later["status"]["claimedAt"]:
                continue  # claimed in the same millisecond: no order between them to check
            checked += 1
            key_first = (-first["spec"]["priority"], _arrival(first))
            key_later = (-later["spec"]["priority"], _arrival(later))
            assert key_first <= key_later, (
                f"{first['metadata']['name']} (priority {first['spec']['priority']}, claimed "
                f"{first['status']['claimedAt']}) before {later['metadata']['name']} "
                f"(priority {later['spec']['priority']}, claimed {later['status']['claimedAt']})"
            )
    assert checked > 100


def test_enqueue_envelopes_aliases_idempotency_and_refusals(stack: Stack) -> None:
    with stack.client(stack.key("enqueuer")) as api:
        workflow_id = _deploy(api, "Envelope", _graph("queue_trigger"))
        plain = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"order": 7, "priority": 3})
        aliased = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"data": [1, 2], "source": "crm"})
        assert plain.status_code == aliased.status_code == 201
        runs = {r["metadata"]["name"]: r for r in _runs(stack, workflow_id)}
        assert runs[plain.json()["executionId"][5:]]["spec"]["inputs"] == {
            "message": {"order": 7},
            "priority": 3,
        }
        assert runs[aliased.json()["executionId"][5:]]["spec"]["inputs"] == {
            "message": [1, 2],
            "priority": 0,
            "source": "crm",
        }

        key = {"Idempotency-Key": "msg-1"}
        first = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"message": "x"}, headers=key)
        again = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"message": "x"}, headers=key)
        assert again.json()["executionId"] == first.json()["executionId"]
        assert again.headers["Idempotent-Replayed"] == "true"
        reused = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"message": "y"}, headers=key)
        assert reused.status_code == 422
        bad = api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"message": 1, "priority": 5000})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["path"] == "body.priority"
        assert len(_runs(stack, workflow_id)) == 3

        manual = _deploy(api, "No queue", _graph("manual_trigger"))
        refused = api.post(f"/api/v1/workflows/{manual}/enqueue", json={"message": 1})
        assert refused.status_code == 422
        assert "no queue_trigger" in refused.json()["error"]["message"]
        assert _runs(stack, manual) == []
        api.put(f"/api/v1/workflows/{workflow_id}/status", json={"status": "paused"})
        assert api.post(f"/api/v1/workflows/{workflow_id}/enqueue", json={"message": 1}).status_code == 409


def test_email_trigger_delivers_parsed_mail_to_its_address(stack: Stack) -> None:
    with stack.client(stack.key("mailer")) as api:
        workflow_id = _deploy(api, "Inbox", _graph("email_trigger", {"address": "support@example.com"}))
        mail = {
            "from": "ann@example.org",
            "to": ["Support@example.com"],
            "subject": "Help",
            "text": "plain words",
            "html": "<p>plain words</p>",
            "attachments": [{"filename": "a.txt", "contentType": "text/plain", "size": 3}],
        }
        answer = api.post(f"/api/v1/workflows/{workflow_id}/email-trigger", json=mail)
        assert answer.status_code == 201, answer.text
        execution_id = answer.json()["executionId"]

        def completed() -> dict[str, Any] | None:
            body: dict[str, Any] = api.get(f"/api/v1/workflows/executions/{execution_id}").json()
            return body if body["status"] == "completed" else None

        run = wait_for(completed, timeout=60, what="the email run to complete")
        assert run["triggerType"] == "email"
        got = run["logs"][-1]["output"]["got"]
        assert (got["from"], got["subject"], got["bodyText"], got["bodyHtml"]) == (
            "ann@example.org",
            "Help",
            "plain words",
            "<p>plain words</p>",
        )
        elsewhere = api.post(f"/api/v1/workflows/{workflow_id}/email-trigger", json={**mail, "to": ["x@y.z"]})
        assert elsewhere.status_code == 422
        assert elsewhere.json()["error"]["details"][0]["path"] == "body.to"
        assert api.post(f"/api/v1/workflows/{workflow_id}/email-trigger", json={"to": []}).status_code == 422
        assert len(_runs(stack, workflow_id)) == 1


def test_events_run_every_matching_active_workflow(stack: Stack) -> None:
    with stack.client(stack.key("eventer")) as api:
        any_source = _deploy(api, "Any source", _graph("event_trigger", {"eventType": "order.created"}))
        from_shop = _deploy(
            api, "From shop", _graph("event_trigger", {"eventType": "order.created", "source": "shop"})
        )
        other_type = _deploy(api, "Other type", _graph("event_trigger", {"eventType": "order.deleted"}))
        paused = _deploy(api, "Paused", _graph("event_trigger", {"eventType": "order.created"}))
        api.put(f"/api/v1/workflows/{paused}/status", json={"status": "paused"})

        answer = api.post(
            "/api/v1/workflows/events",
            json={"event_type": "order.created", "event_data": {"id": 9}, "source": "shop"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["workflows_triggered"], body["workflows_failed"]) == (2, 0)
        assert {r["workflowId"] for r in body["results"]} == {any_source, from_shop}

        other = api.post(
            "/api/v1/workflows/events", json={"event_type": "order.created", "source": "pos"}
        ).json()
        assert [r["workflowId"] for r in other["results"]] == [any_source]

        def completed(execution_id: str) -> bool:
            return bool(
                api.get(f"/api/v1/workflows/executions/{execution_id}").json()["status"] == "completed"
            )

        for result in body["results"]:
            execution_id = result["executionId"]
            wait_for(lambda: completed(execution_id), timeout=60, what=f"{execution_id} to complete")  # noqa: B023
        assert _runs(stack, other_type) == []
        assert _runs(stack, paused) == []
        assert api.post("/api/v1/workflows/events", json={"event_data": {}}).status_code == 422
