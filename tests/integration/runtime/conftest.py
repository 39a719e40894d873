"""Fixtures for the runtime's integration tests: real ``python -m tideflow.runtime`` processes.

``runtimes.start(name, definition, pod=...)`` creates the Workflow (once per name) in the test's
namespace, writes the definition file the operator would mount into a temporary directory, and starts
the runtime with the environment the operator's Deployment gives it (``TIDEFLOW_*``, ``POD_IP``,
``KUBECONFIG`` pointing at the session's sandbox), on 127.0.0.1 and a port it picks itself (read back
from its log). ``Runtime.kill()`` SIGKILLs it, ``Runtime.terminate()`` sends SIGTERM and waits.
Every process a test started is stopped at the end of the test, by its pid.

``echo`` is a local HTTP server on 127.0.0.1 (allowlisted for the runtimes with
``TIDEFLOW_HTTP_ALLOWLIST``) that records every request and answers ``{"echo": <body>, "path": ...}``.
``kube`` reads runs and replays their watch history over raw HTTP.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROOT, Sandbox
from tests.support import wait_for

JSON = dict[str, Any]
WORKFLOWS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflows"
WORKFLOWRUNS = "/apis/tideflow.io/v1alpha1/namespaces/{ns}/workflowruns"
LISTENING = re.compile(r"tideflow-runtime listening on (http://[0-9.]+:[0-9]+)")


class Echo:
    """A local HTTP server that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with echo.lock:
                    echo.requests.append((self.command, self.path, body))
                payload = json.dumps({"echo": body, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> Counter[str]:
        with self.lock:
            return Counter(path for _, path, _ in self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Kube:
    """A namespaced view of the sandbox over raw HTTP."""

    http: httpx.Client
    namespace: str

    def path(self, template: str, name: str = "") -> str:
        base = template.format(ns=self.namespace)
        return f"{base}/{name}" if name else base

    def create_workflow(self, name: str, definition: JSON) -> JSON:
        body = {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {"state": "Active", "deployed": False, **definition},
        }
        response = self.http.post(self.path(WORKFLOWS), json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def workflow(self, name: str) -> JSON:
        response = self.http.get(self.path(WORKFLOWS, name))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def create_run(self, workflow: str, name: str, **spec: Any) -> JSON:
        body = {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {
                "name": name,
                "labels": {"tideflow.io/workflow": workflow, "tideflow.io/trigger-type": "api"},
            },
            "spec": {"workflowRef": {"name": workflow}, "triggerType": "api", **spec},
        }
        response = self.http.post(self.path(WORKFLOWRUNS), json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def run(self, name: str) -> JSON:
        response = self.http.get(self.path(WORKFLOWRUNS, name))
        assert response.status_code == 200, response.text
        return dict(response.json())

    def runs(self) -> list[JSON]:
        response = self.http.get(self.path(WORKFLOWRUNS))
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def resource_version(self) -> str:
        """The cluster's resourceVersion now (from a list): watch history after it is what follows."""
        response = self.http.get(self.path(WORKFLOWRUNS))
        return str(response.json()["metadata"]["resourceVersion"])

    def phase(self, name: str) -> str:
        return str((self.run(name).get("status") or {}).get("phase") or "Pending")

    def wait_phase(self, name: str, *phases: str, timeout: float = 30) -> JSON:
        def probe() -> JSON | None:
            run = self.run(name)
            return run if (run.get("status") or {}).get("phase") in phases else None

        return wait_for(probe, timeout=timeout, what=f"run {name} to be {' or '.join(phases)}")

    def history(self, since: str) -> list[JSON]:
        """Every watch event of the namespace's runs after ``since`` (the watch ends after a second)."""
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
        events: list[JSON] = []
        with self.http.stream("GET", self.path(WORKFLOWRUNS), params=params, timeout=30) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.strip():
                    events.append(json.loads(line))
        assert all(event["type"] != "ERROR" for event in events), events
        return events


def finished_writes(events: list[JSON], name: str) -> list[JSON]:
    """The watch events in which the run ``name`` is in a final phase."""
    return [
        event
        for event in events
        if event["object"]["metadata"]["name"] == name
        and (event["object"].get("status") or {}).get("phase") in ("Completed", "Failed", "Cancelled")
    ]


@dataclass
class Runtime:
    """One runtime process."""

    process: subprocess.Popen[bytes]
    log: Path
    pod: str
    url: str = ""
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_listening(self) -> None:
        def probe() -> str | None:
            assert self.process.poll() is None, f"runtime {self.pod} exited:\n{self.log_text()[-3000:]}"
            match = LISTENING.search(self.log_text())
            return match.group(1) if match else None

        self.url = wait_for(probe, timeout=30, what=f"runtime {self.pod} to listen")

    def wait_ready(self) -> None:
        def probe() -> bool:
            assert self.process.poll() is None, f"runtime {self.pod} exited:\n{self.log_text()[-3000:]}"
            try:
                return self.client.get(f"{self.url}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(probe, timeout=30, what=f"runtime {self.pod} to be ready")

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(f"{self.url}{path}", **kwargs)

    def get(self, path: str) -> httpx.Response:
        return self.client.get(f"{self.url}{path}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


class Runtimes:
    """Starts runtime processes for one test and stops them all at its end."""

    def __init__(self, sandbox: Sandbox, kube: Kube, directory: Path, echo: Echo) -> None:
        self.sandbox = sandbox
        self.kube = kube
        self.directory = directory
        self.echo = echo
        self.started: list[Runtime] = []
        self.workflows: set[str] = set()

    def create_workflow(self, workflow: str, definition: JSON) -> None:
        if workflow not in self.workflows:
            self.kube.create_workflow(workflow, definition)
            self.workflows.add(workflow)

    def start(
        self,
        workflow: str,
        definition: JSON,
        *,
        pod: str,
        wait: bool = True,
        env: dict[str, str] | None = None,
    ) -> Runtime:
        """Start a runtime; with ``wait``, return once it listens and is ready."""
        self.create_workflow(workflow, definition)
        definition_path = self.directory / f"{workflow}-{pod}.json"
        definition_path.write_text(json.dumps({**definition, "displayName": workflow}))
        environment = {
            **os.environ,
            "KUBECONFIG": str(self.sandbox.kubeconfig),
            "TIDEFLOW_WORKFLOW": workflow,
            "TIDEFLOW_NAMESPACE": self.kube.namespace,
            "TIDEFLOW_POD_NAME": pod,
            "POD_IP": "127.0.0.1",
            "TIDEFLOW_PORT": "0",
            "TIDEFLOW_DEFINITION_PATH": str(definition_path),
            "TIDEFLOW_HTTP_ALLOWLIST": "127.0.0.1",
            "TIDEFLOW_LOG_LEVEL": os.environ.get("TIDEFLOW_TEST_RUNTIME_LOG_LEVEL", "INFO"),
            **(env or {}),
        }
        log = self.directory / f"{workflow}-{pod}-{len(self.started)}.log"  # one per process
        process = subprocess.Popen(
            [sys.executable, "-m", "tideflow.runtime"],
            cwd=ROOT,
            env=environment,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        runtime = Runtime(process, log, pod)
        self.started.append(runtime)
        if wait:
            runtime.wait_listening()
            runtime.wait_ready()
        return runtime

    def stop_all(self) -> None:
        for runtime in self.started:
            if runtime.process.poll() is None:
                runtime.process.send_signal(signal.SIGKILL)
                runtime.process.wait(timeout=30)
            runtime.client.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kube(http: httpx.Client, namespace: str) -> Kube:
    return Kube(http, namespace)


@pytest.fixture
def runtimes(sandbox: Sandbox, kube: Kube, tmp_path: Path, echo: Echo) -> Iterator[Runtimes]:
    started = Runtimes(sandbox, kube, tmp_path, echo)
    try:
        yield started
    finally:
        started.stop_all()
