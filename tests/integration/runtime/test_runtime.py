"""The runtime process on the sandbox: triggers over HTTP, stored runs, approvals, draining.

Each test starts ``python -m tideflow.runtime`` as the operator's Deployment would (see conftest), and
checks what it wrote to the cluster through the API server.
"""

from __future__ import annotations

import time
from typing import Any

from tests.integration.runtime.conftest import Echo, Kube, Runtimes, finished_writes
from tests.support import wait_for
from tideflow.runtime.webhooks import sign

JSON = dict[str, Any]


def connections(*pairs: tuple[str, str] | tuple[str, str, str]) -> list[JSON]:
    wired = []
    for index, pair in enumerate(pairs):
        source, port, target = (pair[0], "output", pair[1]) if len(pair) == 2 else pair
        wired.append({"id": f"c{index}", "source": source, "sourcePort": port, "target": target})
    return wired


def calling(echo: Echo) -> JSON:
    return {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "call",
                "type": "http_request",
                "config": {
                    "method": "POST",
                    "url": f"{echo.url}/hook/{{{{ trigger.runId }}}}",
                    "body": {"n": "{{ trigger.inputs.n }}"},
                },
            },
            {
                "id": "result",
                "type": "transform",
                "config": {"set": {"echoed": "{{ call.body.echo.n }}", "status": "{{ call.status }}"}},
            },
        ],
        "connections": connections(("start", "call"), ("call", "result")),
    }


def test_triggers_store_runs_with_node_logs_and_call_a_local_server(
    runtimes: Runtimes, kube: Kube, echo: Echo
) -> None:
    since = kube.resource_version()
    runtime = runtimes.start("calls", calling(echo), pod="calls-a")

    accepted = runtime.post("/trigger", json={"inputs": {"n": 1}, "trigger_type": "api"})
    assert accepted.status_code == 202, accepted.text
    name = accepted.json()["runId"]
    run = kube.wait_phase(name, "Completed", "Failed")
    status = run["status"]
    assert status["phase"] == "Completed", status
    assert run["metadata"]["labels"] == {
        "tideflow.io/workflow": "calls",
        "tideflow.io/trigger-type": "api",
        "app.kubernetes.io/part-of": "tideflow",
    }
    assert run["spec"]["workflowRef"] == {"name": "calls"}
    assert run["spec"]["inputs"] == {"n": 1}
    assert status["claimedBy"] == "calls-a"
    assert [(n["nodeId"], n["componentId"], n["status"], n["attempts"]) for n in status["nodes"]] == [
        ("start", "manual_trigger", "completed", 1),
        ("call", "http_request", "completed", 1),
        ("result", "transform", "completed", 1),
    ]
    assert status["nodes"][1]["output"]["status"] == 200
    assert status["output"] == {"result": {"echoed": 1, "status": 200}}
    assert status["durationSeconds"] >= 0
    assert "startedAt" in status
    assert "completedAt" in status

    synced = runtime.post("/trigger", json={"inputs": {"n": 2}, "sync": True})
    assert synced.status_code == 200, synced.text
    assert synced.json()["phase"] == "Completed"
    assert synced.json()["output"] == {"result": {"echoed": 2, "status": 200}}
    assert kube.phase(synced.json()["runId"]) == "Completed"

    assert echo.paths() == {f"/hook/{name}": 1, f"/hook/{synced.json()['runId']}": 1}
    wait_for(
        lambda: (kube.workflow("calls").get("status") or {}).get("lastActivityAt"),
        timeout=10,
        what="lastActivityAt on the Workflow",
    )
    metrics = runtime.get("/metrics").text
    assert 'tideflow_runtime_runs_total{phase="Completed",workflow="calls"} 2.0' in metrics
    assert runtime.terminate() == 0
    events = kube.history(since)
    assert len(finished_writes(events, name)) == 1


def test_an_approval_pauses_the_run_and_resume_completes_it(runtimes: Runtimes, kube: Kube) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "check",
                "type": "approval",
                "config": {"message": "deploy {{ trigger.inputs.version }}?"},
            },
            {
                "id": "deploy",
                "type": "transform",
                "config": {"set": {"deployed": "{{ trigger.inputs.version }}"}},
            },
        ],
        "connections": connections(("start", "check"), ("check", "approved", "deploy")),
    }
    runtime = runtimes.start("approvals", definition, pod="approvals-a")
    name = runtime.post("/trigger", json={"inputs": {"version": "1.2"}}).json()["runId"]
    paused = kube.wait_phase(name, "AwaitingInteraction")["status"]
    assert paused["output"]["awaiting"] == [
        {"nodeId": "check", "type": "approval", "request": {"message": "deploy 1.2?", "approvers": []}}
    ]
    assert "snapshot" in paused["output"]
    assert [n["status"] for n in paused["nodes"]] == ["completed", "running", "pending"]

    resumed = runtime.post(f"/runs/{name}/resume", json={"decidedBy": "ops", "comment": "go"})
    assert resumed.status_code == 202, resumed.text
    done = kube.wait_phase(name, "Completed", "Failed")["status"]
    assert done["phase"] == "Completed", done
    assert done["output"] == {"deploy": {"deployed": "1.2"}}
    assert [(n["nodeId"], n["status"]) for n in done["nodes"]] == [
        ("start", "completed"),
        ("check", "completed"),
        ("deploy", "completed"),
    ]
    assert done["nodes"][1]["output"]["decidedBy"] == "ops"
    assert runtime.post(f"/runs/{name}/resume", json={}).status_code == 409


def test_sigterm_drains_hands_the_run_back_and_another_replica_takes_it(
    runtimes: Runtimes, kube: Kube
) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "wait", "type": "delay", "config": {"seconds": 600}},
        ],
        "connections": connections(("start", "wait")),
    }
    first = runtimes.start("drains", definition, pod="drains-a", env={"TIDEFLOW_DRAIN_SECONDS": "1"})
    name = first.post("/trigger", json={}).json()["runId"]
    wait_for(
        lambda: any(
            n["nodeId"] == "wait" and n["status"] == "running"
            for n in (kube.run(name).get("status") or {}).get("nodes") or []
        ),
        what="the delay node to be running",
    )
    first.process.send_signal(15)  # SIGTERM
    wait_for(lambda: first.get("/readyz").status_code == 503, timeout=5, what="readyz to fail")
    refused = first.post("/trigger", json={})
    assert refused.status_code == 503
    assert first.terminate() == 0
    handed_back = kube.run(name)["status"]
    assert handed_back["phase"] == "Pending"
    assert "claimedBy" not in handed_back
    claimed = next(c for c in handed_back["conditions"] if c["type"] == "Claimed")
    assert claimed["reason"] == "HandedBack"
    assert len(kube.runs()) == 1  # the refused trigger stored nothing

    second = runtimes.start("drains", definition, pod="drains-b")
    taken = kube.wait_phase(name, "Running")["status"]
    assert taken["claimedBy"] == "drains-b"
    cancelled = second.post(f"/runs/{name}/cancel", json={"reason": "test over"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["phase"] == "Cancelled"
    assert kube.run(name)["status"]["error"] == "test over"


def test_a_signed_webhook_runs_the_workflow_and_answers_with_its_reply(
    runtimes: Runtimes, kube: Kube
) -> None:
    definition = {
        "nodes": [
            {
                "id": "hook",
                "type": "webhook_trigger",
                "config": {
                    "path": "payments",
                    "method": "POST",
                    "auth": {"type": "hmac", "secretRef": {"name": "hooks", "key": "signing-key"}},
                },
            },
            {
                "id": "reply",
                "type": "respond",
                "config": {
                    "status": 201,
                    "body": {"paid": "{{ trigger.inputs.amount }}", "via": "{{ trigger.path }}"},
                },
            },
        ],
        "connections": connections(("hook", "reply")),
    }
    key = "integration-signing-key"
    runtime = runtimes.start(
        "hooks", definition, pod="hooks-a", env={"TIDEFLOW_SECRET_HOOKS_SIGNING_KEY": key}
    )
    body = b'{"amount": 12}'
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Tideflow-Timestamp": str(stamp),
        "X-Tideflow-Signature": sign(key, stamp, body),
    }
    answered = runtime.post("/webhooks/payments", content=body, headers=headers)
    assert answered.status_code == 201, answered.text
    assert answered.json() == {"paid": 12, "via": "payments"}
    name = answered.headers["X-Tideflow-Run"]
    run = kube.wait_phase(name, "Completed")
    assert run["spec"]["triggerType"] == "webhook"
    assert run["spec"]["inputs"] == {"amount": 12}
    replayed = runtime.post("/webhooks/payments", content=body, headers=headers)
    assert replayed.status_code == 401
    forged = runtime.post(
        "/webhooks/payments", content=body, headers={**headers, "X-Tideflow-Signature": "sha256=00"}
    )
    assert forged.status_code == 401
    assert len(kube.runs()) == 1
