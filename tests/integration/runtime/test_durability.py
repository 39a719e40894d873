"""No run lost, no run twice: a runtime killed mid-run, a lease that expires, two replicas competing.

The runs use a ``delay`` node to be caught in the middle, and ``http_request`` nodes calling the test's
local server, which counts how often each step of each run really happened.
"""

from __future__ import annotations

from typing import Any

from tests.integration.runtime.conftest import Echo, Kube, Runtimes, finished_writes
from tests.support import wait_for

JSON = dict[str, Any]


def interrupted(echo: Echo, seconds: float) -> JSON:
    """before -> delay -> after: a kill during the delay interrupts the run between the two calls."""
    return {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "before",
                "type": "http_request",
                "config": {"url": f"{echo.url}/before/{{{{ trigger.runId }}}}"},
            },
            {"id": "wait", "type": "delay", "config": {"seconds": seconds}},
            {
                "id": "after",
                "type": "http_request",
                "config": {"url": f"{echo.url}/after/{{{{ trigger.runId }}}}"},
            },
        ],
        "connections": [
            {"id": "c1", "source": "start", "target": "before"},
            {"id": "c2", "source": "before", "target": "wait"},
            {"id": "c3", "source": "wait", "target": "after"},
        ],
    }


def claimed(run: JSON) -> JSON:
    return dict(next(c for c in run["status"]["conditions"] if c["type"] == "Claimed"))


def check_completed_once(kube: Kube, echo: Echo, name: str, since: str) -> JSON:
    run = kube.run(name)
    status = run["status"]
    assert status["phase"] == "Completed", status
    # The final execution's log: every node ran once in it.
    assert [(n["nodeId"], n["status"], n["attempts"]) for n in status["nodes"]] == [
        ("start", "completed", 1),
        ("before", "completed", 1),
        ("wait", "completed", 1),
        ("after", "completed", 1),
    ]
    # The step after the crash point happened exactly once; the one before it ran again (at least once).
    assert echo.paths()[f"/after/{name}"] == 1
    assert echo.paths()[f"/before/{name}"] == 2
    assert len(finished_writes(kube.history(since), name)) == 1  # one final status, never rewritten
    return run


def test_a_runtime_killed_mid_run_and_restarted_completes_the_run_exactly_once(
    runtimes: Runtimes, kube: Kube, echo: Echo
) -> None:
    definition = interrupted(echo, 1.5)
    since = kube.resource_version()
    first = runtimes.start("restarts", definition, pod="restarts-a")
    name = first.post("/trigger", json={}).json()["runId"]
    wait_for(lambda: echo.paths()[f"/before/{name}"] == 1, what="the run to reach the delay")
    first.kill()  # SIGKILL: no drain, no hand-back; the run stays Running with this pod's claim
    assert kube.run(name)["status"]["phase"] == "Running"
    assert echo.paths()[f"/after/{name}"] == 0

    second = runtimes.start("restarts", definition, pod="restarts-a")  # the container restarts in its pod
    kube.wait_phase(name, "Completed", "Failed")
    assert second.terminate() == 0
    run = check_completed_once(kube, echo, name, since)
    assert claimed(run)["message"] == "claim 2 by restarts-a; the previous process of this pod ended"


def test_a_run_whose_runtime_died_is_reclaimed_by_another_once_the_lease_expires(
    runtimes: Runtimes, kube: Kube, echo: Echo
) -> None:
    definition = interrupted(echo, 1.5)
    since = kube.resource_version()
    lease = {"TIDEFLOW_CLAIM_LEASE_SECONDS": "3"}
    first = runtimes.start("leases", definition, pod="leases-a", env=lease)
    name = first.post("/trigger", json={}).json()["runId"]
    wait_for(lambda: echo.paths()[f"/before/{name}"] == 1, what="the run to reach the delay")
    first.kill()

    second = runtimes.start("leases", definition, pod="leases-b", env=lease)  # a replacement pod
    kube.wait_phase(name, "Completed", "Failed")
    assert second.terminate() == 0
    run = check_completed_once(kube, echo, name, since)
    assert run["status"]["claimedBy"] == "leases-b"
    assert claimed(run)["reason"] == "Reclaimed"
    assert claimed(run)["message"] == "claim 2 by leases-b; the claim of leases-a expired"


def test_two_replicas_never_run_the_same_pending_run(runtimes: Runtimes, kube: Kube, echo: Echo) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "call",
                "type": "http_request",
                "config": {"url": f"{echo.url}/run/{{{{ trigger.runId }}}}"},
            },
            {"id": "wait", "type": "delay", "config": {"seconds": 0.5}},
        ],
        "connections": [
            {"id": "c1", "source": "start", "target": "call"},
            {"id": "c2", "source": "call", "target": "wait"},
        ],
    }
    runtimes.create_workflow("pairs", definition)
    since = kube.resource_version()
    names = [f"pairs-r{index:02d}" for index in range(20)]
    for name in names:
        kube.create_run("pairs", name)
    capacity = {"TIDEFLOW_MAX_CONCURRENT_RUNS": "2"}
    replicas = [
        runtimes.start("pairs", definition, pod=pod, wait=False, env=capacity)
        for pod in ("pairs-a", "pairs-b")
    ]
    for replica in replicas:
        replica.wait_listening()
    wait_for(
        lambda: all((run.get("status") or {}).get("phase") == "Completed" for run in kube.runs()),
        timeout=60,
        what="all 20 runs to complete",
    )
    for replica in replicas:
        assert replica.terminate() == 0
    runs = {run["metadata"]["name"]: run for run in kube.runs()}
    assert sorted(runs) == names
    owners = {run["status"]["claimedBy"] for run in runs.values()}
    assert owners == {"pairs-a", "pairs-b"}  # the work was spread
    calls = echo.paths()
    events = kube.history(since)
    for name, run in runs.items():
        assert calls[f"/run/{name}"] == 1, name  # executed exactly once
        assert claimed(run)["message"] == f"claim 1 by {run['status']['claimedBy']}"  # claimed once
        assert len(finished_writes(events, name)) == 1
        claims = {
            (event["object"].get("status") or {}).get("claimedBy")
            for event in events
            if event["object"]["metadata"]["name"] == name
        }
        assert claims == {None, run["status"]["claimedBy"]}  # no other replica ever held it
