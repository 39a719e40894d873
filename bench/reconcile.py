"""Operator reconcile cost: time to all Ready, API requests per Workflow against the minimum, peak RSS.

Starts its own sandbox (``python -m tideflow.sandbox serve``) and, for each batch size, a fresh
namespace and a fresh operator process (``python -m tideflow.operator``) watching only it; then
creates the whole batch of Workflows at once and waits until every one is reconciled.

The Workflows use ``lifecycle: on-demand`` so that no runtime pod starts (a thousand runtime
processes would measure the machine, not the operator): "Ready" here means reconciled, i.e.
``Deployed=True`` with its ConfigMap, Deployment and Service created and ``deploymentStatus:
Stopped`` (Running=False, reason NoDemand), at the Workflow's current generation.

API requests are counted from the sandbox's access log (one line per request, with the user
agent): ``tideflow-operator`` is the operator's reconcile client, ``kopf/...`` its watch machinery.
Nothing is added to the sandbox for this. The minimum one reconcile of a new on-demand Workflow
needs is 9 requests: GET the Workflow, GET its 3 children (404), LIST its WorkflowRuns (the
on-demand policy needs the run counts), create the 3 children, 1 status patch. The two Events of
the first transition (Stopped: NoDemand, and deploymentStatus -> Stopped) are shown separately.
The ratio is the measured requests per Workflow over that minimum; the baseline RSS is the idle
operator's, measured in the same run.

    .venv/bin/python bench/reconcile.py [--counts 200,1000] [--resync SECONDS] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from tideflow.sandbox.cluster import install_manifests

ROOT = Path(__file__).resolve().parents[1]
STAND_IN_RUNTIME = ROOT / "tests" / "integration" / "operator" / "stand_in_runtime.py"
MINIMUM_PER_RECONCILE = 9  # GET wf, 3 GET children, LIST runs, 3 POST children, PATCH status
ACCESS = re.compile(
    r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.1" (?P<code>\d{3}) \S+ "[^"]*" "(?P<agent>[^"]*)"'
)
JSON = dict[str, Any]


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(probe: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def start_sandbox(state_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    kubeconfig = state_dir / "kubeconfig"
    log = (state_dir / "sandbox.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tideflow.sandbox", "serve", "--state-dir", str(state_dir), "--port", "0"],
        stdout=log,
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

    url: str = wait_until(ready, 30, "the sandbox")
    install_manifests(kubeconfig, ROOT / "crds")
    return process, url


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    environment: dict[str, str]
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample_forever(self) -> None:
        proc = psutil.Process(self.process.pid)
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append(int(proc.memory_info().rss))
            self._stop.wait(0.1)

    def peak_rss(self) -> int:
        """The kernel's high-water mark (VmHWM) where available, else the largest sample."""
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return max(self.samples, default=0)

    def current_rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("tideflow_operator_") and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def close(self) -> None:
        self._stop.set()
        stop(self.process)


def start_operator(
    state_dir: Path, kubeconfig: Path, namespace: str, resync: float | None
) -> OperatorProcess:
    metrics_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
    settings = {
        "TIDEFLOW_NAMESPACES": namespace,
        "TIDEFLOW_RUNTIME_COMMAND": f'["{sys.executable}", "{STAND_IN_RUNTIME}"]',
        "TIDEFLOW_METRICS_PORT": str(metrics_port),
        "TIDEFLOW_LIVENESS_PORT": "0",
    }
    if resync is not None:
        settings["TIDEFLOW_RESYNC_SECONDS"] = str(resync)
    env.update(settings, KUBECONFIG=str(kubeconfig))
    log = state_dir / f"operator-{namespace}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tideflow.operator"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    operator = OperatorProcess(process, log, metrics_port, settings)

    def started() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"the operator exited; see {log}")
        return "tideflow operator started" in log.read_text(errors="replace")

    wait_until(started, 60, "the operator's startup")
    wait_until(operator.metrics, 30, "the operator's metrics endpoint")
    threading.Thread(target=operator.sample_forever, daemon=True).start()
    return operator


# --- the batch ------------------------------------------------------------------------------------------


def manifest(name: str, batch: int) -> JSON:
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": {"bench": str(batch)}},
        "spec": {
            "description": "reconcile benchmark",
            "state": "Active",
            "deployed": True,
            "lifecycle": {"type": "on-demand"},
            "nodes": [
                {"id": "start", "type": "manual_trigger"},
                {"id": "say", "type": "log", "config": {"message": f"{name} says hello", "level": "info"}},
            ],
            "connections": [{"id": "start-say", "source": "start", "target": "say"}],
        },
    }


async def create_all(url: str, namespace: str, names: list[str], batch: int) -> Counter[int]:
    """POST every Workflow at once (one connection each, up to 100 in flight)."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        path = f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows"
        responses = await asyncio.gather(*(client.post(path, json=manifest(n, batch)) for n in names))
    return Counter(r.status_code for r in responses)


def reconciled(workflow: JSON) -> bool:
    status = workflow.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    return (
        status.get("observedGeneration") == workflow["metadata"].get("generation")
        and (conditions.get("Deployed") or {}).get("status") == "True"
        and (conditions.get("Running") or {}).get("reason") == "NoDemand"
        and status.get("deploymentStatus") == "Stopped"
    )


def count_reconciled(http: httpx.Client, namespace: str) -> int:
    items = http.get(f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows").json()["items"]
    return sum(1 for w in items if reconciled(w))


def count_children(http: httpx.Client, namespace: str) -> dict[str, int]:
    paths = {
        "ConfigMap": f"/api/v1/namespaces/{namespace}/configmaps",
        "Deployment": f"/apis/apps/v1/namespaces/{namespace}/deployments",
        "Service": f"/api/v1/namespaces/{namespace}/services",
    }
    selector = {"labelSelector": "app.kubernetes.io/managed-by=tideflow-operator"}
    return {kind: len(http.get(path, params=selector).json()["items"]) for kind, path in paths.items()}


def classify(method: str, target: str) -> str:
    path = target.split("?", 1)[0]
    if "/events" in path:
        return f"{method} events"
    if path.endswith("/status"):
        return f"{method} workflow status"
    if "/workflowruns" in path:
        return f"{method} workflowruns (list)"
    if re.search(r"/workflows$", path):
        return f"{method} workflows (list: resync)"
    if "/workflows/" in path:
        return f"{method} workflow"
    kind = next((k for k in ("configmaps", "deployments", "services") if f"/{k}" in path), "other")
    return f"{method} {kind}"


def requests_since(sandbox_log: Path, offset: int) -> list[re.Match[str]]:
    text = sandbox_log.read_bytes()[offset:].decode(errors="replace")
    return [m for m in (ACCESS.search(line) for line in text.splitlines() if "aiohttp.access" in line) if m]


@dataclass
class Result:
    count: int
    seconds_to_ready: float
    seconds_busy: float
    operator_requests: int
    kopf_requests: int
    by_kind: Counter[str]
    resync_passes: int
    kopf_watched_workflows: bool
    idle_rss: int
    peak_rss: int
    reconciles: float
    children: dict[str, int]


def run_batch(url: str, state_dir: Path, count: int, resync: float | None, timeout: float) -> Result:
    namespace = f"bench-{count}"
    kubeconfig = state_dir / "kubeconfig"
    sandbox_log = state_dir / "sandbox.log"
    with httpx.Client(base_url=url, timeout=120) as http:
        http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        operator = start_operator(state_dir, kubeconfig, namespace, resync)
        try:
            wait_until(lambda: len(operator.samples) >= 5, 10, "RSS samples")
            idle_rss = operator.current_rss()
            before = operator.metrics()
            names = [f"wf-{count}-{i:04d}" for i in range(count)]
            offset = sandbox_log.stat().st_size
            started = time.monotonic()
            codes = asyncio.run(create_all(url, namespace, names, count))
            if codes != Counter({201: count}):
                raise SystemExit(f"creating the Workflows answered {dict(codes)}")
            deadline = started + timeout
            while count_reconciled(http, namespace) < count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"not all {count} Workflows were reconciled within {timeout:.0f}s")
                time.sleep(1.0)
            seconds_to_ready = time.monotonic() - started
            children = count_children(http, namespace)
            after = operator.metrics()
            peak = operator.peak_rss()
        finally:
            operator.close()
    matches = requests_since(sandbox_log, offset)
    mine = [m for m in matches if namespace in m["target"] or m["target"].startswith("/api/v1/namespaces?")]
    ours = [m for m in mine if m["agent"] == "tideflow-operator"]
    kopf = [m for m in mine if m["agent"].startswith("kopf/")]
    by_kind = Counter(classify(m["method"], m["target"]) for m in ours)
    workflows_path = f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows"
    resync_passes = sum(
        1 for m in ours if m["method"] == "GET" and m["target"].startswith(workflows_path + "?limit")
    )
    kopf_watched = any(m["target"].split("?", 1)[0] == workflows_path for m in kopf)
    # When did the operator work: from its first to its last reconcile request in this window.
    stamps = [
        time.mktime(time.strptime(line.split("[", 1)[1].split(" ", 1)[0], "%d/%b/%Y:%H:%M:%S"))
        for line in sandbox_log.read_bytes()[offset:].decode(errors="replace").splitlines()
        if '"tideflow-operator"' in line and "[" in line
    ]
    busy = (max(stamps) - min(stamps) + 1) if stamps else 0.0
    reconciles = sum(v for k, v in after.items() if k.startswith("tideflow_operator_reconciles_total")) - sum(
        v for k, v in before.items() if k.startswith("tideflow_operator_reconciles_total")
    )
    return Result(
        count=count,
        seconds_to_ready=seconds_to_ready,
        seconds_busy=busy,
        operator_requests=len(ours),
        kopf_requests=len(kopf),
        by_kind=by_kind,
        resync_passes=resync_passes,
        kopf_watched_workflows=kopf_watched,
        idle_rss=idle_rss,
        peak_rss=peak,
        reconciles=reconciles,
        children=children,
    )


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:34s}{value:>10}  {note}".rstrip())


def report(result: Result) -> None:
    n = result.count
    per = result.operator_requests / n
    without_events = (result.operator_requests - result.by_kind.get("POST events", 0)) / n
    watched = "yes" if result.kopf_watched_workflows else "NO"
    print(f"\n== {n} Workflows applied at once (on-demand: no pods; Ready = reconciled, see above)")
    row("time to all Ready", f"{result.seconds_to_ready:.1f} s")
    row("operator busy (first..last req)", f"{result.seconds_busy:.0f} s", "(access log: 1 s resolution)")
    row("resync passes meanwhile", str(result.resync_passes))
    row("kopf watched the Workflows", watched, "" if watched == "yes" else "(reconciled by the resync only)")
    row(
        "reconciles (operator metrics)",
        f"{result.reconciles:.0f}",
        f"({result.reconciles / n:.2f} per Workflow)",
    )
    row("children created", str(sum(result.children.values())), str(result.children))
    row("operator API requests", str(result.operator_requests), f"(+{result.kopf_requests} by kopf)")
    row("requests per Workflow", f"{per:.2f}")
    row("minimum per Workflow", str(MINIMUM_PER_RECONCILE), "(+2 Events)")
    row("ratio to the minimum", f"{per / MINIMUM_PER_RECONCILE:.2f}x")
    row("ratio without Events", f"{without_events / MINIMUM_PER_RECONCILE:.2f}x")
    row("operator RSS idle (baseline)", f"{result.idle_rss / 2**20:.1f} MiB")
    row(
        "operator peak RSS",
        f"{result.peak_rss / 2**20:.1f} MiB",
        f"({result.peak_rss / result.idle_rss:.2f}x idle)",
    )
    print("  requests by kind:")
    for kind, value in sorted(result.by_kind.items(), key=lambda kv: -kv[1]):
        print(f"    {kind:34s}{value:8d}  ({value / n:.2f} per Workflow)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--counts", default="200,1000", help="batch sizes, comma-separated")
    parser.add_argument(
        "--resync", type=float, default=None, help="TIDEFLOW_RESYNC_SECONDS (default: the operator's own)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a batch")
    parser.add_argument(
        "--keep", type=Path, help="state directory to use and keep (default: a temporary one)"
    )
    args = parser.parse_args()
    counts = [int(part) for part in args.counts.split(",") if part.strip()]

    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        "operator: python -m tideflow.operator, resync "
        + (f"{args.resync:g} s" if args.resync is not None else "default (TIDEFLOW_RESYNC_SECONDS unset)")
        + ", watching only the batch's namespace, a fresh process per batch"
    )
    print(
        "Workflows: lifecycle on-demand, so no runtime pod starts; 'Ready' means reconciled: "
        "Deployed=True, ConfigMap+Deployment+Service created, deploymentStatus Stopped (NoDemand)."
    )
    print(
        f"minimum requests for one new on-demand Workflow: {MINIMUM_PER_RECONCILE} (see the module docstring)"
    )

    with contextlib.ExitStack() as stack:
        if args.keep:
            state_dir = args.keep.resolve()
            state_dir.mkdir(parents=True, exist_ok=True)
        else:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tideflow-bench-")))
        sandbox, url = start_sandbox(state_dir)
        stack.callback(stop, sandbox)
        for count in counts:
            report(run_batch(url, state_dir, count, args.resync, args.timeout))


if __name__ == "__main__":
    main()
