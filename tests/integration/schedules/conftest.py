"""Fixtures for the schedule tests: any number of operator processes per test, a ticking clock, raw HTTP.

``operators.new(name, ...)`` makes an operator process (``python -m tideflow.operator``) for the
test's namespace that the test starts, SIGKILLs and restarts as it likes; several can run at once
(all standalone, so nothing but the API server's conflicts and the run names keep them apart). By
default it uses the stand-in runtime (probes only, it never executes a WorkflowRun);
``real_runtime=True`` leaves ``TIDEFLOW_RUNTIME_COMMAND`` unset, so the pods run
``python -m tideflow.runtime``. Each process's log is ``operators/<namespace>-<name>.log`` in the
sandbox's state directory, with a marker line per start. Every process a test started is stopped
when it ends.

``TickingClock`` is an operator clock file (``TIDEFLOW_CLOCK_FILE``) that follows real time plus an
offset that only grows: runtimes and the API server stamp real time, so the operator's clock must
agree with them until a test moves it forward past something (an idle timeout) it will not wait for.

``Api`` is the namespace's objects over raw HTTP, spelled out as the API calls the tests make.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ROOT, Sandbox
from tests.integration.operator.conftest import MERGE, free_port
from tests.integration.operator.conftest import STARTED_LINE as STARTED_LINE
from tests.support import wait_for
from tideflow.core.clock import parse_time

JSON = dict[str, Any]
STAND_IN_RUNTIME = ROOT / "tests" / "integration" / "operator" / "stand_in_runtime.py"
TIDEFLOW = "/apis/tideflow.io/v1alpha1/namespaces/{ns}"
LABEL_WORKFLOW = "tideflow.io/workflow"


# --- time ---------------------------------------------------------------------------------------------


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def grid(period: int, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """The fire times of an ``interval`` schedule of ``period`` seconds in ``(after, until]``."""
    first = math.floor(after.timestamp() / period) + 1
    last = math.floor(until.timestamp() / period)
    return [dt.datetime.fromtimestamp(k * period, dt.UTC) for k in range(first, last + 1)]


def on_grid(moment: dt.datetime, period: int) -> bool:
    return moment.microsecond == 0 and int(moment.timestamp()) % period == 0


def wait_for_phase(period: int, low: float, high: float) -> float:
    """Wait (polling) until the wall clock is ``low``-``high`` seconds past a multiple of ``period``."""

    def in_phase() -> float | None:
        now = time.time()
        return now if low <= now % period < high else None

    return wait_for(in_phase, timeout=period + 1, interval=0.02, what=f"{low}-{high}s past a fire time")


def run_name(workflow: str, scheduled: dt.datetime) -> str:
    """The documented scheduled-run name (docs/schedules.md), spelled out independently of the code."""
    return f"{workflow}-s-{scheduled.astimezone(dt.UTC):%Y%m%d%H%M%S}"


class TickingClock:
    """A ``TIDEFLOW_CLOCK_FILE`` at real time plus an offset that never decreases.

    Until the first :meth:`jump_to` the file does not exist, so the operator reads the system clock
    itself (``file_clock`` falls back to it): its 'now' is exactly real time, not a copy that lags
    by a tick. From the first jump on, a thread rewrites the file every 0.1 s with real time plus
    the offset.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.unlink(missing_ok=True)
        self._offset = dt.timedelta(0)
        self._jumped = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="ticking-clock", daemon=True)
        self._thread.start()

    def now(self) -> dt.datetime:
        with self._lock:
            return utc_now() + self._offset

    def jump_to(self, moment: dt.datetime) -> dt.datetime:
        """Move the clock forward to ``moment`` (never backwards) and keep ticking from there."""
        with self._lock:
            self._offset = max(self._offset, moment - utc_now())
            self._jumped = True
        return self._write()

    def _write(self) -> dt.datetime:
        moment = self.now()
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") + "\n")
        temporary.replace(self.path)  # atomic: the operator never reads half a timestamp
        return moment

    def _tick(self) -> None:
        while not self._stop.wait(0.1):
            if self._jumped:
                self._write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# --- operator processes ---------------------------------------------------------------------------------


class OperatorProcess:
    """One operator process: start (optionally without waiting), SIGKILL, SIGTERM, log."""

    def __init__(self, name: str, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        assert not self.alive, f"operator {self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== test fixture: operator {self.name} start #{self.starts} ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tideflow.operator"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        if wait:
            wait_for(self.started, timeout=30, what=f"operator {self.name}'s startup handler")

    def started(self) -> bool:
        """True once the current process has run its startup handler."""
        assert self.alive, f"operator {self.name} exited:\n{self.log_tail()}"
        current = self.log().rsplit(f"operator {self.name} start #{self.starts} ===", 1)[-1]
        return STARTED_LINE in current

    def kill(self) -> None:
        """SIGKILL: no cleanup, whatever was in flight is lost."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, characters: int = 3000) -> str:
        return self.log()[-characters:]


class Operators:
    """Makes the test's operator processes and stops all of them at the end."""

    def __init__(self, sandbox: Sandbox, namespace: str, runtime_port: int) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.runtime_port = runtime_port
        self.directory = sandbox.state_dir / "operators"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.instances: list[OperatorProcess] = []

    def new(self, name: str, *, real_runtime: bool = False, **settings: str) -> OperatorProcess:
        """An operator for this namespace; ``settings`` are extra ``TIDEFLOW_*`` variables."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
        env.update(
            {
                "KUBECONFIG": str(self.sandbox.kubeconfig),
                "TIDEFLOW_NAMESPACES": self.namespace,
                "TIDEFLOW_RUNTIME_PORT": str(self.runtime_port),
                "TIDEFLOW_METRICS_PORT": "0",
                "TIDEFLOW_LIVENESS_PORT": "0",
            }
        )
        if not real_runtime:
            env["TIDEFLOW_RUNTIME_COMMAND"] = f'["{sys.executable}", "{STAND_IN_RUNTIME}"]'
        env.update(settings)
        instance = OperatorProcess(name, self.directory / f"{self.namespace}-{name}.log", env)
        self.instances.append(instance)
        return instance

    def logs(self, characters: int = 2000) -> str:
        """The tail of every instance's log, for failure messages."""
        return "\n".join(f"--- operator {o.name} ---\n{o.log_tail(characters)}" for o in self.instances)

    def close(self) -> None:
        for instance in self.instances:
            instance.stop()


# --- the API ----------------------------------------------------------------------------------------------


class Api:
    """The namespace's objects over raw HTTP."""

    def __init__(self, http: httpx.Client, namespace: str) -> None:
        self.http = http
        self.namespace = namespace

    def _ok(self, response: httpx.Response) -> JSON:
        assert response.status_code < 300, (
            f"{response.request.method} {response.request.url}: {response.text}"
        )
        body: JSON = response.json()
        return body

    def _get(self, path: str) -> JSON | None:
        response = self.http.get(path)
        return None if response.status_code == 404 else self._ok(response)

    @property
    def _tideflow(self) -> str:
        return TIDEFLOW.format(ns=self.namespace)

    def create_workflow(self, manifest: JSON) -> JSON:
        return self._ok(self.http.post(f"{self._tideflow}/workflows", json=manifest))

    def workflow(self, name: str) -> JSON:
        workflow = self._get(f"{self._tideflow}/workflows/{name}")
        assert workflow is not None, f"Workflow {name} does not exist"
        return workflow

    def runs(self, workflow: str) -> list[JSON]:
        """The workflow's WorkflowRuns (by label), oldest scheduled time first."""
        response = self.http.get(
            f"{self._tideflow}/workflowruns", params={"labelSelector": f"{LABEL_WORKFLOW}={workflow}"}
        )
        items: list[JSON] = self._ok(response)["items"]
        return sorted(
            items, key=lambda run: (run["spec"].get("scheduledTime") or "", run["metadata"]["name"])
        )

    def find_run(self, name: str) -> JSON | None:
        return self._get(f"{self._tideflow}/workflowruns/{name}")

    def run(self, name: str) -> JSON:
        run = self.find_run(name)
        assert run is not None, f"WorkflowRun {name} does not exist"
        return run

    def patch_run_status(self, name: str, status: JSON) -> JSON:
        return self._ok(
            self.http.patch(
                f"{self._tideflow}/workflowruns/{name}/status", json={"status": status}, headers=MERGE
            )
        )

    def deployment(self, name: str) -> JSON | None:
        return self._get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{name}")

    def pods(self, workflow: str) -> list[JSON]:
        response = self.http.get(
            f"/api/v1/namespaces/{self.namespace}/pods",
            params={"labelSelector": f"{LABEL_WORKFLOW}={workflow}"},
        )
        items: list[JSON] = self._ok(response)["items"]
        return items

    def inject_fault(self, method: str, path_regex: str, status: int, times: int) -> None:
        """Answer the next ``times`` matching requests with ``status`` (the sandbox's fault endpoint)."""
        body = {"method": method, "path": path_regex, "status": status, "times": times}
        response = self.http.post("/_sandbox/faults", json=body)
        assert response.status_code == 201, response.text

    def faults_left(self, path_regex: str) -> int:
        faults = self._ok(self.http.get("/_sandbox/faults"))["faults"]
        return sum(int(f["remaining"]) for f in faults if f["path"] == path_regex)

    def clear_faults(self) -> None:
        self._ok(self.http.delete("/_sandbox/faults"))

    def events(self, involved: str, reason: str | None = None) -> list[JSON]:
        items: list[JSON] = self._ok(self.http.get(f"/api/v1/namespaces/{self.namespace}/events"))["items"]
        return [
            event
            for event in items
            if event["involvedObject"]["name"] == involved and (reason is None or event["reason"] == reason)
        ]


def status(workflow: JSON) -> JSON:
    return dict(workflow.get("status") or {})


def condition(workflow: JSON, type_: str) -> JSON:
    """The condition of that type on the Workflow's status ({} when absent)."""
    for entry in status(workflow).get("conditions") or []:
        if entry.get("type") == type_:
            return dict(entry)
    return {}


def checkpoint(workflow: JSON) -> dt.datetime | None:
    value = status(workflow).get("scheduleCheckpoint")
    return parse_time(value) if isinstance(value, str) else None


def scheduled_time(run: JSON) -> dt.datetime:
    return parse_time(run["spec"]["scheduledTime"])


def pod_ready(pod: JSON) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def scheduled_workflow(name: str, schedule: JSON, *, lifecycle: JSON | None = None) -> JSON:
    """An Active, deployed Workflow with ``schedule``: a schedule trigger feeding a log node."""
    spec: JSON = {
        "description": "schedule integration test",
        "state": "Active",
        "deployed": True,
        "schedule": schedule,
        "nodes": [
            {"id": "tick", "type": "schedule_trigger", "label": "Tick"},
            {
                "id": "say",
                "type": "log",
                "label": "Say",
                "config": {"message": "fired for {{ tick.scheduledTime }}", "level": "info"},
            },
        ],
        "connections": [{"id": "tick-say", "source": "tick", "target": "say"}],
    }
    if lifecycle is not None:
        spec["lifecycle"] = lifecycle
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": spec,
    }


# --- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtime_port() -> int:
    """The runtime pods' port for this session (not 8080: sandboxes side by side share loopback)."""
    return free_port()


@pytest.fixture
def operators(sandbox: Sandbox, namespace: str, runtime_port: int) -> Iterator[Operators]:
    """A factory of operator processes for this test's namespace; all are stopped afterwards."""
    made = Operators(sandbox, namespace, runtime_port)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def api(http: httpx.Client, namespace: str) -> Api:
    """Raw-HTTP access to this test's namespace."""
    return Api(http, namespace)


@pytest.fixture
def ticking_clock(sandbox: Sandbox, namespace: str) -> Iterator[TickingClock]:
    """An operator clock file at real time, which the test may only move forward."""
    directory = sandbox.state_dir / "operators"
    directory.mkdir(parents=True, exist_ok=True)
    clock = TickingClock(directory / f"{namespace}.clock")
    try:
        yield clock
    finally:
        clock.close()
