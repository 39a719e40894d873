"""The local system ``make up`` starts next to the sandbox cluster: the operator and the REST API.

Each component runs as a background process with its pid file and log in the state directory;
``start`` waits until the component answers its health endpoint, ``stop`` sends SIGTERM to its
process group and SIGKILL after a grace period, so ``make down`` leaves no process behind.
Components are started as programs (``python -m tideflow.operator``), never imported here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Component:
    """A process of the local system."""

    name: str
    module: str
    health_url: str
    env: dict[str, str] = field(default_factory=dict)


def operator(state_dir: Path, liveness_port: int = 8081, metrics_port: int = 9090) -> Component:
    return Component(
        name="operator",
        module="tideflow.operator",
        health_url=f"http://127.0.0.1:{liveness_port}/healthz",
        env={
            "KUBECONFIG": str(state_dir / "kubeconfig"),
            "TIDEFLOW_LIVENESS_PORT": str(liveness_port),
            "TIDEFLOW_METRICS_PORT": str(metrics_port),
            "TIDEFLOW_RESYNC_SECONDS": "10",
        },
    )


def bootstrap_key(state_dir: Path) -> str:
    """The API's bootstrap admin key: ``TIDEFLOW_BOOTSTRAP_API_KEY``, else one kept in the state directory.

    A generated key is written once (mode 0600) and reused by later ``make up`` runs, so scripts and
    the README's curl commands keep working across restarts.
    """
    given = os.environ.get("TIDEFLOW_BOOTSTRAP_API_KEY")
    if given:
        return given
    path = state_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    key = "tf-dev-" + secrets.token_hex(24)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def api(state_dir: Path, key: str, port: int = 8000) -> Component:
    """The REST API on 127.0.0.1:``port``, organization ``default``, runtimes reached at their pod IPs."""
    return Component(
        name="api",
        module="tideflow.api",
        health_url=f"http://127.0.0.1:{port}/healthz",
        env={
            "KUBECONFIG": str(state_dir / "kubeconfig"),
            "TIDEFLOW_API_HOST": "127.0.0.1",
            "TIDEFLOW_API_PORT": str(port),
            "TIDEFLOW_BOOTSTRAP_API_KEY": key,
            "TIDEFLOW_BOOTSTRAP_ORG": "default",
            "TIDEFLOW_RUNTIME_ADDRESS": "pod",
        },
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid(state_dir: Path, name: str) -> int | None:
    try:
        pid = int((state_dir / f"{name}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310  (http to loopback)
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def start(state_dir: Path, component: Component, timeout: float = 60.0) -> int:
    """Start ``component`` unless it already runs; wait for its health endpoint; return its pid."""
    running = _pid(state_dir, component.name)
    if running is not None:
        return running
    log = (state_dir / f"{component.name}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", component.module],
        env={**os.environ, **component.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (state_dir / f"{component.name}.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the {component.name} exited with {process.returncode}; "
                f"see {state_dir / (component.name + '.log')}"
            )
        if _healthy(component.health_url):
            return process.pid
        time.sleep(0.2)
    stop(state_dir, component.name)
    raise RuntimeError(f"the {component.name} did not become healthy in {timeout:.0f}s")


def stop(state_dir: Path, name: str, grace: float = 20.0) -> bool:
    """Stop a component's process group; True when it was running."""
    pid = _pid(state_dir, name)
    (state_dir / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def running(state_dir: Path, name: str) -> bool:
    return _pid(state_dir, name) is not None
