"""Running the sandbox cluster: the server process, its kubeconfig, and ``up``/``down`` for make.

``serve`` runs in the foreground: the API server (kmock on 127.0.0.1), the controllers and the pod
runner in one asyncio process. ``up`` starts ``serve`` in the background, waits until the API
answers ``/readyz`` and prints the kubeconfig path; ``down`` stops it (SIGTERM, then SIGKILL)
together with every pod process it started. The state directory holds ``kubeconfig``,
``sandbox.pid``, ``sandbox.log`` and one directory per pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import kmock
import yaml

from tideflow.sandbox.apiserver import ApiServer
from tideflow.sandbox.controllers import Controllers
from tideflow.sandbox.http import SandboxHandler
from tideflow.sandbox.podrunner import PodRunner

logger = logging.getLogger("tideflow.sandbox")
CONTEXT = "tideflow-sandbox"


def kubeconfig_document(url: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": "sandbox-admin", "user": {"token": "sandbox"}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": "sandbox-admin", "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
    }


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


async def serve(state_dir: Path, host: str = "127.0.0.1", port: int = 0, history_limit: int = 50_000) -> None:
    """Run the sandbox until SIGTERM or SIGINT; writes ``kubeconfig`` once the server listens."""
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  (once, at start-up)
    kubeconfig = state_dir / "kubeconfig"
    api = ApiServer(history_limit=history_limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = PodRunner(api, state_dir, kubeconfig)
    handler = SandboxHandler(api=api, log_reader=runner.read_log)
    async with handler, kmock.Server(handler, host=host, port=port or None) as server:
        handler.server_address = f"{server.host}:{server.port}"
        url = f"http://{server.host}:{server.port}"
        _write_atomically(kubeconfig, yaml.safe_dump(kubeconfig_document(url), sort_keys=False))
        logger.info("sandbox API server listening on %s; kubeconfig %s", url, kubeconfig)
        async with Controllers(api), runner:
            await stop.wait()
            logger.info("sandbox stopping")
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()


def _pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "sandbox.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _ready(kubeconfig: Path) -> bool:
    try:
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        with urllib.request.urlopen(f"{server}/readyz", timeout=1) as response:  # noqa: S310  (http to loopback)
            return bool(response.status == 200)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def up(state_dir: Path, port: int = 0, timeout: float = 30.0) -> Path:
    """Start the sandbox in the background (idempotent) and return the kubeconfig path."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = state_dir / "kubeconfig"
    if _pid(state_dir) is not None and _ready(kubeconfig):
        return kubeconfig
    with contextlib.suppress(FileNotFoundError):
        kubeconfig.unlink()
    log = (state_dir / "sandbox.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tideflow.sandbox",
            "serve",
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (state_dir / "sandbox.pid").write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sandbox exited with {process.returncode}; see {state_dir / 'sandbox.log'}"
            )
        if kubeconfig.exists() and _ready(kubeconfig):
            return kubeconfig
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the sandbox did not become ready in {timeout:.0f}s; see {state_dir / 'sandbox.log'}")


def install_manifests(kubeconfig: Path, directory: Path) -> list[str]:
    """Create or replace every CustomResourceDefinition found in ``directory`` (``*.yaml``)."""
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    base = f"{server}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    installed: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            name = document["metadata"]["name"]
            try:
                current = json.loads(_request("GET", f"{base}/{name}"))
                document["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                _request("PUT", f"{base}/{name}", document)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                _request("POST", base, document)
            installed.append(name)
    return installed


def _request(method: str, url: str, body: object = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310  (http to the sandbox on loopback)
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  (http to loopback)
        return bytes(response.read())


def down(state_dir: Path, timeout: float = 20.0) -> bool:
    """Stop the sandbox and every pod process; True when something was running."""
    state_dir = state_dir.resolve()
    pid = _pid(state_dir)
    stopped = False
    if pid is not None:
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid(state_dir) is not None:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for pid_file in state_dir.glob("pods/*/*/pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            stopped = True
        pid_file.unlink(missing_ok=True)
    for name in ("sandbox.pid", "kubeconfig"):
        (state_dir / name).unlink(missing_ok=True)
    return stopped


def status(state_dir: Path) -> dict[str, object]:
    state_dir = state_dir.resolve()
    kubeconfig = state_dir / "kubeconfig"
    return {
        "running": _pid(state_dir) is not None,
        "ready": _ready(kubeconfig),
        "kubeconfig": str(kubeconfig),
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    from tideflow.sandbox import stack

    parser = argparse.ArgumentParser(prog="python -m tideflow.sandbox", description=__doc__)
    parser.add_argument("command", choices=["serve", "up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--history", type=int, default=50_000, help="watch events kept for resuming")
    parser.add_argument("--crds", type=Path, help="with up: install the CRDs in this directory")
    parser.add_argument(
        "--no-operator", action="store_true", help="with up: start the cluster only (no operator, no API)"
    )
    parser.add_argument(
        "--api-port", type=int, default=8000, help="with up: the REST API's port on 127.0.0.1"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":%(message)r}',
    )
    state_dir = args.state_dir.resolve()
    if args.command == "serve":
        asyncio.run(serve(state_dir, port=args.port, history_limit=args.history))
    elif args.command == "up":
        kubeconfig = up(state_dir, port=args.port)
        print(f"Sandbox cluster is up. kubeconfig: {kubeconfig}", flush=True)
        if args.crds:
            for name in install_manifests(kubeconfig, args.crds):
                print(f"  installed CRD {name}", flush=True)
        if not args.no_operator:
            operator = stack.operator(state_dir)
            pid = stack.start(state_dir, operator)
            print(
                f"Operator is up (pid {pid}); log: {state_dir / 'operator.log'}; "
                "metrics: http://127.0.0.1:9090/metrics",
                flush=True,
            )
            key = stack.bootstrap_key(state_dir)
            pid = stack.start(state_dir, stack.api(state_dir, key, args.api_port))
            print(
                f"API is up (pid {pid}); log: {state_dir / 'api.log'}\n"
                f"  export TIDEFLOW_API=http://127.0.0.1:{args.api_port}\n"
                f"  export TIDEFLOW_API_KEY={key}   # bootstrap admin key of organization 'default'\n"
                f"  docs: http://127.0.0.1:{args.api_port}/docs",
                flush=True,
            )
        print(f"  export KUBECONFIG={kubeconfig}")
    elif args.command == "down":
        stopped = stack.stop(state_dir, "api")
        stopped = stack.stop(state_dir, "operator") or stopped
        stopped = down(state_dir) or stopped
        print("Stopped the sandbox, the operator and the API." if stopped else "Nothing was running.")
    else:
        components = {name: stack.running(state_dir, name) for name in ("operator", "api")}
        print(json.dumps({**status(state_dir), **components}))
    return 0
