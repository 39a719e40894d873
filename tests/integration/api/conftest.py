"""Fixtures for the API's integration tests: the real API, operator and runtimes against the sandbox.

``stack`` (one per test module) makes two organizations (namespaces ``org`` and ``other``), starts
``python -m tideflow.operator`` watching both with the real runtime as its runtime command and the
system clock, and ``python -m tideflow.api`` serving both, with a bootstrap admin key for ``org``
and runtimes reached at their pods' IPs (the sandbox has no Service proxying). ``stack.client(key)``
is an ``httpx.Client`` on the API with that key; ``stack.key(user, scopes, org=...)`` makes a key
through the API's own ``/api-keys`` route. Every process is stopped at the end, by its pid.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROOT, Sandbox
from tests.integration.operator.conftest import free_port
from tests.support import wait_for

JSON = dict[str, Any]
ALL = ("workflows:read", "workflows:write", "workflows:execute")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class Stack:
    sandbox: Sandbox
    org: str
    other: str
    url: str
    admin_key: str
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key is not None:
            headers = {"X-API-Key": key, **headers}
        return httpx.Client(base_url=self.url, headers=headers, timeout=90)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def key(self, user: str, scopes: tuple[str, ...] = ALL, *, org: str | None = None) -> str:
        """A new key for ``user`` in ``org`` (default: the main organization)."""
        if org is None or org == self.org:
            with self.admin() as admin:
                answer = admin.post("/api/v1/api-keys", json={"user": user, "scopes": list(scopes)})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["apiKey"])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tideflow.api",
                "create-key",
                "--org",
                org,
                "--user",
                user,
                "--scopes",
                ",".join(scopes),
            ],
            env={**os.environ, "KUBECONFIG": str(self.sandbox.kubeconfig)},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return result.stdout.strip()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, name: str, module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        base = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**base, "KUBECONFIG": str(self.sandbox.kubeconfig), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def stop_all(self) -> None:
        for process in self.processes.values():
            _stop(process)


def _create_namespace(http: httpx.Client, name: str) -> None:
    answer = http.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def stack(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    suffix = secrets.token_hex(3)
    org, other = f"api-org-{suffix}", f"api-other-{suffix}"
    kube = httpx.Client(base_url=sandbox.url, timeout=30)
    for namespace in (org, other):
        _create_namespace(kube, namespace)
    port = free_port()
    stack = Stack(
        sandbox=sandbox,
        org=org,
        other=other,
        url=f"http://127.0.0.1:{port}",
        admin_key="bootstrap-" + secrets.token_hex(16),
        logs=tmp_path_factory.mktemp("api-stack"),
    )
    namespaces = f"{org},{other}"
    try:
        stack.start(
            "operator",
            "tideflow.operator",
            {
                "TIDEFLOW_NAMESPACES": namespaces,
                "TIDEFLOW_RUNTIME_PORT": str(free_port()),
                "TIDEFLOW_RESYNC_SECONDS": "2",
                "TIDEFLOW_METRICS_PORT": "0",
                "TIDEFLOW_LIVENESS_PORT": "0",
            },
        )
        api = stack.start(
            "api",
            "tideflow.api",
            {
                "TIDEFLOW_API_HOST": "127.0.0.1",
                "TIDEFLOW_API_PORT": str(port),
                "TIDEFLOW_NAMESPACES": namespaces,
                "TIDEFLOW_BOOTSTRAP_API_KEY": stack.admin_key,
                "TIDEFLOW_BOOTSTRAP_ORG": org,
                "TIDEFLOW_RUNTIME_ADDRESS": "pod",
                "TIDEFLOW_TRIGGER_HOLD_SECONDS": "45",
                "TIDEFLOW_MAX_BODY_BYTES": "65536",
            },
        )

        def healthy() -> bool:
            assert api.poll() is None, f"the API exited:\n{stack.log('api')[-3000:]}"
            try:
                return httpx.get(f"{stack.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="the API to answer /healthz")
        yield stack
    finally:
        stack.stop_all()
        kube.close()


def workflow_body(name: str = "hello", **fields: Any) -> JSON:
    """A small valid workflow: a manual trigger and a transform that echoes its input."""
    body: JSON = {
        "name": name,
        "description": "made by a test",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "echo",
                "type": "transform",
                "config": {"set": {"greeting": "hello {{ start.inputs.who }}"}},
            },
        ],
        "connections": [{"id": "c1", "source": "start", "target": "echo"}],
    }
    body.update(fields)
    return body
