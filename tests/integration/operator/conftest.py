"""Fixtures for the operator's integration tests: the real operator process against the sandbox.

``operator`` starts ``python -m tideflow.operator`` for one test, watching only that test's
namespace, with a clock file the test moves (``operator.clock``), metrics and liveness disabled, a
1-second resync, the stand-in runtime as the runtime command, and its log in the sandbox's state
directory (``operators/<namespace>.log``). ``operator.kill()`` SIGKILLs it, ``operator.restart()``
starts it again, optionally with other settings. ``kube`` is a small namespaced client over raw
HTTP (exact content types, no client-side defaults), so the tests read as the API calls they make.

The runtime port is chosen per session, not the default 8080: every sandbox on a host hands out
pod IPs from 127.100.0.1 upwards, so two sandboxes running at once (another session's ``make up``,
a parallel CI job) would otherwise bind the same ``podIP:8080`` and their pods would crash-loop.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROOT, Sandbox
from tests.support import wait_for
from tideflow.core.clock import format_time, parse_time

JSON = dict[str, Any]
STAND_IN_RUNTIME = Path(__file__).resolve().parent / "stand_in_runtime.py"
WORKFLOWS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflows"
WORKFLOWRUNS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflowruns"
CHILD_PATHS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
}
PODS = "/api/v1/namespaces/{ns}/pods"
EVENTS = "/api/v1/namespaces/{ns}/events"
MERGE = {"Content-Type": "application/merge-patch+json"}
STARTED_LINE = "tideflow operator started"


def free_port() -> int:
    """A TCP port nothing on this host listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ClockFile:
    """The operator's 'now' (``TIDEFLOW_CLOCK_FILE``): an RFC 3339 timestamp the test moves."""

    def __init__(self, path: Path, start: dt.datetime) -> None:
        self.path = path
        self.set(start)

    def set(self, moment: dt.datetime | str) -> dt.datetime:
        value = parse_time(moment) if isinstance(moment, str) else moment.astimezone(dt.UTC)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(format_time(value) + "\n")
        temporary.replace(self.path)  # atomic: the operator never reads half a timestamp
        return value

    def now(self) -> dt.datetime:
        return parse_time(self.path.read_text())

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        return self.set(self.now() + delta)


class Operator:
    """One test's operator process; restartable, killable, with its log kept across restarts."""

    def __init__(self, sandbox: Sandbox, namespace: str, runtime_port: int) -> None:
        directory = sandbox.state_dir / "operators"
        directory.mkdir(parents=True, exist_ok=True)
        self.sandbox = sandbox
        self.namespace = namespace
        self.runtime_port = runtime_port
        self.log_path = directory / f"{namespace}.log"
        self.clock = ClockFile(
            directory / f"{namespace}.clock", dt.datetime.now(dt.UTC).replace(microsecond=0)
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.settings: dict[str, str] = {}

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
        env.update(
            {
                "KUBECONFIG": str(self.sandbox.kubeconfig),
                "TIDEFLOW_RUNTIME_COMMAND": f'["{sys.executable}", "{STAND_IN_RUNTIME}"]',
                "TIDEFLOW_RUNTIME_PORT": str(self.runtime_port),
                "TIDEFLOW_RESYNC_SECONDS": "1",
                "TIDEFLOW_NAMESPACES": self.namespace,
                "TIDEFLOW_METRICS_PORT": "0",
                "TIDEFLOW_LIVENESS_PORT": "0",
                "TIDEFLOW_CLOCK_FILE": str(self.clock.path),
            }
        )
        env.update(self.settings)
        return env

    def start(self, *, wait: bool = True, **settings: str) -> None:
        """Start the operator; ``settings`` are ``TIDEFLOW_*`` overrides kept for later restarts."""
        assert self.process is None or self.process.poll() is not None, "the operator is running"
        self.settings.update(settings)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== test fixture: operator start #{self.starts} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tideflow.operator"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        if wait:
            wait_for(self.started, timeout=30, what="the operator's startup handler to finish")

    def started(self) -> bool:
        """True once the current process has run its startup handler."""
        assert self.process is not None, "the operator was never started"
        assert self.process.poll() is None, f"the operator exited:\n{self.log_tail()}"
        current = self.log().rsplit(f"operator start #{self.starts} ===", 1)[-1]
        return STARTED_LINE in current

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, whatever was in flight is lost."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, *, wait: bool = True, **settings: str) -> None:
        self.kill()
        self.start(wait=wait, **settings)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, characters: int = 4000) -> str:
        return self.log()[-characters:]


class Kube:
    """The namespace's objects over raw HTTP: the calls the tests make, spelled out."""

    def __init__(self, http: httpx.Client, namespace: str) -> None:
        self.http = http
        self.namespace = namespace
        self._probes = 0

    def _path(self, template: str, name: str = "", sub: str = "") -> str:
        path = template.format(ns=self.namespace)
        return path + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    def _ok(self, response: httpx.Response) -> JSON:
        assert response.status_code < 300, (
            f"{response.request.method} {response.request.url}: {response.text}"
        )
        body: JSON = response.json()
        return body

    # --- Workflows ---------------------------------------------------------------------------------

    def create_workflow(self, manifest: JSON) -> JSON:
        return self._ok(self.http.post(self._path(WORKFLOWS), json=manifest))

    def workflow(self, name: str) -> JSON | None:
        response = self.http.get(self._path(WORKFLOWS, name))
        return None if response.status_code == 404 else self._ok(response)

    def must_workflow(self, name: str) -> JSON:
        workflow = self.workflow(name)
        assert workflow is not None, f"Workflow {name} is gone"
        return workflow

    def workflows(self, label_selector: str = "") -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else {}
        items: list[JSON] = self._ok(self.http.get(self._path(WORKFLOWS), params=params))["items"]
        return items

    def patch_workflow(self, name: str, patch: JSON) -> JSON:
        return self._ok(self.http.patch(self._path(WORKFLOWS, name), json=patch, headers=MERGE))

    def patch_workflow_status(self, name: str, status: JSON) -> JSON:
        return self._ok(
            self.http.patch(self._path(WORKFLOWS, name, "status"), json={"status": status}, headers=MERGE)
        )

    def delete_workflow(self, name: str) -> None:
        self._ok(self.http.delete(self._path(WORKFLOWS, name)))

    def reconciled(self, name: str, timeout: float = 30.0) -> JSON:
        """The Workflow as the operator sees it now: after a reconcile that started after this call.

        Changing ``spec.tags`` (not part of the definition, so nothing rolls) moves the generation;
        once ``status.observedGeneration`` reaches it, a full reconcile has run at the current clock.
        This is how a test checks that something did *not* happen without sleeping.
        """
        self._probes += 1
        bumped = self.patch_workflow(name, {"spec": {"tags": [f"probe-{self._probes}"]}})
        generation = bumped["metadata"]["generation"]

        def observed() -> JSON | None:
            workflow = self.workflow(name)
            return workflow if status(workflow).get("observedGeneration") == generation else None

        return wait_for(observed, timeout=timeout, what=f"the operator to observe generation {generation}")

    # --- WorkflowRuns -------------------------------------------------------------------------------

    def create_run(self, workflow: str, name: str, **spec: Any) -> JSON:
        """A Pending run of ``workflow``; ``spec`` adds fields (a draft's ``definition``)."""
        manifest = {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": name, "labels": {"tideflow.io/workflow": workflow}},
            "spec": {"workflowRef": {"name": workflow}, "triggerType": "manual", **spec},
        }
        return self._ok(self.http.post(self._path(WORKFLOWRUNS), json=manifest))

    def run(self, name: str) -> JSON:
        return self._ok(self.http.get(self._path(WORKFLOWRUNS, name)))

    def set_run_phase(self, name: str, phase: str) -> JSON:
        return self.patch_run_status(name, {"phase": phase})

    def patch_run_status(self, name: str, status: JSON) -> JSON:
        body = {"status": status}
        return self._ok(self.http.patch(self._path(WORKFLOWRUNS, name, "status"), json=body, headers=MERGE))

    def runs(self) -> list[JSON]:
        items: list[JSON] = self._ok(self.http.get(self._path(WORKFLOWRUNS)))["items"]
        return items

    # --- children, pods, events ---------------------------------------------------------------------

    def child(self, kind: str, name: str) -> JSON | None:
        response = self.http.get(self._path(CHILD_PATHS[kind], name))
        return None if response.status_code == 404 else self._ok(response)

    def must_child(self, kind: str, name: str) -> JSON:
        child = self.child(kind, name)
        assert child is not None, f"{kind} {name} does not exist"
        return child

    def children(self, kind: str, label_selector: str = "") -> list[JSON]:
        params = {"labelSelector": label_selector} if label_selector else {}
        items: list[JSON] = self._ok(self.http.get(self._path(CHILD_PATHS[kind]), params=params))["items"]
        return items

    def patch_child(self, kind: str, name: str, patch: JSON) -> JSON:
        return self._ok(self.http.patch(self._path(CHILD_PATHS[kind], name), json=patch, headers=MERGE))

    def pods(self, label_selector: str) -> list[JSON]:
        items: list[JSON] = self._ok(
            self.http.get(self._path(PODS), params={"labelSelector": label_selector})
        )["items"]
        return items

    def events(self, involved: str | None = None) -> list[JSON]:
        items: list[JSON] = self._ok(self.http.get(self._path(EVENTS)))["items"]
        return [e for e in items if involved is None or e["involvedObject"]["name"] == involved]

    def event_reasons(self, involved: str) -> Counter[str]:
        return Counter(e["reason"] for e in self.events(involved))


def sandbox_log_size(sandbox: Sandbox) -> int:
    """A mark in the sandbox's log (its aiohttp access log names each request's user agent)."""
    return (sandbox.state_dir / "sandbox.log").stat().st_size


def sandbox_requests(sandbox: Sandbox, since: int, pattern: str) -> list[str]:
    """The sandbox's access-log lines after the mark ``since`` that match the regex ``pattern``."""
    text = (sandbox.state_dir / "sandbox.log").read_bytes()[since:].decode(errors="replace")
    regex = re.compile(pattern)
    return [line for line in text.splitlines() if "aiohttp.access" in line and regex.search(line)]


def resync_lists(sandbox: Sandbox, namespace: str, since: int) -> int:
    """How many times the operator's resync listed the namespace's Workflows after the mark."""
    path = re.escape(f"GET /apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows?limit=500 ")
    return len(sandbox_requests(sandbox, since, f"{path}.*tideflow-operator"))


def kopf_workflow_lists(sandbox: Sandbox, namespace: str, since: int) -> int:
    """kopf's listings of the namespace's Workflows after the mark: one before it starts watching,
    one more after each 410 Gone."""
    path = re.escape(f'"GET /apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows HTTP/1.1" 200')
    return len(sandbox_requests(sandbox, since, f"{path}.*kopf/"))


def condition(workflow: JSON | None, type_: str) -> JSON:
    """The condition of that type on the Workflow's status ({} when absent)."""
    if workflow is None:
        return {}
    for entry in (workflow.get("status") or {}).get("conditions") or []:
        if entry.get("type") == type_:
            return dict(entry)
    return {}


def is_true(workflow: JSON | None, type_: str) -> bool:
    return condition(workflow, type_).get("status") == "True"


def status(workflow: JSON | None) -> JSON:
    return dict((workflow or {}).get("status") or {})


def pod_ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    ) and not pod["metadata"].get("deletionTimestamp")


def workflow_manifest(
    name: str,
    *,
    message: str = "hello",
    deployed: bool = True,
    replicas: int | None = None,
    lifecycle: JSON | None = None,
    labels: dict[str, str] | None = None,
) -> JSON:
    """A small valid Workflow: a manual trigger feeding a log node whose message the tests change."""
    spec: JSON = {
        "description": "operator integration test",
        "state": "Active",
        "deployed": deployed,
        "nodes": [
            {"id": "start", "type": "manual_trigger", "label": "Start"},
            {"id": "say", "type": "log", "label": "Say", "config": {"message": message, "level": "info"}},
        ],
        "connections": [{"id": "start-say", "source": "start", "target": "say"}],
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if lifecycle is not None:
        spec["lifecycle"] = lifecycle
    metadata: JSON = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "tideflow.io/v1alpha1", "kind": "Workflow", "metadata": metadata, "spec": spec}


@pytest.fixture(scope="session")
def runtime_port() -> int:
    """The runtime pods' port for this session (see the module docstring for why not 8080)."""
    return free_port()


@pytest.fixture
def operator(sandbox: Sandbox, namespace: str, runtime_port: int) -> Iterator[Operator]:
    """The operator, running against the session sandbox and watching only this test's namespace."""
    process = Operator(sandbox, namespace, runtime_port)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def kube(http: httpx.Client, namespace: str) -> Kube:
    """Raw-HTTP access to this test's namespace."""
    return Kube(http, namespace)
