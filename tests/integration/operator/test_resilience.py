"""Invariant 3, reconcile is level-based and idempotent, under SIGKILLs and API faults.

``test_sigkill_during_concurrent_applies_converges`` runs 20 rounds: 50 Workflows are applied at
once (50 threads) while the operator is SIGKILLed at a random point of the round (after the k-th
apply answered, after k owned objects or k statuses exist, and sometimes again the moment its
restarted successor is up), then restarted. Every round must converge to exactly one ConfigMap,
Deployment and Service per Workflow, owned by it, and all Ready. At the end: no Event storm, and
the operator's log shows no reconcile stuck failing. ``RESILIENCE_SEED`` replays a run's kill
points (the seed is in every failure message).

The other tests inject API faults through the sandbox (``/_sandbox/faults``): 409s and 500s on
the writes of children and of the status, dropped watches, a watch answered 410 Gone, and a real
410 after ``/_sandbox/compact``; with the resync switched off where it would hide a broken watch.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Sandbox
from tests.integration.operator.conftest import (
    WORKFLOWS,
    Kube,
    Operator,
    is_true,
    kopf_workflow_lists,
    resync_lists,
    sandbox_log_size,
    status,
    workflow_manifest,
)
from tests.support import wait_for

JSON = dict[str, Any]
KINDS = ("ConfigMap", "Deployment", "Service")
ROUNDS = 20
PER_ROUND = 50
EVENTS_PER_WORKFLOW = 6  # a clean first deployment records 3: Started, Starting, Running
CONVERGE_TIMEOUT = 60.0
FAILURE = re.compile(r"reconcile of (?P<ns>[^/\s]+)/(?P<name>\S+) (?:failed|crashed)")
STUCK_MARKERS = ("Will retry", "Traceback", "crashed")


# --- helpers --------------------------------------------------------------------------------------------


def ready_workflows(kube: Kube, names: list[str]) -> dict[str, JSON] | None:
    """The Workflows by name once every one of ``names`` is Ready with its one runtime replica."""
    wanted = set(names)
    workflows = {w["metadata"]["name"]: w for w in kube.workflows() if w["metadata"]["name"] in wanted}
    if set(workflows) != wanted:
        return None
    for workflow in workflows.values():
        current = status(workflow)
        if not (
            is_true(workflow, "Ready")
            and current.get("deploymentStatus") == "Running"
            and current.get("readyReplicas") == 1
            and current.get("observedGeneration") == workflow["metadata"]["generation"]
        ):
            return None
    return workflows


def children_exact(kube: Kube, workflows: dict[str, JSON]) -> bool:
    """Exactly one ConfigMap, Deployment and Service per Workflow: named like it and owned by it."""
    for kind in KINDS:
        children = [
            c for c in kube.children(kind) if c["metadata"]["labels"].get("tideflow.io/workflow") in workflows
        ]
        per_workflow = Counter(c["metadata"]["labels"]["tideflow.io/workflow"] for c in children)
        if per_workflow != dict.fromkeys(workflows, 1):
            return False
        for child in children:
            owner = workflows[child["metadata"]["labels"]["tideflow.io/workflow"]]
            refs = child["metadata"].get("ownerReferences") or []
            if [r["uid"] for r in refs] != [owner["metadata"]["uid"]]:
                return False
            if child["metadata"]["name"] != owner["metadata"]["name"]:
                return False
    return True


def converged(kube: Kube, names: list[str]) -> dict[str, JSON] | None:
    """The Workflows once all are Ready and each has exactly its three owned objects."""
    workflows = ready_workflows(kube, names)
    return workflows if workflows is not None and children_exact(kube, workflows) else None


def describe(kube: Kube, names: list[str]) -> str:
    """What is still missing, for a timeout message."""
    wanted = set(names)
    lines = []
    for workflow in kube.workflows():
        if workflow["metadata"]["name"] in wanted and not is_true(workflow, "Ready"):
            lines.append(f"{workflow['metadata']['name']}: {status(workflow).get('deploymentStatus')}")
    for kind in KINDS:
        have = Counter(
            c["metadata"]["labels"].get("tideflow.io/workflow")
            for c in kube.children(kind)
            if c["metadata"]["labels"].get("tideflow.io/workflow") in wanted
        )
        odd = {name: have.get(name, 0) for name in wanted if have.get(name, 0) != 1}
        if odd:
            lines.append(f"{kind} counts off: {odd}")
    return "; ".join(lines[:20])


def wait_converged(kube: Kube, names: list[str], what: str) -> dict[str, JSON]:
    try:
        return wait_for(lambda: converged(kube, names), timeout=CONVERGE_TIMEOUT, interval=0.3, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nnot converged: {describe(kube, names)}") from None


def apply_concurrently(
    url: str, namespace: str, manifests: list[JSON], answered: Callable[[int], None]
) -> list[int]:
    """POST every manifest at once, one thread each; ``answered(n)`` after the n-th response."""
    lock = threading.Lock()
    done = 0
    path = WORKFLOWS.format(ns=namespace)
    limits = httpx.Limits(max_connections=len(manifests) + 4)
    with httpx.Client(base_url=url, timeout=60, limits=limits) as client:

        def one(manifest: JSON) -> int:
            nonlocal done
            code = client.post(path, json=manifest).status_code
            with lock:
                done += 1
                count = done
            answered(count)
            return code

        with ThreadPoolExecutor(max_workers=len(manifests)) as pool:
            return list(pool.map(one, manifests))


def count_children(kube: Kube, kind: str, prefix: str) -> int:
    return sum(1 for c in kube.children(kind) if c["metadata"]["name"].startswith(prefix))


def count_with_status(kube: Kube, prefix: str) -> int:
    return sum(1 for w in kube.workflows() if w["metadata"]["name"].startswith(prefix) and w.get("status"))


def failures_per_workflow(log: str, namespace: str) -> Counter[str]:
    return Counter(m["name"] for m in FAILURE.finditer(log) if m["ns"] == namespace)


# --- SIGKILL during concurrent applies -----------------------------------------------------------------


def kill_during_applies(
    operator: Operator, kube: Kube, sandbox: Sandbox, names: list[str], round_: int, rng: random.Random
) -> list[str]:
    """Apply the round's Workflows at once and SIGKILL the operator at a random point; restart it."""
    namespace = kube.namespace
    prefix = names[0].split("-")[0] + "-"
    manifests = [
        workflow_manifest(n, message=f"round {round_}", labels={"round": str(round_)}) for n in names
    ]
    mode = rng.choice(["answered", "configmaps", "deployments", "statuses"])
    point = rng.randint(0, len(names)) if mode == "answered" else rng.randint(1, len(names))
    enough = threading.Event()
    codes: list[int] = []

    def answered(count: int) -> None:
        if count >= point:
            enough.set()

    def apply() -> None:
        codes.extend(apply_concurrently(sandbox.url, namespace, manifests, answered))

    probes: dict[str, Callable[[], int]] = {
        "answered": lambda: len(names) if enough.is_set() or point == 0 else 0,
        "configmaps": lambda: count_children(kube, "ConfigMap", prefix),
        "deployments": lambda: count_children(kube, "Deployment", prefix),
        "statuses": lambda: count_with_status(kube, prefix),
    }
    applier = threading.Thread(target=apply)
    applier.start()
    wait_for(
        lambda: probes[mode]() >= point, timeout=CONVERGE_TIMEOUT, interval=0.25, what=f"{mode} >= {point}"
    )
    operator.kill()
    operator.start(wait=False)
    kills = [f"round {round_}: {mode} {point}"]
    if rng.random() < 0.25:  # and once more, the moment the successor's startup handler is done
        wait_for(operator.started, timeout=30, what="the restarted operator's startup")
        operator.kill()
        operator.start(wait=False)
        kills.append(f"round {round_}: right after startup")
    applier.join(timeout=60)
    assert codes == [201] * len(names), f"round {round_}: the applies answered {Counter(codes)}"
    return kills


@pytest.mark.timeout(600)  # a hang guard: about 160 s on an idle 2-core machine, more when it is shared
def test_sigkill_during_concurrent_applies_converges(
    operator: Operator, kube: Kube, sandbox: Sandbox, namespace: str
) -> None:
    seed = int(os.environ.get("RESILIENCE_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    context = f"(RESILIENCE_SEED={seed}, operator log: {operator.log_path})"
    kills: list[str] = []
    all_names: list[str] = []

    for round_ in range(ROUNDS):
        names = [f"r{round_:02d}-w{i:02d}" for i in range(PER_ROUND)]
        all_names += names
        # The previous round's Workflows go (their objects by garbage collection), so that the
        # operator's every-second resync and the live runtime pods stay at one round's worth.
        if round_ > 0:
            response = kube.http.delete(
                WORKFLOWS.format(ns=namespace), params={"labelSelector": f"round={round_ - 1}"}
            )
            assert response.status_code == 200, response.text
        kills += kill_during_applies(operator, kube, sandbox, names, round_, rng)
        wait_converged(kube, names, f"round {round_} to converge after {kills[-1]} {context}")

    assert len(kills) >= ROUNDS

    # No Event storm: each Workflow's story is a handful of transitions, however often it was killed.
    per_workflow = Counter(
        e["involvedObject"]["name"] for e in kube.events() if e["involvedObject"]["kind"] == "Workflow"
    )
    storms = {name: count for name, count in per_workflow.items() if count > EVENTS_PER_WORKFLOW}
    assert not storms, f"Event storms: {storms} {context}"
    assert set(per_workflow) <= set(all_names)

    # Nothing stuck: no crash, no kopf retry loop, no Workflow failing again and again ...
    log = operator.log()
    for marker in STUCK_MARKERS:
        assert marker not in log, f"{marker!r} in the operator log {context}"
    repeated = {name: n for name, n in failures_per_workflow(log, namespace).items() if n > 3}
    assert not repeated, f"reconciles failing repeatedly: {repeated} {context}"
    # ... and once converged, three full resyncs of the last round pass without a failure or a write.
    last = all_names[-PER_ROUND:]
    settled = wait_converged(kube, last, "the last round")
    log_mark, sandbox_mark = len(operator.log()), sandbox_log_size(sandbox)
    wait_for(lambda: resync_lists(sandbox, namespace, sandbox_mark) >= 3, timeout=30, what="three resyncs")
    quiet = operator.log()[log_mark:]
    assert not FAILURE.search(quiet), f"failures after convergence: {quiet[-2000:]} {context}"
    again = converged(kube, last)
    assert again is not None, f"the last round fell apart {context}"
    assert {n: w["metadata"]["resourceVersion"] for n, w in again.items()} == {
        n: w["metadata"]["resourceVersion"] for n, w in settled.items()
    }, f"the Workflows kept changing after convergence {context}"


# --- injected API faults --------------------------------------------------------------------------------


@pytest.fixture
def faults(http: httpx.Client) -> Iterator[Callable[..., None]]:
    """Register a sandbox fault; every fault is cleared after the test."""

    def inject(**fault: Any) -> None:
        response = http.post("/_sandbox/faults", json=fault)
        assert response.status_code == 201, response.text

    http.delete("/_sandbox/faults")
    try:
        yield inject
    finally:
        http.delete("/_sandbox/faults")


def faults_left(http: httpx.Client) -> list[JSON]:
    """The registered faults that were not (fully) consumed yet."""
    registered: list[JSON] = http.get("/_sandbox/faults").json()["faults"]
    return [f for f in registered if f["remaining"] > 0]


def test_faults_on_child_and_status_writes_are_survived(
    operator: Operator, kube: Kube, http: httpx.Client, namespace: str, faults: Callable[..., None]
) -> None:
    ns = re.escape(namespace)
    faults(method="POST", path=rf"/api/v1/namespaces/{ns}/configmaps$", status=500, times=2)
    faults(method="POST", path=rf"/apis/apps/v1/namespaces/{ns}/deployments$", status=409, times=2)
    faults(method="POST", path=rf"/api/v1/namespaces/{ns}/services$", status=503, times=1)
    faults(method="PATCH", path=rf"/namespaces/{ns}/workflows/[^/]+/status$", status=409, times=3)
    faults(method="PATCH", path=rf"/namespaces/{ns}/workflows/[^/]+/status$", status=500, times=2)
    faults(method="POST", path=rf"/api/v1/namespaces/{ns}/events$", status=500, times=2)
    names = ["faulty-a", "faulty-b", "faulty-c"]
    for name in names:
        kube.create_workflow(workflow_manifest(name, message="v1"))

    wait_converged(kube, names, "convergence through create and status faults")
    assert faults_left(http) == [], "not every injected fault was hit"

    # Updates: the definition changes, and its ConfigMap and Deployment replacements fail first.
    faults(method="PUT", path=rf"/api/v1/namespaces/{ns}/configmaps/[^/]+$", status=500, times=2)
    faults(method="PUT", path=rf"/apis/apps/v1/namespaces/{ns}/deployments/[^/]+$", status=409, times=3)
    faults(method="PATCH", path=rf"/namespaces/{ns}/workflows/[^/]+/status$", status=409, times=2)
    for name in names:
        nodes = kube.must_workflow(name)["spec"]["nodes"]
        nodes[1]["config"]["message"] = "v2"
        kube.patch_workflow(name, {"spec": {"nodes": nodes}})

    def updated() -> bool:
        return converged(kube, names) is not None and all(
            '"message": "v2"' in kube.must_child("ConfigMap", n)["data"]["definition.json"]
            and kube.must_child("Deployment", n)["spec"]["template"]["metadata"]["annotations"][
                "tideflow.io/definition-hash"
            ]
            == kube.must_child("ConfigMap", n)["metadata"]["annotations"]["tideflow.io/definition-hash"]
            for n in names
        )

    wait_for(updated, timeout=CONVERGE_TIMEOUT, interval=0.25, what="the update to converge through faults")
    assert faults_left(http) == [], "not every injected fault was hit"
    for name in names:
        assert sum(kube.event_reasons(name).values()) <= EVENTS_PER_WORKFLOW, kube.event_reasons(name)
    assert "Traceback" not in operator.log()


def test_dropped_and_expired_watches_are_survived(
    operator: Operator,
    kube: Kube,
    http: httpx.Client,
    sandbox: Sandbox,
    namespace: str,
    faults: Callable[..., None],
) -> None:
    # No resync to paper over a broken watch: after its first pass at start-up, only watch events
    # trigger reconciles. Watches end after 10 s, so a resumption after a compaction comes soon.
    operator.stop()
    watch_path = rf"/namespaces/{re.escape(namespace)}/workflows$"
    faults(method="GET", path=watch_path, watch="drop", times=2)
    faults(method="GET", path=watch_path, watch="gone", times=1)
    start = sandbox_log_size(sandbox)
    operator.start(
        TIDEFLOW_RESYNC_SECONDS="3600", TIDEFLOW_WATCH_SERVER_TIMEOUT="10", TIDEFLOW_WATCH_CLIENT_TIMEOUT="20"
    )
    wait_for(
        lambda: kopf_workflow_lists(sandbox, namespace, start) >= 1,
        timeout=15,
        what=f"kopf to list (and so to watch) the Workflows of {namespace}; see {operator.log_path}",
    )
    wait_for(lambda: faults_left(http) == [], timeout=30, what="the operator's watches to hit the faults")
    # Two dropped watches resume from the last version; the 410 Gone makes kopf list again.
    wait_for(lambda: kopf_workflow_lists(sandbox, namespace, start) >= 2, timeout=30, what="kopf's re-list")
    wait_for(
        lambda: resync_lists(sandbox, namespace, start) >= 1, timeout=30, what="the start-up resync pass"
    )

    # Created after two dropped watches and a 410 Gone: only the re-established watch can tell.
    kube.create_workflow(workflow_manifest("after-faults"))
    wait_converged(kube, ["after-faults"], "a Workflow created after the watch faults")

    # A real 410: the watch history is compacted; the watch times out and resumes from a version
    # that is gone; kopf lists again and watches from there.
    lists_before = kopf_workflow_lists(sandbox, namespace, start)
    compacted = http.post("/_sandbox/compact")
    assert compacted.status_code == 200, compacted.text
    wait_for(
        lambda: kopf_workflow_lists(sandbox, namespace, start) > lists_before,
        timeout=45,
        interval=0.2,
        what="kopf to list Workflows again after its resumed watch got 410 Expired",
    )
    kube.create_workflow(workflow_manifest("after-compaction"))
    wait_converged(kube, ["after-faults", "after-compaction"], "a Workflow created after the compaction")
    # Both were reconciled through the watch: the resync never ran again after its start-up pass.
    assert resync_lists(sandbox, namespace, start) == 1
    assert "Traceback" not in operator.log()
