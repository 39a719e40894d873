"""Async-trigger throughput and latency of the runtime's POST /trigger, as a ratio to a bare FastAPI app.

Both servers run under uvicorn on 127.0.0.1 in their own processes, in the same run, and are driven by
the same httpx client loop (``--concurrency`` requests in flight, ``--requests`` per round):

* baseline: a FastAPI app whose ``POST /trigger`` parses the same JSON body into a pydantic model and
  answers 202 with a fresh id: HTTP, routing and validation, no storage;
* runtime: ``python -m tideflow.runtime`` for a two-node workflow, against a sandbox cluster started by
  this script (``python -m tideflow.sandbox serve``): each 202 is answered only once the WorkflowRun has
  been created in the API server, and the runs then execute in the background (claim, progress and
  final status writes), competing for the same CPUs.

Rounds alternate between the two, after a warm-up; after each runtime round the script waits until
every run it triggered has completed (``runs completed/s`` is that end-to-end rate). Each figure is the
best of ``--rounds`` (the median latency of the best round). Ratios are runtime / baseline.

    .venv/bin/python bench/trigger.py [--requests 1000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
KUBECTL = Path(sys.executable).parent / "kubectl"
NAMESPACE = "bench"
WORKFLOW = "bench-trigger"
DEFINITION: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "shape", "type": "transform", "config": {"set": {"i": "{{ trigger.inputs.i }}"}}},
    ],
    "connections": [{"id": "c1", "source": "start", "target": "shape"}],
}
LISTENING = re.compile(r"(?:tideflow-runtime listening on|Uvicorn running on) (http://[0-9.]+:[0-9]+)")


def serve_baseline() -> None:
    """The baseline server (run in its own process by the benchmark)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        inputs: dict[str, Any] = Field(default_factory=dict)
        trigger_type: str = "manual"
        sync: bool = False

    app = FastAPI()

    @app.post("/trigger")
    async def trigger(body: Body | None = None) -> JSONResponse:
        return JSONResponse(
            {"runId": f"baseline-{uuid.uuid4().hex[:8]}", "phase": "Pending"}, status_code=202
        )

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return JSONResponse({"status": "ready"})

    uvicorn.run(app, host="127.0.0.1", port=0, access_log=False, log_level="info")


@dataclass
class Round:
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(url: str, requests: int, concurrency: int, offset: int) -> Round:
    """POST /trigger ``requests`` times with ``concurrency`` in flight; every answer must be a 202."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for index in counter:
                started = time.perf_counter()
                response = await client.post("/trigger", json={"inputs": {"i": offset + index}})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Round(elapsed, latencies, errors)


class Processes:
    """The processes this script starts; each is stopped (its process group) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> tuple[Path, Any]:
        log = self.directory / f"{name}.log"
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(process)
        return log, process

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_until(probe: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def listening(log: Path, process: Any) -> str:
    def probe() -> str | None:
        if process.poll() is not None:
            raise SystemExit(f"{log.name} exited:\n{log.read_text()[-3000:]}")
        match = LISTENING.search(log.read_text(errors="replace"))
        return match.group(1) if match else None

    return str(wait_until(probe, f"{log.stem} to listen"))


def start_sandbox(processes: Processes) -> tuple[str, Path]:
    state = processes.directory / "sandbox"
    state.mkdir()
    processes.start(
        "sandbox",
        [sys.executable, "-m", "tideflow.sandbox", "serve", "--state-dir", str(state), "--port", "0"],
    )
    kubeconfig = state / "kubeconfig"

    def ready() -> str | None:
        if not kubeconfig.exists():
            return None
        import yaml

        url = str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
        try:
            return url if httpx.get(f"{url}/readyz", timeout=1).status_code == 200 else None
        except httpx.HTTPError:
            return None

    url = str(wait_until(ready, "the sandbox"))
    kubectl = [str(KUBECTL), "--kubeconfig", str(kubeconfig)]
    subprocess.run([*kubectl, "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
    with httpx.Client(base_url=url, timeout=30) as api:
        api.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}).raise_for_status()
        workflow = {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": WORKFLOW},
            "spec": {"state": "Active", **DEFINITION},
        }
        api.post(
            f"/apis/tideflow.io/v1alpha1/namespaces/{NAMESPACE}/workflows", json=workflow
        ).raise_for_status()
    return url, kubeconfig


def completed_runs(api: httpx.Client) -> tuple[int, int]:
    items = api.get(f"/apis/tideflow.io/v1alpha1/namespaces/{NAMESPACE}/workflowruns").json()["items"]
    done = sum(1 for item in items if (item.get("status") or {}).get("phase") == "Completed")
    return done, len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="triggers per round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per server; the best is kept")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per server first")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return
    command = " ".join(shlex.quote(part) for part in [Path(sys.executable).name, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="tideflow-bench-") as directory:
        processes = Processes(Path(directory))
        try:
            run(args, processes, command)
        finally:
            processes.stop()


def run(args: argparse.Namespace, processes: Processes, command: str) -> None:
    api_url, kubeconfig = start_sandbox(processes)
    definition = processes.directory / "definition.json"
    definition.write_text(json.dumps(DEFINITION))
    runtime_log, runtime_process = processes.start(
        "runtime",
        [sys.executable, "-m", "tideflow.runtime"],
        {
            "KUBECONFIG": str(kubeconfig),
            "TIDEFLOW_WORKFLOW": WORKFLOW,
            "TIDEFLOW_NAMESPACE": NAMESPACE,
            "TIDEFLOW_POD_NAME": "bench-runtime",
            "POD_IP": "127.0.0.1",
            "TIDEFLOW_PORT": "0",
            "TIDEFLOW_DEFINITION_PATH": str(definition),
            "TIDEFLOW_LOG_LEVEL": "INFO",
        },
    )
    baseline_log, baseline_process = processes.start(
        "baseline", [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"]
    )
    urls = {
        "runtime": listening(runtime_log, runtime_process),
        "baseline": listening(baseline_log, baseline_process),
    }
    wait_until(lambda: httpx.get(f"{urls['runtime']}/readyz").status_code == 200, "the runtime to be ready")
    api = httpx.Client(base_url=api_url, timeout=60)
    results: dict[str, list[Round]] = {"baseline": [], "runtime": []}
    drains: list[float] = []
    sent = 0

    async def measure(name: str, requests: int) -> Round:
        nonlocal sent
        outcome = await drive(urls[name], requests, args.concurrency, sent)
        if name == "runtime":
            sent += requests
        return outcome

    def settle() -> float:
        started = time.perf_counter()
        wait_until(
            lambda: completed_runs(api) == (sent, sent), "every triggered run to complete", timeout=600
        )
        return time.perf_counter() - started

    for name in ("baseline", "runtime"):
        asyncio.run(measure(name, args.warmup))
    settle()
    for _ in range(args.rounds):
        for name in ("baseline", "runtime"):
            outcome = asyncio.run(measure(name, args.requests))
            if outcome.errors:
                raise SystemExit(f"{name}: {outcome.errors} triggers were not answered 202")
            results[name].append(outcome)
            if name == "runtime":
                drains.append(outcome.seconds + settle())
    api.close()

    def best(name: str) -> Round:
        return max(results[name], key=lambda r: r.throughput)

    base, rt = best("baseline"), best("runtime")
    print(f"command: {command}")
    version = sys.version.split()[0]
    print(
        f"python {version}, {os.cpu_count()} CPUs; {args.requests} triggers x {args.rounds} rounds, ", end=""
    )
    print(f"{args.concurrency} in flight, best round of each (warm-up {args.warmup})")
    print()
    print(f"{'server':<34} {'triggers/s':>11} {'p50 ms':>9} {'p99 ms':>9}")
    for label, outcome in (
        ("baseline: bare FastAPI (uvicorn)", base),
        ("runtime: POST /trigger (async)", rt),
    ):
        print(
            f"{label:<34} {outcome.throughput:>11.1f} "
            f"{outcome.percentile(0.5) * 1000:>9.2f} {outcome.percentile(0.99) * 1000:>9.2f}"
        )
    print()
    print(f"ratio runtime/baseline: throughput {rt.throughput / base.throughput:.3f}, ", end="")
    p50 = rt.percentile(0.5) / base.percentile(0.5)
    p99 = rt.percentile(0.99) / base.percentile(0.99)
    print(f"p50 {p50:.2f}x, p99 {p99:.2f}x")
    end_to_end = max(args.requests / seconds for seconds in drains)
    print(
        f"runtime end to end (trigger to Completed, claim + status writes): {end_to_end:.1f} runs completed/s"
    )
    spread = [round(r.throughput, 1) for r in results["runtime"]]
    print(f"runtime triggers/s per round: {spread}; median {statistics.median(spread):.1f}")


if __name__ == "__main__":
    main()
