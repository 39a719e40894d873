"""API throughput and p99 latency, as ratios to a bare FastAPI endpoint measured the same way in the same run.

Starts its own sandbox cluster (``python -m tideflow.sandbox serve``), operator
(``python -m tideflow.operator``, real runtimes) and API (``python -m tideflow.api``), all watching or
serving one organization (namespace ``bench``), and a bare FastAPI app (one ``GET /bare`` that
answers a constant) run by uvicorn exactly as ``python -m tideflow.api`` runs the API. Then:

1. creates ``--workflows`` Workflows (default 1,000) owned by the benchmark's user directly through
   the Kubernetes API, and waits until the operator has reconciled every one;
2. creates one small workflow through the API, deploys it (``always-on``) and waits for its runtime;
3. measures, each with ``--requests`` requests (default 2,000) and ``--concurrency`` in flight
   (default 8) from the same httpx client loop, after ``--warmup`` unmeasured requests:

   * baseline: ``GET /bare`` on the bare app;
   * ``GET /api/v1/workflows`` with the user's key: the default page (20, newest first) of all the
     workflows in the organization, which the API lists, filters by visibility and sorts each time;
   * ``POST /api/v1/workflows/{id}/trigger`` (async) to the ready runtime: the API reads the workflow,
     finds a ready runtime pod, forwards the trigger (the runtime stores the WorkflowRun before it
     answers), reads the run and answers 202; the runs execute in the background meanwhile;
   * the baseline again, once every triggered run has finished (the two show the machine's drift).

Ratios are API / baseline (mean of the two baseline rounds): requests per second (lower is slower)
and p99 latency (higher is slower). Every request must succeed (200, or 202 for the triggers).

    .venv/bin/python bench/api.py [--workflows 1000] [--requests 2000] [--concurrency 8] [--warmup 100]
        [--keep DIR]

Every process it starts (the sandbox, whose runtime pods stop with it, the operator, the API and the
bare app) is stopped at the end, also on Ctrl-C, SIGTERM or an error. With the defaults it takes about
8 minutes on a 2-core machine, most of it in the 2,000 list requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tideflow.sandbox import cluster, stack

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
USER = "bench-user"
WORKFLOWS = f"/apis/tideflow.io/v1alpha1/namespaces/{NAMESPACE}/workflows"
RUNS = f"/apis/tideflow.io/v1alpha1/namespaces/{NAMESPACE}/workflowruns"
JSON = dict[str, Any]
T = TypeVar("T")
GRAPH: JSON = {
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "shape", "type": "transform", "config": {"set": {"i": "{{ start.inputs.i }}"}}},
    ],
    "connections": [{"id": "c1", "source": "start", "target": "shape"}],
}


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = 60, interval: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """The processes this script starts, each in its own session; all stopped (and reaped) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        base = {key: value for key, value in os.environ.items() if not key.startswith("TIDEFLOW_")}
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**base, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def check(self, name: str) -> None:
        process = self.started[name]
        if process.poll() is not None:
            log = (self.directory / f"{name}.log").read_text(errors="replace")
            raise SystemExit(f"the {name} exited with {process.returncode}:\n{log[-3000:]}")

    def stop_all(self) -> None:
        for name, process in reversed(self.started.items()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    print(f"the {name} did not stop in 30 s: killed")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_sandbox(processes: Processes) -> tuple[Path, str]:
    """The sandbox cluster with Tideflow's CRDs and the benchmark's namespace; its state dir and URL."""
    state = processes.directory
    kubeconfig = state / "kubeconfig"
    processes.start(
        "sandbox",
        [sys.executable, "-m", "tideflow.sandbox", "serve", "--state-dir", str(state), "--port", "0"],
    )

    def ready() -> str | None:
        processes.check("sandbox")
        if not kubeconfig.exists():
            return None
        url = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
        return url if healthy(f"{url}/readyz") else None

    url = wait_until(ready, "the sandbox", timeout=60)
    cluster.install_manifests(kubeconfig, ROOT / "crds")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    httpx.post(f"{url}/api/v1/namespaces", json=namespace, timeout=30).raise_for_status()
    return kubeconfig, url


def start_component(processes: Processes, component: stack.Component, extra: dict[str, str]) -> None:
    """``make up``'s operator or API (environment from :mod:`tideflow.sandbox.stack`), plus ``extra``."""
    processes.start(component.name, [sys.executable, "-m", component.module], {**component.env, **extra})

    def up() -> bool:
        processes.check(component.name)
        return healthy(component.health_url)

    wait_until(up, f"the {component.name} to answer {component.health_url}", timeout=90)


def serve_baseline(port: int) -> None:
    """The bare app (run in its own process by the benchmark), served as ``python -m tideflow.api`` is."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", access_log=False)


# --- the organization -----------------------------------------------------------------------------------


def manifest(index: int) -> JSON:
    return {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"bench-{index:04d}", "labels": {"app.kubernetes.io/part-of": "tideflow"}},
        "spec": {
            "displayName": f"Bench workflow {index}",
            "description": "made by bench/api.py",
            "tags": ["bench", f"group-{index % 10}"],
            "owner": USER,
            "state": "Draft",
            "deployed": False,
            **GRAPH,
        },
    }


async def create_workflows(url: str, count: int) -> None:
    """POST every Workflow to the Kubernetes API, 50 at a time."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        gate = asyncio.Semaphore(50)

        async def create(index: int) -> None:
            async with gate:
                answer = await client.post(WORKFLOWS, json=manifest(index))
            if answer.status_code != 201:
                raise SystemExit(f"creating Workflow {index}: {answer.status_code} {answer.text[:300]}")

        await asyncio.gather(*(create(i) for i in range(count)))


def reconciled(kube: httpx.Client) -> tuple[int, int]:
    items = kube.get(WORKFLOWS).json()["items"]
    done = sum(
        1
        for item in items
        if (item.get("status") or {}).get("observedGeneration") == item["metadata"].get("generation")
    )
    return done, len(items)


def unfinished_runs(kube: httpx.Client) -> int:
    items = kube.get(RUNS).json()["items"]
    return sum(
        1
        for item in items
        if (item.get("status") or {}).get("phase") not in ("Completed", "Failed", "Cancelled")
    )


# --- measuring ------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    label: str
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    label: str,
    url: str,
    request: Callable[[httpx.AsyncClient, int], Any],
    expected: int,
    count: int,
    concurrency: int,
    headers: dict[str, str],
    progress: bool,
) -> Measurement:
    """``count`` requests, ``concurrency`` in flight; every answer must have status ``expected``."""
    latencies: list[float] = []
    failures: list[str] = []
    indexes = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    step = max(1, count // 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:

        async def worker() -> None:
            for index in indexes:
                started = time.perf_counter()
                answer: httpx.Response = await request(client, index)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != expected:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                if progress and len(latencies) % step == 0:
                    elapsed = time.perf_counter() - began
                    print(f"    {label}: {len(latencies)}/{count} in {elapsed:.1f} s", flush=True)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    if failures:
        raise SystemExit(f"{label}: {len(failures)} of {count} requests failed, e.g. {failures[0]}")
    return Measurement(label, seconds, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000, help="workflows in the organization")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests before each one")
    parser.add_argument("--keep", type=Path, help="keep the logs and state in this directory")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return
    command = " ".join(shlex.quote(part) for part in [Path(sys.executable).name, *sys.argv])
    directory = Path(tempfile.mkdtemp(prefix="tideflow-bench-api-"))
    processes = Processes(directory)
    # SIGTERM unwinds like Ctrl-C, through the cleanup below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        run(args, processes, command)
    finally:
        processes.stop_all()
        # Runtime pods the sandbox left behind, if it could not stop them itself.
        cluster.down(directory)
        if args.keep:
            shutil.copytree(directory, args.keep, dirs_exist_ok=True)
            print(f"logs and state kept in {args.keep}")
        shutil.rmtree(directory, ignore_errors=True)


def run(args: argparse.Namespace, processes: Processes, command: str) -> None:
    print("starting the sandbox, the operator, the API and the bare app", flush=True)
    kubeconfig, kube_url = start_sandbox(processes)
    state = processes.directory
    kube = httpx.Client(base_url=kube_url, timeout=120)
    organization = {"TIDEFLOW_NAMESPACES": NAMESPACE, "KUBECONFIG": str(kubeconfig)}
    start_component(
        processes,
        stack.operator(state, liveness_port=free_port(), metrics_port=free_port()),
        {**organization, "TIDEFLOW_RUNTIME_PORT": str(free_port())},
    )
    admin_key = "bench-admin-" + secrets.token_hex(16)
    api_port = free_port()
    start_component(
        processes,
        stack.api(state, admin_key, port=api_port),
        {**organization, "TIDEFLOW_BOOTSTRAP_ORG": NAMESPACE},
    )
    api_url = f"http://127.0.0.1:{api_port}"
    bare_port = free_port()
    processes.start(
        "bare", [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(bare_port)]
    )
    bare_url = f"http://127.0.0.1:{bare_port}"

    def bare_up() -> bool:
        processes.check("bare")
        return healthy(f"{bare_url}/bare")

    wait_until(bare_up, "the bare app")

    print(f"creating {args.workflows} workflows through the Kubernetes API", flush=True)
    started = time.perf_counter()
    asyncio.run(create_workflows(kube_url, args.workflows))
    print(f"    created in {time.perf_counter() - started:.1f} s; waiting for the operator to reconcile them")

    def all_reconciled() -> bool:
        done, total = reconciled(kube)
        print(f"    reconciled {done}/{total}", flush=True)
        return done == total == int(args.workflows)

    wait_until(all_reconciled, "the operator to reconcile every workflow", timeout=900, interval=5)

    with httpx.Client(base_url=api_url, headers={"X-API-Key": admin_key}, timeout=60) as admin:
        answer = admin.post(
            "/api/v1/api-keys", json={"user": USER, "scopes": ["workflows:read", "workflows:execute"]}
        )
        answer.raise_for_status()
        user_key = str(answer.json()["apiKey"])
        print("deploying the workflow for the triggers", flush=True)
        created = admin.post("/api/v1/workflows", json={"name": "Bench trigger", "isPublic": True, **GRAPH})
        created.raise_for_status()
        workflow_id = str(created.json()["workflowId"])
        admin.post(f"/api/v1/workflows/{workflow_id}/deploy").raise_for_status()

        def runtime_ready() -> bool:
            return bool(admin.get(f"/api/v1/workflows/{workflow_id}").json()["deployment"]["ready"])

        wait_until(runtime_ready, "the runtime to be ready", timeout=120, interval=0.5)
        listed = admin.get("/api/v1/workflows", params={"limit": 1}).json()["count"]
    print(f"    the organization has {listed} workflows; the runtime is ready", flush=True)

    user = {"X-API-Key": user_key}

    def bare(client: httpx.AsyncClient, index: int) -> Any:
        return client.get("/bare")

    def list_workflows(client: httpx.AsyncClient, index: int) -> Any:
        return client.get("/api/v1/workflows")

    def trigger(client: httpx.AsyncClient, index: int) -> Any:
        return client.post(f"/api/v1/workflows/{workflow_id}/trigger", json={"inputs": {"i": index}})

    plan: list[tuple[str, str, Callable[[httpx.AsyncClient, int], Any], int, dict[str, str]]] = [
        ("baseline: bare FastAPI GET /bare", bare_url, bare, 200, {}),
        (f"GET /api/v1/workflows ({args.workflows} workflows)", api_url, list_workflows, 200, user),
        ("POST /api/v1/workflows/{id}/trigger (async)", api_url, trigger, 202, user),
        ("baseline again, runs finished", bare_url, bare, 200, {}),
    ]
    results: list[Measurement] = []
    for label, url, request, expected, headers in plan:
        if label.startswith("baseline again"):
            wait_until(
                lambda: unfinished_runs(kube) == 0, "every triggered run to finish", timeout=600, interval=1
            )
        print(f"measuring {label}", flush=True)
        asyncio.run(drive(label, url, request, expected, args.warmup, args.concurrency, headers, False))
        results.append(
            asyncio.run(drive(label, url, request, expected, args.requests, args.concurrency, headers, True))
        )
    kube.close()
    report(args, command, results)


def report(args: argparse.Namespace, command: str, results: list[Measurement]) -> None:
    first, listing, triggers, second = results
    base_rps = statistics.mean([first.throughput, second.throughput])
    base_p99 = statistics.mean([first.percentile(0.99), second.percentile(0.99)])
    print()
    print(f"command: {command}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.requests} requests per measurement, "
        f"{args.concurrency} in flight, after {args.warmup} warm-up requests each"
    )
    print()
    print(f"{'measurement':<48} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for result in results:
        print(
            f"{result.label:<48} {result.throughput:>9.1f} "
            f"{result.percentile(0.5) * 1000:>9.2f} {result.percentile(0.99) * 1000:>9.2f}"
        )
    print()
    print(
        f"ratios to the baseline (mean of its two rounds: {base_rps:.1f} req/s, "
        f"p99 {base_p99 * 1000:.2f} ms):"
    )
    for result in (listing, triggers):
        print(
            f"  {result.label:<46} req/s x{result.throughput / base_rps:.3f}, "
            f"p99 x{result.percentile(0.99) / base_p99:.1f}"
        )


if __name__ == "__main__":
    main()
