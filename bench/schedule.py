"""Schedule lateness at scale: many Workflows firing every 10 seconds, each with its own real runtime.

Starts its own sandbox (``python -m tideflow.sandbox serve``) and one operator
(``python -m tideflow.operator``, watching one namespace) with ``TIDEFLOW_RUNTIME_COMMAND`` unset,
so every runtime pod runs the real ``python -m tideflow.runtime``. Then, in the same namespace:

1. baseline: one Workflow fires for ``--baseline-seconds``;
2. load: ``--workflows`` Workflows (default 100, one runtime each, never 100 schedules on fewer
   workflows) are created ``Paused`` (deployed, so their runtimes start, but not firing); once every
   runtime is ready they are all switched to ``Active`` and fire for ``--seconds``.

Runtimes are brought up ``--batch`` at a time (see :func:`bring_up` for why).

Every schedule is ``interval: 10 seconds`` (the minimum), so all Workflows fire at the same
instants: each fire time is a burst of ``--workflows`` runs. The window opens once every Workflow
shows ``Scheduled=True``; the fire times inside it are measured. The operator runs with its
defaults (30 s resync, 8 concurrent reconciles). Per run the bench reports:

- ``started``: ``status.startedAt - spec.scheduledTime``, the lateness a user sees (the runtime
  claims the run and starts it);
- ``created``: ``metadata.creationTimestamp - spec.scheduledTime``, the operator's part. The API
  server stamps whole seconds, so this is floored to the second;
- ``seen``: when a watch on WorkflowRuns (in this process) saw the run ``ADDED``, minus
  ``scheduledTime``: the operator's part to the sub-second, plus the watch's delivery.

The load phase is printed as a ratio to the baseline (same machine, same run). Fire times without a
run, and runs that never started within ``--drain-seconds`` after the window, are counted: with
``p99(started)`` under the interval and none of them, the machine "takes" that many workflows. CPU
is the average number of cores used over the window by the sandbox (API server, controllers, pod
runner), the operator, all runtime processes together, and the whole machine (other users' processes
included: compare it with the sum of the others before trusting a ratio).

    .venv/bin/python bench/schedule.py [--workflows 100] [--seconds 120] [--baseline-seconds 60]
        [--lifecycle always-on|on-demand] [--ready-timeout 600] [--keep DIR]

Everything it starts (the sandbox, whose pod processes die with it, and the operator) is stopped at
the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import yaml

from tideflow.sandbox.cluster import install_manifests

ROOT = Path(__file__).resolve().parents[1]
PERIOD = 10
NAMESPACE = "bench-schedule"
TIDEFLOW = f"/apis/tideflow.io/v1alpha1/namespaces/{NAMESPACE}"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON = dict[str, Any]
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- processes ------------------------------------------------------------------------------------------


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_sandbox(state_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    kubeconfig = state_dir / "kubeconfig"
    with (state_dir / "sandbox.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tideflow.sandbox", "serve", "--state-dir", str(state_dir), "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )

    def ready() -> str | None:
        if process.poll() is not None:
            raise SystemExit(f"the sandbox exited; see {state_dir / 'sandbox.log'}")
        if not kubeconfig.exists():
            return None
        url = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
        try:
            return url if httpx.get(f"{url}/readyz", timeout=1).status_code == 200 else None
        except httpx.HTTPError:
            return None

    url = wait_until(ready, 30, "the sandbox")
    install_manifests(kubeconfig, ROOT / "crds")
    return process, url, kubeconfig


class Operator:
    """The operator process, with its default settings but the namespace and the ports."""

    def __init__(self, state_dir: Path, kubeconfig: Path) -> None:
        self.log_path = state_dir / "operator.log"
        self.kubeconfig = kubeconfig
        # Fixed for the whole run: a different port would change every Deployment and roll its pod.
        self.runtime_port = free_port()  # not 8080: sandboxes side by side share loopback addresses
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> psutil.Process:
        """Start it and wait for its start-up handler."""
        self.stop()
        env = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            TIDEFLOW_NAMESPACES=NAMESPACE,
            TIDEFLOW_RUNTIME_PORT=str(self.runtime_port),
            TIDEFLOW_METRICS_PORT="0",
            TIDEFLOW_LIVENESS_PORT="0",
        )
        self.starts += 1
        marker = f"=== bench: operator start #{self.starts} ==="
        with self.log_path.open("ab") as out:
            out.write(f"{marker}\n".encode())
            out.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "tideflow.operator"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.process = process

        def started() -> bool:
            if process.poll() is not None:
                raise SystemExit(f"the operator exited; see {self.log_path}")
            text = self.log_path.read_text(errors="replace").rsplit(marker, 1)[-1]
            return "tideflow operator started" in text

        wait_until(started, 60, "the operator's startup")
        return psutil.Process(process.pid)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    totals: dict[int, float] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            totals[process.pid] = times.user + times.system
    return totals


@dataclass
class Machine:
    """CPU seconds of the sandbox, the operator and the runtime pods, between two snapshots."""

    sandbox: psutil.Process
    operator: psutil.Process
    seen: dict[int, psutil.Process] = field(default_factory=dict)  # every runtime process met
    start: dict[str, dict[int, float]] = field(default_factory=dict)
    started_at: float = 0.0

    def runtimes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            found: list[psutil.Process] = self.sandbox.children(recursive=True)
            self.seen.update((p.pid, p) for p in found)
            return found
        return []

    def snapshot(self) -> dict[str, dict[int, float]]:
        machine = psutil.cpu_times()
        return {
            "sandbox": cpu_seconds([self.sandbox]),
            "operator": cpu_seconds([self.operator]),
            "runtimes": cpu_seconds(self.runtimes()),
            "whole machine": {
                0: machine.user + machine.system + machine.nice + machine.irq + machine.softirq
            },
        }

    def begin(self) -> None:
        self.start = self.snapshot()
        self.started_at = time.monotonic()

    def cores(self) -> dict[str, float]:
        end = self.snapshot()
        elapsed = time.monotonic() - self.started_at
        return {
            group: sum(value - self.start[group].get(pid, 0.0) for pid, value in end[group].items()) / elapsed
            for group in end
        }

    def runtime_rss(self) -> int:
        total = 0
        for process in self.runtimes():
            with contextlib.suppress(psutil.Error):
                total += int(process.memory_info().rss)
        return total


# --- the cluster side -----------------------------------------------------------------------------------


def workflow(name: str, lifecycle: str) -> JSON:
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": {"bench": "schedule"}},
        "spec": {
            "description": "bench/schedule.py",
            "state": "Paused",
            "deployed": True,
            "lifecycle": {"type": lifecycle},
            "schedule": {"type": "interval", "value": f"{PERIOD} seconds"},
            "nodes": [
                {"id": "tick", "type": "schedule_trigger", "label": "Tick"},
                {
                    "id": "say",
                    "type": "log",
                    "label": "Say",
                    "config": {"message": "{{ tick.scheduledTime }}"},
                },
            ],
            "connections": [{"id": "tick-say", "source": "tick", "target": "say"}],
        },
    }


class RunWatch:
    """Records when each WorkflowRun of the namespace is first seen ADDED on a watch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-watch", daemon=True)

    def start(self) -> None:
        listing = httpx.get(f"{self.url}{TIDEFLOW}/workflowruns", timeout=30).json()
        self._version = str(listing["metadata"]["resourceVersion"])
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            params = {"watch": "true", "resourceVersion": self._version, "timeoutSeconds": "60"}
            try:
                with httpx.stream(
                    "GET", f"{self.url}{TIDEFLOW}/workflowruns", params=params, timeout=90
                ) as response:
                    for line in response.iter_lines():
                        if self._stop.is_set():
                            return
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion")
                        if event.get("type") == "ERROR":
                            return  # 410: the listing later still has every run; only "seen" is lost
                        if version:
                            self._version = str(version)
                        if event.get("type") == "ADDED":
                            self.seen.setdefault(obj["metadata"]["name"], time.time())
            except httpx.HTTPError:
                time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()


def fire_times(after: float, until: float) -> list[dt.datetime]:
    first = math.floor(after / PERIOD) + 1
    last = math.floor(until / PERIOD)
    return [dt.datetime.fromtimestamp(k * PERIOD, dt.UTC) for k in range(first, last + 1)]


@dataclass
class Options:
    lifecycle: str
    batch: int
    ready_timeout: float
    drain_seconds: float


@dataclass
class Phase:
    label: str
    workflows: int
    fire_times: int = 0
    expected: int = 0
    runs: int = 0
    started: list[float] = field(default_factory=list)
    created: list[float] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)
    not_started: int = 0
    duplicates: int = 0
    cores: dict[str, float] = field(default_factory=dict)
    runtime_rss: int = 0
    ready_seconds: float = 0.0
    restarts: int = 0  # runtime container restarts during the window
    skipped: dict[str, int] = field(default_factory=dict)  # fire times skipped, by reason (Events)
    failure: str | None = None


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def restarts(http: httpx.Client, names: set[str]) -> int:
    items = http.get(f"/api/v1/namespaces/{NAMESPACE}/pods").json()["items"]
    return sum(
        int(status.get("restartCount") or 0)
        for pod in items
        if (pod["metadata"].get("labels") or {}).get("tideflow.io/workflow") in names
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    )


def ready_runtimes(http: httpx.Client, names: set[str], least: int) -> set[str]:
    """Workflows whose runtime Deployment has ``least`` ready replicas (0: it exists)."""
    items = http.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments").json()["items"]
    return {
        d["metadata"]["name"]
        for d in items
        if d["metadata"]["name"] in names and int((d.get("status") or {}).get("readyReplicas") or 0) >= least
    }


def bring_up(http: httpx.Client, names: list[str], options: Options, phase: Phase) -> bool:
    """Create the Workflows ``Paused``, ``options.batch`` at a time, each batch once the last is ready.

    The sandbox's pod runner probes liveness from the moment a container starts and every second
    until it is ready (it takes the readiness probe's initialDelaySeconds and its 1-second not-ready
    period for both), so a runtime that takes more than about 3 s to listen is SIGKILLed, again and
    again: twenty runtimes starting together on two cores never come up. Small batches keep each
    start short. An on-demand runtime starts only for a coming run: there the Deployment is enough.
    """
    least = 1 if options.lifecycle == "always-on" else 0
    began = time.monotonic()
    for first in range(0, len(names), options.batch):
        batch = names[first : first + options.batch]
        for name in batch:
            http.post(f"{TIDEFLOW}/workflows", json=workflow(name, options.lifecycle)).raise_for_status()
        wanted = set(names[: first + len(batch)])

        def all_ready(wanted: set[str] = wanted) -> bool:
            return ready_runtimes(http, wanted, least) == wanted

        try:
            wait_until(all_ready, options.ready_timeout, f"{len(wanted)} runtimes to be ready", interval=1.0)
        except TimeoutError:
            ready = len(ready_runtimes(http, set(names), least))
            phase.failure = (
                f"only {ready}/{len(names)} runtimes ready {options.ready_timeout:.0f}s after the batch of "
                f"{len(batch)} up to {len(wanted)} was created; {restarts(http, set(names))} container "
                "restarts (liveness probes)"
            )
            return False
        elapsed = time.monotonic() - began
        log(f"{phase.label}: {len(wanted)}/{len(names)} runtime(s) ready after {elapsed:.0f}s")
    phase.ready_seconds = time.monotonic() - began
    return True


def run_phase(
    http: httpx.Client,
    machine: Machine,
    watch: RunWatch,
    label: str,
    names: list[str],
    seconds: float,
    options: Options,
) -> Phase:
    log(f"{label}: creating {len(names)} Workflow(s), Paused, lifecycle {options.lifecycle}")
    phase = Phase(label, len(names))
    wanted = set(names)
    try:
        if bring_up(http, names, options, phase):
            measure(http, machine, watch, names, seconds, options, phase)
    finally:
        for name in names:  # the next phase has its own runtimes
            http.delete(f"{TIDEFLOW}/workflows/{name}")
        wait_until(
            lambda: not ready_runtimes(http, wanted, 0), 120, f"{label}'s runtimes to go", interval=1.0
        )
    return phase


def measure(
    http: httpx.Client,
    machine: Machine,
    watch: RunWatch,
    names: list[str],
    seconds: float,
    options: Options,
    phase: Phase,
) -> None:
    wanted = set(names)
    switched = time.time()
    for name in names:
        http.patch(f"{TIDEFLOW}/workflows/{name}", json={"spec": {"state": "Active"}}, headers=MERGE)

    def all_scheduled() -> bool:
        items = http.get(f"{TIDEFLOW}/workflows", params={"labelSelector": "bench=schedule"}).json()["items"]
        scheduled = {
            w["metadata"]["name"]
            for w in items
            if any(
                c.get("type") == "Scheduled" and c.get("status") == "True"
                for c in (w.get("status") or {}).get("conditions") or []
            )
        }
        return wanted <= scheduled

    wait_until(all_scheduled, options.ready_timeout, "the operator to see every schedule Active")
    window_start = time.time()
    log(f"{phase.label}: every schedule Active {window_start - switched:.1f}s after the switch")
    machine.begin()
    restarts_before = restarts(http, wanted)
    window_end = window_start + seconds
    while time.time() < window_end:
        time.sleep(min(10.0, max(0.0, window_end - time.time())))
        log(f"{phase.label}: {len(watch.seen)} runs seen so far")
    phase.cores = machine.cores()
    phase.runtime_rss = machine.runtime_rss()
    phase.restarts = restarts(http, wanted) - restarts_before
    times = fire_times(window_start, window_end)

    # Pausing stops fire times the operator has not decided yet: first let it decide the window's.
    def decided() -> bool:
        items = http.get(f"{TIDEFLOW}/workflows", params={"labelSelector": "bench=schedule"}).json()["items"]
        done = {
            w["metadata"]["name"]
            for w in items
            if (w.get("status") or {}).get("scheduleCheckpoint")
            and parse_time(w["status"]["scheduleCheckpoint"]) >= times[-1]
        }
        return wanted <= done

    with contextlib.suppress(TimeoutError):  # what is missing then is counted below
        wait_until(decided, options.drain_seconds, "the window's last fire time to be decided")
    for name in names:
        http.patch(f"{TIDEFLOW}/workflows/{name}", json={"spec": {"state": "Paused"}}, headers=MERGE)
    phase.fire_times, phase.expected = len(times), len(names) * len(times)
    wanted_times = set(times)

    def window_runs() -> list[JSON]:
        items = http.get(
            f"{TIDEFLOW}/workflowruns", params={"labelSelector": "tideflow.io/trigger-type=schedule"}
        ).json()["items"]
        return [
            run
            for run in items
            if run["metadata"]["labels"].get("tideflow.io/workflow") in wanted
            and parse_time(run["spec"]["scheduledTime"]) in wanted_times
        ]

    def drained() -> list[JSON] | None:
        runs = window_runs()
        ended = all((run.get("status") or {}).get("phase") in ("Completed", "Failed") for run in runs)
        return runs if ended and len(runs) >= phase.expected else None

    try:
        runs = wait_until(drained, options.drain_seconds, "the window's runs to end", interval=1.0)
    except TimeoutError:
        runs = window_runs()
    events = http.get(f"/api/v1/namespaces/{NAMESPACE}/events").json()["items"]
    for event in events:
        # "Skipped the run for <time>: <reason>: <message>" (the operator's ScheduleSkipped Event)
        parts = str(event.get("message", "")).removeprefix("Skipped the run for ").split(": ", 2)
        if (
            event.get("reason") == "ScheduleSkipped"
            and event["involvedObject"]["name"] in wanted
            and len(parts) >= 2
            and parse_time(parts[0]) in wanted_times
        ):
            phase.skipped[parts[1]] = phase.skipped.get(parts[1], 0) + 1
    keys = [(run["metadata"]["labels"]["tideflow.io/workflow"], run["spec"]["scheduledTime"]) for run in runs]
    phase.duplicates = len(keys) - len(set(keys))
    phase.runs = len(runs)
    for run in runs:
        scheduled = parse_time(run["spec"]["scheduledTime"])
        phase.created.append((parse_time(run["metadata"]["creationTimestamp"]) - scheduled).total_seconds())
        seen = watch.seen.get(run["metadata"]["name"])
        if seen is not None:
            phase.seen.append(seen - scheduled.timestamp())
        started = (run.get("status") or {}).get("startedAt")
        if isinstance(started, str):
            phase.started.append((parse_time(started) - scheduled).total_seconds())
        else:
            phase.not_started += 1


def describe(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {pct(values, 0.5):7.3f}s  p99 {pct(values, 0.99):7.3f}s  max {max(values):7.3f}s  "
        f"mean {statistics.fmean(values):7.3f}s  (n={len(values)})"
    )


def ratio(load: list[float], base: list[float], q: float) -> str:
    a, b = pct(load, q), pct(base, q)
    return f"{a / b:6.1f}x" if b > 0 and not math.isnan(a) else "   n/a"


def fits(phase: Phase) -> bool:
    return (
        phase.failure is None
        and phase.runs >= phase.expected
        and phase.not_started == 0
        and phase.duplicates == 0
        and phase.restarts == 0
        and pct(phase.started, 0.99) < PERIOD
    )


def report(command: str, baseline: Phase, load: Phase) -> bool:
    print(f"command: {command}")
    print(f"machine: {os.cpu_count()} CPU(s), {psutil.virtual_memory().total / 2**30:.1f} GiB RAM")
    for phase in (baseline, load):
        print(f"\n{phase.label}: {phase.workflows} workflow(s), one runtime each, every {PERIOD}s")
        if phase.failure is not None:
            print(f"  FAILED: {phase.failure}")
            continue
        print(
            f"  runtimes ready after {phase.ready_seconds:.0f}s; {phase.fire_times} fire times measured, "
            f"{phase.expected} runs expected, {phase.runs} found ({phase.duplicates} duplicate(s)), "
            f"{phase.not_started} never started; {phase.restarts} runtime restart(s) during the window"
        )
        if phase.skipped:
            print(f"  skipped fire times (ScheduleSkipped Events): {phase.skipped}")
        print(f"  started - scheduled  {describe(phase.started)}")
        print(f"  created - scheduled  {describe(phase.created)}   (creationTimestamp: whole seconds)")
        print(f"  seen    - scheduled  {describe(phase.seen)}   (watch ADDED, this process)")
        print(
            "  CPU cores used: "
            + ", ".join(f"{group} {value:.3f}" for group, value in phase.cores.items())
            + f"; runtimes' RSS {phase.runtime_rss / 2**20:.0f} MiB"
        )
    if baseline.failure is None and load.failure is None:
        print("\nload / baseline:")
        for label, load_values, base_values in (
            ("started", load.started, baseline.started),
            ("seen", load.seen, baseline.seen),
        ):
            p50, p99 = ratio(load_values, base_values, 0.5), ratio(load_values, base_values, 0.99)
            print(f"  {label:8} p50 {p50}  p99 {p99}")
    result = fits(load)
    print(
        f"\n{load.workflows} workflows {'FIT' if result else 'DO NOT FIT'} this machine (all runtimes "
        f"up, no restart, every fire time run once and started, p99 lateness under {PERIOD}s)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the load phase fires")
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    parser.add_argument("--lifecycle", choices=("always-on", "on-demand"), default="always-on")
    parser.add_argument("--batch", type=int, default=4, help="runtimes started at a time")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="per batch")
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="keep the state directory (logs) here")
    args = parser.parse_args()
    command = shlex.join([os.path.relpath(sys.executable, ROOT), *sys.argv])
    options = Options(args.lifecycle, args.batch, args.ready_timeout, args.drain_seconds)

    state_dir = args.keep or Path(tempfile.mkdtemp(prefix="tideflow-bench-schedule-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    sandbox, url, kubeconfig = start_sandbox(state_dir)
    operator = Operator(state_dir, kubeconfig)
    watch = RunWatch(url)
    seen_pods: dict[int, psutil.Process] = {}
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            http.post(
                "/api/v1/namespaces",
                json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            ).raise_for_status()
            machine = Machine(psutil.Process(sandbox.pid), operator.start(), seen=seen_pods)
            watch.start()
            baseline = run_phase(
                http, machine, watch, "baseline", ["base-000"], args.baseline_seconds, options
            )
            names = [f"load-{index:03d}" for index in range(args.workflows)]
            load = run_phase(http, machine, watch, "load", names, args.seconds, options)
        result = report(command, baseline, load)
    finally:
        watch.close()
        operator.stop()
        stop(sandbox)
        for pod in seen_pods.values():  # they die with the sandbox (PR_SET_PDEATHSIG); make sure, by pid
            with contextlib.suppress(psutil.Error):
                if pod.is_running():
                    pod.kill()
        if args.keep is None:
            shutil.rmtree(state_dir, ignore_errors=True)
    sys.exit(0 if result else 1)


if __name__ == "__main__":
    main()
