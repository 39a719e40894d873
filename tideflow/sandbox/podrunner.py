"""The sandbox's kubelet: runs each Pod's container command as a real local process.

What a Pod gets, and how it differs from a real node:

* its own loopback address as ``status.podIP`` (a 127.x.0.0/16 block per sandbox), so pods can listen on
  the same container port; a program should bind the address in ``POD_IP`` (a real cluster gives
  the same variable through the downward API, ``fieldRef: status.podIP``);
* the first container only (init and sidecar containers are not run); the image is ignored and
  the container's ``command`` + ``args`` run on the host with ``PATH`` led by this Python's
  environment; a container without a command waits with reason ``SandboxNoCommand``;
* ``env`` (values, ``fieldRef``, ``configMapKeyRef``, ``secretKeyRef``) and ``envFrom``, and
  ``configMap``/``secret``/``emptyDir`` volumes written under the pod's directory; a mount path
  that appears at the start of an env value or of the working directory is rewritten to
  that directory (there is no mount namespace); ``KUBECONFIG`` points at the sandbox;
* readiness from an ``httpGet`` or ``tcpSocket`` probe (or ready once started); liveness
  ``httpGet``/``tcpSocket`` probes restart the container after ``failureThreshold`` failures in a row;
  each probe on its own ``initialDelaySeconds``, ``periodSeconds``, ``timeoutSeconds``,
  ``failureThreshold`` and ``successThreshold`` (Kubernetes' defaults when unset), except that a
  readiness probe that is failing is retried every second (a pod becomes ready sooner, never later);
* ``restartPolicy`` with a back-off of 1 s doubling to 30 s (a kubelet's is 10 s to 5 min);
* graceful deletion: SIGTERM to the process group, SIGKILL after the grace period, then the Pod
  is removed; stdout and stderr go to a log file that ``kubectl logs`` reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import ipaddress
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tideflow.sandbox.apiserver import ApiServer, Event, Watcher
from tideflow.sandbox.errors import ApiError

logger = logging.getLogger("tideflow.sandbox.podrunner")
JSON = dict[str, Any]
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover  (runs in the child between fork and exec)
    """Ask Linux to SIGKILL the pod process if the sandbox process dies, so nothing is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class _PodIps:
    """Pod addresses from a loopback /16 picked at random per sandbox, so two sandboxes on one
    machine rarely hand out the same address (127.100-249.x.y)."""

    def __init__(self, network: str | None = None) -> None:
        if network is None:
            network = f"127.{random.SystemRandom().randrange(100, 250)}.0.0/16"
        self._free = list(ipaddress.IPv4Network(network).hosts())
        self._free.reverse()
        self._used: dict[str, str] = {}

    def allocate(self, uid: str) -> str:
        if uid not in self._used:
            self._used[uid] = str(self._free.pop())
        return self._used[uid]

    def release(self, uid: str) -> None:
        ip = self._used.pop(uid, None)
        if ip is not None:
            self._free.append(ipaddress.IPv4Address(ip))


class PodRunner:
    """Watches Pods and keeps one local process per running Pod, reporting status back."""

    def __init__(self, api: ApiServer, state_dir: Path, kubeconfig: Path, node_name: str = "sandbox") -> None:
        self.api = api
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.node_name = node_name
        self._pods = api.resource("", "v1", "pods")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: dict[str, asyncio.Event] = {}
        self._ips = _PodIps()
        self._watcher: Watcher | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodRunner:
        self._watcher = self.api.subscribe(("", "pods"))
        self._loop_task = asyncio.create_task(self._loop(self._watcher))
        for pod in list(self.api.iter_objects(self._pods)):
            self._sync(pod)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._watcher is not None:
            self.api.unsubscribe(self._watcher)
        for stop in self._stopping.values():
            stop.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def pod_dir(self, namespace: str, name: str) -> Path:
        return self.state_dir / "pods" / namespace / name

    async def read_log(self, namespace: str, name: str, params: dict[str, str]) -> str:
        path = self.pod_dir(namespace, name) / "container.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        tail = params.get("tailLines")
        if tail and tail.isdigit():
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return text

    async def _loop(self, watcher: Watcher) -> None:
        while True:
            event: Event = await watcher.queue.get()
            if event.type != "DELETED":
                self._sync(event.obj)

    def _sync(self, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        spec = pod.get("spec") or {}
        if spec.get("nodeName") not in (None, self.node_name):
            return
        if spec.get("nodeName") is None and not meta.get("deletionTimestamp"):
            self._bind(pod)  # the scheduler's job: the pod comes back through the watch, bound
            return
        if meta.get("deletionTimestamp"):
            if uid in self._stopping:
                self._stopping[uid].set()
            elif uid not in self._tasks:
                self._remove(pod)
            return
        if uid in self._tasks or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        self._stopping[uid] = asyncio.Event()
        self._tasks[uid] = asyncio.create_task(self._run(pod))

    def _bind(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            current = self.api.get(self._pods, meta["namespace"], meta["name"])
            current["spec"]["nodeName"] = self.node_name
            self.api.update(self._pods, meta["namespace"], meta["name"], current)

    def _remove(self, pod: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.api.delete(self._pods, meta["namespace"], meta["name"], {"gracePeriodSeconds": 0})

    def _patch_status(self, pod: JSON, status: JSON) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            current = self.api.get(self._pods, meta["namespace"], meta["name"])
            if current["metadata"]["uid"] != meta["uid"]:
                return
            current["status"] = {**(current.get("status") or {}), **status}
            self.api.update(self._pods, meta["namespace"], meta["name"], current, subresource="status")

    # ------------------------------------------------------------------------------------------

    async def _run(self, pod: JSON) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        stop = self._stopping[uid]
        container = (pod["spec"].get("containers") or [{}])[0]
        name = container.get("name", "main")
        pod_ip = self._ips.allocate(uid)
        directory = self.pod_dir(meta["namespace"], meta["name"])
        restarts = 0
        backoff = 1.0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._patch_status(
                pod,
                {
                    "phase": "Pending",
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "hostIP": "127.0.0.1",
                    "startTime": self.api.now(),
                },
            )
            while not stop.is_set():
                try:
                    command, env, cwd = self._prepare(pod, container, pod_ip, directory)
                except _Waiting as waiting:
                    self._set_container(
                        pod,
                        name,
                        ready=False,
                        restarts=restarts,
                        state={"waiting": {"reason": waiting.reason, "message": str(waiting)}},
                    )
                    if await _wait(stop, 1.0):
                        break
                    continue
                exit_code = await self._run_container(
                    pod, name, command, env, cwd, directory, restarts, stop, container, pod_ip
                )
                if stop.is_set():
                    break
                policy = pod["spec"].get("restartPolicy", "Always")
                if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                    phase = "Succeeded" if exit_code == 0 else "Failed"
                    self._patch_status(pod, {"phase": phase})
                    return
                restarts += 1
                self._set_container(
                    pod,
                    name,
                    ready=False,
                    restarts=restarts,
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {backoff:.0f}s restarting failed container",
                        }
                    },
                    last={"terminated": {"exitCode": exit_code}},
                )
                if await _wait(stop, backoff):
                    break
                backoff = min(backoff * 2, 30.0)
        finally:
            self._ips.release(uid)
            self._tasks.pop(uid, None)
            self._stopping.pop(uid, None)
            if stop.is_set():
                self._remove(pod)

    async def _run_container(
        self,
        pod: JSON,
        name: str,
        command: list[str],
        env: dict[str, str],
        cwd: Path,
        directory: Path,
        restarts: int,
        stop: asyncio.Event,
        container: JSON,
        pod_ip: str,
    ) -> int:
        log = (directory / "container.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log.write(f"sandbox: cannot start {command!r}: {exc}\n".encode())
            log.close()
            return 127
        (directory / "pid").write_text(str(process.pid))
        started = self.api.now()
        running = {"running": {"startedAt": started}}
        self._set_container(pod, name, ready=False, restarts=restarts, state=running, phase="Running")
        probes = asyncio.create_task(self._probe(pod, name, container, pod_ip, restarts, running, process))
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
                grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or grace)
                await _terminate(process, grace)
            return process.returncode if process.returncode is not None else -1
        finally:
            for task in (probes, stopper, waiter):
                task.cancel()
            await asyncio.gather(probes, stopper, waiter, return_exceptions=True)
            log.close()

    async def _probe(
        self,
        pod: JSON,
        name: str,
        container: JSON,
        pod_ip: str,
        restarts: int,
        state: JSON,
        process: asyncio.subprocess.Process,
    ) -> None:
        """Run the container's readiness and liveness probes, each on its own timings."""
        readiness = container.get("readinessProbe")
        liveness = container.get("livenessProbe")
        if readiness is None:
            self._set_container(pod, name, ready=True, restarts=restarts, state=state, phase="Running")

        def set_ready(ready: bool) -> None:
            self._set_container(pod, name, ready=ready, restarts=restarts, state=state, phase="Running")

        def restart(_: bool) -> None:
            logger.info("liveness probe failed for %s: restarting", pod["metadata"]["name"])
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

        def running() -> bool:
            return process.returncode is None

        loops = []
        if readiness is not None:
            loops.append(
                run_probe(
                    ProbeTiming.of(readiness),
                    _checker(readiness, container, pod_ip),
                    set_ready,
                    running,
                    initially=False,
                    fast_while_failing=True,
                )
            )
        if liveness is not None:
            loops.append(
                run_probe(
                    ProbeTiming.of(liveness),
                    _checker(liveness, container, pod_ip),
                    restart,
                    running,
                    stop_on_failure=True,
                )
            )
        await asyncio.gather(*loops)

    def _set_container(
        self,
        pod: JSON,
        name: str,
        *,
        ready: bool,
        restarts: int,
        state: JSON,
        last: JSON | None = None,
        phase: str | None = None,
    ) -> None:
        now = self.api.now()
        container_status: JSON = {
            "name": name,
            "ready": ready,
            "restartCount": restarts,
            "state": state,
            "image": (pod["spec"].get("containers") or [{}])[0].get("image", ""),
            "started": "running" in state,
        }
        if last is not None:
            container_status["lastState"] = last
        status: JSON = {
            "containerStatuses": [container_status],
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now},
                {"type": "Ready", "status": str(ready), "lastTransitionTime": now},
            ],
        }
        if phase is not None:
            status["phase"] = phase
        self._patch_status(pod, status)

    # ------------------------------------------------------------------------------------------

    def _prepare(
        self, pod: JSON, container: JSON, pod_ip: str, directory: Path
    ) -> tuple[list[str], dict[str, str], Path]:
        meta = pod["metadata"]
        namespace = meta["namespace"]
        mounts = self._materialize_volumes(pod, container, directory)

        def translate(value: str) -> str:
            for mount_path, host_path in sorted(mounts.items(), key=lambda item: -len(item[0])):
                if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                    return str(host_path) + value[len(mount_path.rstrip("/")) :]
            return value

        # Only env values and the working directory are translated: a command or an argument that
        # starts with a mount path (say /tmp) is a host path here, as it would be one in the image.
        command = [str(part) for part in (container.get("command") or []) + (container.get("args") or [])]
        if not container.get("command"):
            raise _Waiting(
                "SandboxNoCommand",
                "the sandbox runs the container's command on the host and this "
                "container has none (images are not run)",
            )
        bin_dir = str(Path(sys.executable).parent)
        env: dict[str, str] = {
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(directory),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "HOSTNAME": meta["name"],
            "POD_IP": pod_ip,
            "KUBECONFIG": str(self.kubeconfig),
            "TIDEFLOW_SANDBOX": "1",
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._config_map(namespace, source["configMapRef"])
            else:
                data = self._secret(namespace, source.get("secretRef") or {})
            env.update({prefix + k: v for k, v in data.items()})
        for item in container.get("env") or []:
            value = self._env_value(pod, item, pod_ip)
            if value is not None:
                env[item["name"]] = translate(value)
        working_dir = container.get("workingDir")
        cwd = Path(translate(working_dir)) if working_dir else directory
        cwd.mkdir(parents=True, exist_ok=True)
        return command, env, cwd

    def _env_value(self, pod: JSON, item: JSON, pod_ip: str) -> str | None:
        if "value" in item:
            return str(item["value"])
        source = item.get("valueFrom") or {}
        namespace = pod["metadata"]["namespace"]
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath", "")
            fields = {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": namespace,
                "metadata.uid": pod["metadata"]["uid"],
                "status.podIP": pod_ip,
                "spec.nodeName": self.node_name,
                "status.hostIP": "127.0.0.1",
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
            }
            if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
                section = "labels" if ".labels" in path else "annotations"
                key = path.split("['", 1)[1].rstrip("']")
                return str((pod["metadata"].get(section) or {}).get(key, ""))
            return str(fields.get(path, ""))
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            return self._config_map(namespace, ref).get(str(ref.get("key", "")))
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            return self._secret(namespace, ref).get(str(ref.get("key", "")))
        return None

    def _config_map(self, namespace: str, ref: JSON) -> dict[str, str]:
        rt = self.api.resource("", "v1", "configmaps")
        try:
            return dict(self.api.get(rt, namespace, ref["name"]).get("data") or {})
        except ApiError as exc:
            if ref.get("optional"):
                return {}
            raise _Waiting("CreateContainerConfigError", f'configmap "{ref.get("name")}" not found') from exc

    def _secret(self, namespace: str, ref: JSON) -> dict[str, str]:
        rt = self.api.resource("", "v1", "secrets")
        try:
            data = self.api.get(rt, namespace, ref["name"]).get("data") or {}
        except ApiError as exc:
            if ref.get("optional"):
                return {}
            raise _Waiting("CreateContainerConfigError", f'secret "{ref.get("name")}" not found') from exc
        return {k: base64.b64decode(v).decode("utf-8", errors="replace") for k, v in data.items()}

    def _materialize_volumes(self, pod: JSON, container: JSON, directory: Path) -> dict[str, Path]:
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise _Waiting("CreateContainerConfigError", f'volume "{mount["name"]}" is not defined')
            host = directory / "volumes" / mount["name"]
            host.mkdir(parents=True, exist_ok=True)
            files: dict[str, str] = {}
            if "configMap" in volume:
                files = self._config_map(namespace, volume["configMap"])
                items = volume["configMap"].get("items")
            elif "secret" in volume:
                files = self._secret(
                    namespace,
                    {
                        "name": volume["secret"].get("secretName", ""),
                        "optional": volume["secret"].get("optional"),
                    },
                )
                items = volume["secret"].get("items")
            else:
                items = None
            if items:
                files = {item["path"]: files[item["key"]] for item in items if item["key"] in files}
            for relative, content in files.items():
                target = host / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            sub_path = mount.get("subPath")
            mounts[mount["mountPath"]] = host / sub_path if sub_path else host
        return mounts


class _Waiting(Exception):
    """The container cannot start yet (a missing ConfigMap, no command): reported as a waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` up to ``seconds``; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=max(grace, 0.1))
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@dataclass(frozen=True)
class ProbeTiming:
    """One probe's timings, with the Kubernetes defaults for the fields it leaves out."""

    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1

    @classmethod
    def of(cls, probe: JSON) -> ProbeTiming:
        return cls(
            initial_delay=max(float(probe.get("initialDelaySeconds", 0)), 0.0),
            period=max(float(probe.get("periodSeconds", 10)), 1.0),
            timeout=max(float(probe.get("timeoutSeconds", 1)), 1.0),
            failure_threshold=max(int(probe.get("failureThreshold", 3)), 1),
            success_threshold=max(int(probe.get("successThreshold", 1)), 1),
        )


class ProbeState:
    """Consecutive results of one probe: the state flips after a threshold of the other result."""

    def __init__(self, timing: ProbeTiming, initially: bool) -> None:
        self.timing = timing
        self.state = initially
        self._streak = 0

    def observe(self, ok: bool) -> bool | None:
        """Take one result; the new state when it flips, else ``None``."""
        if ok == self.state:
            self._streak = 0
            return None
        self._streak += 1
        threshold = self.timing.success_threshold if ok else self.timing.failure_threshold
        if self._streak < threshold:
            return None
        self.state, self._streak = ok, 0
        return ok


async def run_probe(
    timing: ProbeTiming,
    check: Callable[[], Awaitable[bool]],
    on_change: Callable[[bool], None],
    running: Callable[[], bool],
    *,
    initially: bool = True,
    stop_on_failure: bool = False,
    fast_while_failing: bool = False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Probe like a kubelet: after ``initial_delay``, every ``period``, each check within ``timeout``.

    ``on_change`` gets the new state when ``failure_threshold`` failures (or ``success_threshold``
    successes) in a row flip it. A liveness probe starts alive and, with ``stop_on_failure``, ends
    once it reports a failure (the container is restarted, and a new one gets new probes). A
    readiness probe starts not ready; with ``fast_while_failing`` it checks every second at most
    while not ready (the sandbox's only deviation: pods become ready sooner, never later).
    """
    state = ProbeState(timing, initially)
    await sleep(timing.initial_delay)
    while running():
        flipped = state.observe(await check())
        if flipped is not None:
            on_change(flipped)
            if stop_on_failure and not flipped:
                return
        period = min(timing.period, 1.0) if fast_while_failing and not state.state else timing.period
        await sleep(period)


def _checker(probe: JSON, container: JSON, pod_ip: str) -> Callable[[], Awaitable[bool]]:
    """One check of ``probe``, failed when it takes longer than the probe's ``timeoutSeconds``."""
    seconds = ProbeTiming.of(probe).timeout

    async def check() -> bool:
        try:
            async with asyncio.timeout(seconds), aiohttp.ClientSession() as session:
                return await _check(session, probe, container, pod_ip)
        except TimeoutError:
            return False

    return check


async def _check(session: aiohttp.ClientSession, probe: JSON, container: JSON, pod_ip: str) -> bool:
    def port_of(value: Any) -> int:
        if isinstance(value, int):
            return value
        for port in container.get("ports") or []:
            if port.get("name") == value:
                return int(port["containerPort"])
        return int(value)

    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{get.get('host') or pod_ip}:{port_of(get.get('port'))}{get.get('path', '/')}"
            async with session.get(url) as response:
                return 200 <= response.status < 400
        if "tcpSocket" in probe:
            _, writer = await asyncio.open_connection(
                probe["tcpSocket"].get("host") or pod_ip, port_of(probe["tcpSocket"].get("port"))
            )
            writer.close()
            return True
    except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return True
