"""Integration fixtures: one sandbox cluster process per test session, one fresh namespace per test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import kubernetes
import pytest
import yaml

from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox cluster: its URL, kubeconfig and state directory."""

    url: str
    kubeconfig: Path
    state_dir: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the sandbox, as a user would type it."""
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


def start_sandbox(state_dir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Sandbox]:
    """Start ``python -m tideflow.sandbox serve`` and wait until it answers ``/readyz``."""
    kubeconfig = state_dir / "kubeconfig"
    log = (state_dir / "sandbox.log").open("ab")
    state_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tideflow.sandbox",
            "serve",
            "--state-dir",
            str(state_dir),
            "--port",
            "0",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )

    def ready() -> str | None:
        assert process.poll() is None, f"sandbox exited: {(state_dir / 'sandbox.log').read_text()[-3000:]}"
        if not kubeconfig.exists():
            return None
        url = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
        try:
            return url if httpx.get(f"{url}/readyz", timeout=1).status_code == 200 else None
        except httpx.HTTPError:
            return None

    url = wait_for(ready, timeout=30, what="the sandbox to answer /readyz")
    return process, Sandbox(url=url, kubeconfig=kubeconfig, state_dir=state_dir)


def stop_sandbox(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The session's sandbox cluster, with Tideflow's CRDs installed."""
    process, cluster = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        cluster.kubectl("apply", "-f", str(ROOT / "crds"))
        yield cluster
    finally:
        stop_sandbox(process)


@pytest.fixture(scope="session")
def api_client(sandbox: Sandbox) -> Iterator[kubernetes.client.ApiClient]:
    """The official Kubernetes client, configured from the sandbox's kubeconfig."""
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig)
    )
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(api_client: kubernetes.client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A raw HTTP client for the sandbox's API, for asserting exact status codes and bodies."""
    with httpx.Client(base_url=sandbox.url, timeout=30) as client:
        yield client
