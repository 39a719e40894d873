"""Durable runs: every execution is a WorkflowRun, created before it starts and claimed before it runs.

Creating. :meth:`RunManager.create_run` creates the WorkflowRun (labels ``tideflow.io/workflow`` and
``tideflow.io/trigger-type``; name ``<workflow>-<random>``, or with an idempotency key the deterministic
:func:`idempotent_run_name`, so a repeated request is a 409 that returns the existing run) before anything
executes: a trigger is accepted only once its run is stored.

Claiming. Every replica lists and watches the runs of its workflow and claims Pending ones, highest
``spec.priority`` first, then oldest (``creationTimestamp``, then name), by writing ``status`` (phase
Running, ``claimedBy`` = pod name, ``claimedAt``, ``startedAt``, a ``Claimed`` condition) to the status
subresource *with the resourceVersion it read as a precondition*: when another replica got there first
the write is a 409 and the run is left to the winner, so no two replicas ever run the same run. A replica
leaves a Pending run that another replica created (annotation ``tideflow.io/origin-pod``) to that replica
for ``origin_grace`` seconds, so the replica that took the trigger usually runs it.

Leases. The owner renews ``claimedAt`` with every status write, and at least every ``lease / 3``
seconds. A run in phase Running whose ``claimedAt`` is older than the lease (60 s by default) belongs to a
runtime that died: any replica may claim it again (the condition says ``Reclaimed`` and counts the
claims), and it executes again from the start (its nodes run at least once, the run completes once). A
process that finds a Running run claimed by its own pod name that it is not executing is the restarted
container of that pod, and reclaims it at once.

Status. :class:`StatusWriter` writes a run's progress batched, at most once per ``interval`` (0.5 s) plus
the final write, each write the whole status (a JSON patch replacing it: a merge patch would drop the
nulls inside outputs) with the resourceVersion it last saw as a precondition. A 409 is
resolved by reading the run: still ours, write again; cancelled by someone else, stop the execution and
keep their phase; claimed by someone else (or handed back), stop without writing. :func:`fit_status`
keeps every write under the size budget (256 KiB): the largest outputs are replaced by
``{"truncated": true, "bytes": N}`` first, then errors are shortened and the oldest node entries dropped.

Approvals. A run that pauses ends in phase AwaitingInteraction with ``status.output`` =
``{"awaiting": [...], "snapshot": {...}}`` (the engine's resume snapshot, at most ``3/4`` of the budget,
else the run fails). A decision is recorded durably as ``status.output.decision`` with the phase back to
Pending, so any replica (or the runtime the operator wakes) claims it and resumes from the snapshot.
Cancelling writes phase Cancelled; the replica executing the run sees it and stops. The annotation
``tideflow.io/cancel-requested`` asks the same of whoever holds the run (the operator sets it under
``concurrencyPolicy: Replace``, the API for a cancel request): the replica executing it cancels the
execution, and a run nobody executes (Pending, awaiting a decision, or Running with an expired lease)
is written Cancelled by any replica instead of being claimed. The reason is the annotation's value,
or ``cancelled by request`` when the value is ``true``.

Draining. :meth:`RunManager.drain` stops claiming, gives the runs in flight the grace period, then
cancels the rest and hands them back (phase Pending, claim cleared) for another replica. Unclaimed runs
stay Pending: nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import heapq
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

import httpx
from pydantic import ValidationError

from tideflow.core import kube, names
from tideflow.core.clock import Clock, parse_time, system_clock
from tideflow.core.kube import Conflict, KubeClient, KubeError, NotFound
from tideflow.core.models import (
    MAX_ERROR_LENGTH,
    MAX_NODES,
    RunPhase,
    TriggerType,
    ValidationIssue,
    WorkflowDefinition,
    WorkflowRef,
    WorkflowRunSpec,
)
from tideflow.core.naming import idempotent_run_name, random_run_name
from tideflow.runtime.engine import (
    Execution,
    ProgressEvent,
    ProgressKind,
    ResumeError,
    RunResult,
    TriggerEvent,
    WorkflowDefinitionError,
    WorkflowEngine,
)
from tideflow.runtime.metrics import RuntimeMetrics
from tideflow.runtime.nodes.base import WebhookResponse

__all__ = [
    "CLAIMED_CONDITION",
    "ORIGIN_ANNOTATION",
    "TRIGGER_ANNOTATION",
    "KubeRunStore",
    "MemoryRunStore",
    "RunManager",
    "RunOutcome",
    "RunStateError",
    "RunStore",
    "StatusWriter",
    "cancel_request",
    "compose_status",
    "fit_status",
    "idempotent_run_name",
    "merge_patch",
    "new_run",
    "phase_of",
    "random_run_name",
    "timestamp",
    "truncation_marker",
]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

ORIGIN_ANNOTATION: Final = f"{names.GROUP}/origin-pod"
"""Pod that created the run (and is about to claim it)."""
TRIGGER_ANNOTATION: Final = f"{names.GROUP}/trigger-metadata"
"""JSON of what the runtime recorded about the event (a webhook's method, path, headers, query), so any
replica that executes the run gives its trigger nodes the same payload."""
CLAIMED_CONDITION: Final = "Claimed"
MAX_TRIGGER_ANNOTATION_BYTES: Final = 64 * 1024
DEFAULT_CANCEL_REASON: Final = "cancelled by request"
NO_DEFINITION_MESSAGE: Final = (
    "this runtime cannot load the workflow's definition; only runs with their own definition run here"
)
CANCEL_GRACE_SECONDS: Final = 5.0
"""How long a cancelled execution may take to stop before the run is recorded Cancelled anyway."""
SNAPSHOT_SHARE: Final = 0.75
"""Largest share of the status budget a paused run's snapshot may take."""
_CLAIM_COUNT = re.compile(r"\bclaim ([0-9]+)\b")


class RunStateError(Exception):
    """A request about a run that its state does not allow: ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# Helpers: names, objects, timestamps, sizes
# --------------------------------------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: ``2025-01-01T00:00:00.123Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def new_run(
    workflow: str,
    *,
    name: str,
    trigger_type: str = TriggerType.MANUAL.value,
    inputs: Mapping[str, Any] | None = None,
    priority: int = 0,
    idempotency_key: str | None = None,
    trigger_metadata: Mapping[str, Any] | None = None,
    origin_pod: str | None = None,
) -> JSON:
    """A WorkflowRun object to create; the spec is checked by the model (``ValidationError``)."""
    spec = WorkflowRunSpec(
        workflow_ref=WorkflowRef(name=workflow),
        trigger_type=TriggerType(trigger_type),
        inputs=dict(inputs or {}),
        priority=priority,
        idempotency_key=idempotency_key,
    )
    annotations: dict[str, str] = {}
    if origin_pod:
        annotations[ORIGIN_ANNOTATION] = origin_pod
    if trigger_metadata:
        text = _dumps(dict(trigger_metadata))
        if len(text.encode()) > MAX_TRIGGER_ANNOTATION_BYTES:
            kept = {key: value for key, value in trigger_metadata.items() if key != "headers"}
            text = _dumps({**kept, "headersDropped": True})
        annotations[TRIGGER_ANNOTATION] = text
    metadata: JSON = {
        "name": name,
        "labels": {
            names.LABEL_WORKFLOW: workflow,
            names.LABEL_TRIGGER_TYPE: spec.trigger_type.value,
            names.LABEL_PART_OF: names.PART_OF,
        },
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.WORKFLOWRUN_KIND,
        "metadata": metadata,
        "spec": spec.to_dict(),
    }


def phase_of(obj: Mapping[str, Any]) -> RunPhase | None:
    """The run's phase (Pending without one); ``None`` for a phase this runtime does not know."""
    value = (obj.get("status") or {}).get("phase")
    if not value:
        return RunPhase.PENDING
    try:
        return RunPhase(value)
    except ValueError:
        return None


def cancel_request(obj: Mapping[str, Any]) -> str | None:
    """The reason a run's ``tideflow.io/cancel-requested`` annotation gives, ``None`` without a request.

    ``true`` (any case) asks without a reason (``cancelled by request``); ``false`` or an empty value
    asks nothing; any other value is the reason itself.
    """
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.ANNOTATION_CANCEL)
    if not isinstance(value, str) or value.strip().lower() in ("", "false"):
        return None
    text = value.strip()
    return DEFAULT_CANCEL_REASON if text.lower() == "true" else _truncate_error(text)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: JSON = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _size(value: Any) -> int:
    """Bytes of the compact JSON of ``value``: what it adds to the stored object."""
    return len(_dumps(value).encode())


def truncation_marker(size: int) -> JSON:
    """What replaces a value too large for the status: its serialized size in bytes."""
    return {"truncated": True, "bytes": size}


_PROTECTED_OUTPUT_KEYS: Final = frozenset({"snapshot", "decision", "awaiting"})
_MARKER_SIZE: Final = _size(truncation_marker(10**9))


def fit_status(status: JSON, budget: int) -> JSON:
    """``status`` (unchanged when it fits) or a copy whose serialized size is at most ``budget`` bytes.

    Node log entries beyond ``MAX_NODES`` are dropped (the oldest first); then the largest node outputs and
    run output values are replaced with :func:`truncation_marker`; then long node errors are shortened and
    the oldest node entries dropped. A paused run's snapshot and decision are never truncated here.
    """
    nodes_in = status.get("nodes")
    if _size(status) <= budget and not (isinstance(nodes_in, list) and len(nodes_in) > MAX_NODES):
        return status
    fitted = dict(status)
    nodes: list[JSON] = [dict(entry) for entry in nodes_in] if isinstance(nodes_in, list) else []
    if len(nodes) > MAX_NODES:
        nodes = nodes[-MAX_NODES:]
    if isinstance(nodes_in, list):
        fitted["nodes"] = nodes
    candidates: list[tuple[int, JSON, str]] = []
    for entry in nodes:
        if entry.get("output") is not None:
            candidates.append((_size(entry["output"]), entry, "output"))
    output = fitted.get("output")
    if isinstance(output, Mapping):
        output = dict(output)
        fitted["output"] = output
        for key, value in output.items():
            if key not in _PROTECTED_OUTPUT_KEYS:
                candidates.append((_size(value), output, key))
    elif output is not None:
        candidates.append((_size(output), fitted, "output"))
    total = _size(fitted)
    candidates.sort(key=lambda candidate: candidate[0], reverse=True)
    for size, holder, key in candidates:
        if total <= budget or size <= _MARKER_SIZE:
            break
        marker = truncation_marker(size)
        holder[key] = marker
        total -= size - _size(marker)
    if total <= budget:
        return fitted
    for entry in nodes:
        error = entry.get("error")
        if isinstance(error, str) and len(error) > 512:
            entry["error"] = error[:497] + "... (truncated)"
    total = _size(fitted)
    while total > budget and nodes:
        removed = nodes.pop(0)
        total -= _size(removed) + 1
    return fitted


def _claim_count(status: Mapping[str, Any]) -> int:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == CLAIMED_CONDITION:
            match = _CLAIM_COUNT.search(str(condition.get("message") or ""))
            if match:
                return int(match.group(1))
    return 1 if status.get("claimedBy") else 0


def compose_status(status: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> JSON:
    """``status`` with ``fields`` set; a field set to ``None`` is removed (the API server drops nulls)."""
    merged = {**(status or {}), **fields}
    return {key: value for key, value in merged.items() if value is not None}


def _with_condition(status: Mapping[str, Any], condition: JSON) -> list[JSON]:
    others = [
        dict(item)
        for item in status.get("conditions") or []
        if isinstance(item, Mapping) and item.get("type") != condition["type"]
    ]
    return [*others, condition]


def _resuming(status: Mapping[str, Any]) -> bool:
    output = status.get("output")
    return (
        isinstance(output, Mapping)
        and isinstance(output.get("snapshot"), Mapping)
        and isinstance(output.get("decision"), Mapping)
    )


def _truncate_error(message: str) -> str:
    if len(message) <= MAX_ERROR_LENGTH:
        return message
    return message[: MAX_ERROR_LENGTH - 15] + "... (truncated)"


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


class RunStore(Protocol):
    """Where the runs of one workflow live. Errors are :mod:`tideflow.core.kube`'s (NotFound, Conflict)."""

    async def create(self, body: JSON) -> JSON: ...

    async def get(self, name: str) -> JSON: ...

    async def list_runs(self) -> tuple[list[JSON], str | None]:
        """The workflow's runs and the list's resourceVersion (to watch from)."""
        ...

    def watch(self, resource_version: str | None) -> AsyncIterator[JSON]:
        """Watch events (``type``, ``object``) of the workflow's runs after ``resource_version``."""
        ...

    async def replace_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        """Replace the whole status; a 409 (Conflict) if the run changed since ``resource_version``.

        A whole replacement, not a merge patch: in a merge patch a ``null`` anywhere (say in a node's
        output, or in a resume snapshot) would delete the key instead of storing it.
        """
        ...

    async def patch_workflow_status(self, status: JSON) -> None:
        """Merge-patch the Workflow's status subresource."""
        ...


class KubeRunStore:
    """The runs of one workflow in a Kubernetes namespace, through :class:`~tideflow.core.kube.KubeClient`."""

    def __init__(
        self, client: KubeClient, namespace: str, workflow: str, *, watch_timeout: int = 300
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.workflow = workflow
        self.selector = f"{names.LABEL_WORKFLOW}={workflow}"
        self.watch_timeout = watch_timeout

    async def create(self, body: JSON) -> JSON:
        return await self.client.create(kube.WORKFLOWRUNS, self.namespace, body)

    async def get(self, name: str) -> JSON:
        return await self.client.get(kube.WORKFLOWRUNS, self.namespace, name)

    async def list_runs(self) -> tuple[list[JSON], str | None]:
        items: list[JSON] = []
        token: str | None = None
        while True:
            page = await self.client.list_objects(
                kube.WORKFLOWRUNS,
                self.namespace,
                label_selector=self.selector,
                limit=500,
                continue_token=token,
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, meta.get("resourceVersion")

    def watch(self, resource_version: str | None) -> AsyncIterator[JSON]:
        return self.client.watch(
            kube.WORKFLOWRUNS,
            self.namespace,
            resource_version=resource_version,
            label_selector=self.selector,
            timeout_seconds=self.watch_timeout,
        )

    async def replace_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        # A JSON patch: setting metadata.resourceVersion makes it the precondition (409 when stale), and
        # "add" replaces the whole status, nulls inside values included.
        patch = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status},
        ]
        return await self.client.patch(
            kube.WORKFLOWRUNS, self.namespace, name, patch, subresource="status", content_type=kube.JSON_PATCH
        )

    async def patch_workflow_status(self, status: JSON) -> None:
        await self.client.patch(
            kube.WORKFLOWS, self.namespace, self.workflow, {"status": status}, subresource="status"
        )


def _status_error(cls: type[KubeError], code: int, reason: str, message: str) -> KubeError:
    return cls(code, reason, message, {"kind": "Status", "code": code, "reason": reason, "message": message})


class MemoryRunStore:
    """The runs of one workflow in memory, with the API server's semantics the runtime relies on.

    Create refuses an existing name (409 AlreadyExists); a status write carrying a stale resourceVersion
    is a 409 Conflict; every write bumps a store-wide resourceVersion and emits a watch event; a watch
    replays the events after the resourceVersion it starts from. It records every status write (for
    tests and benchmarks that count them) and the Workflow's status patches. ``before_status_write`` is a
    hook a test can use to interleave another writer.
    """

    def __init__(self, workflow: str, namespace: str = "default", *, clock: Clock = system_clock) -> None:
        self.workflow = workflow
        self.namespace = namespace
        self.clock = clock
        self.objects: dict[str, JSON] = {}
        self.status_writes: list[tuple[str, JSON]] = []
        self.status_write_times: list[float] = []
        self.conflicts = 0
        self.workflow_status: JSON = {}
        self.workflow_writes = 0
        self.before_status_write: Callable[[str], None] | None = None
        self._rv = 0
        self._history: list[JSON] = []
        self._subscribers: list[asyncio.Queue[JSON]] = []

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, event_type: str, obj: JSON) -> None:
        event = {"type": event_type, "object": copy.deepcopy(obj)}
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def create(self, body: JSON) -> JSON:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            name = random_run_name(str(meta.get("generateName") or "run").rstrip("-"))
            meta["name"] = name
        if name in self.objects:
            raise _status_error(Conflict, 409, "AlreadyExists", f'workflowruns "{name}" already exists')
        meta.update(
            namespace=self.namespace,
            uid=secrets.token_hex(16),
            creationTimestamp=self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            generation=1,
            resourceVersion=self._next_rv(),
        )
        obj.pop("status", None)  # the status subresource drops a status sent with a create
        self.objects[name] = obj
        self._emit("ADDED", obj)
        return copy.deepcopy(obj)

    async def get(self, name: str) -> JSON:
        try:
            return copy.deepcopy(self.objects[name])
        except KeyError:
            raise _status_error(NotFound, 404, "NotFound", f'workflowruns "{name}" not found') from None

    async def list_runs(self) -> tuple[list[JSON], str | None]:
        return [copy.deepcopy(obj) for obj in self.objects.values()], str(self._rv)

    async def watch(self, resource_version: str | None) -> AsyncIterator[JSON]:
        queue: asyncio.Queue[JSON] = asyncio.Queue()
        if resource_version in (None, "", "0"):
            for obj in self.objects.values():
                queue.put_nowait({"type": "ADDED", "object": copy.deepcopy(obj)})
        else:
            since = int(str(resource_version))
            for event in self._history:
                if int(event["object"]["metadata"]["resourceVersion"]) > since:
                    queue.put_nowait(event)
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def replace_status(self, name: str, status: JSON, resource_version: str) -> JSON:
        if self.before_status_write is not None:
            self.before_status_write(name)
        return self.put_status(name, status, resource_version)

    def put_status(self, name: str, status: JSON, resource_version: str | None = None) -> JSON:
        """Replace the status now (what :meth:`replace_status` does, without the hook)."""
        return self._write_status(name, copy.deepcopy(status), resource_version, status)

    def merge_status(self, name: str, patch: JSON, resource_version: str | None = None) -> JSON:
        """Merge-patch the status now: how a test plays another writer (the API, the operator)."""
        current = self.objects.get(name)
        merged = merge_patch((current or {}).get("status") or {}, patch)
        return self._write_status(name, merged, resource_version, patch)

    def _write_status(self, name: str, new_status: JSON, resource_version: str | None, sent: JSON) -> JSON:
        current = self.objects.get(name)
        if current is None:
            raise _status_error(NotFound, 404, "NotFound", f'workflowruns "{name}" not found')
        if resource_version and resource_version != current["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise _status_error(
                Conflict,
                409,
                "Conflict",
                f'Operation cannot be fulfilled on workflowruns "{name}": the object has been modified',
            )
        updated = copy.deepcopy(current)
        if new_status:
            updated["status"] = new_status
        else:
            updated.pop("status", None)
        updated["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[name] = updated
        self.status_writes.append((name, copy.deepcopy(sent)))
        with contextlib.suppress(RuntimeError):
            self.status_write_times.append(asyncio.get_running_loop().time())
        self._emit("MODIFIED", updated)
        return copy.deepcopy(updated)

    def annotate(self, name: str, key: str, value: str | None) -> JSON:
        """Set (or with ``None`` remove) an annotation, as ``kubectl annotate`` would: a new version."""
        current = self.objects.get(name)
        if current is None:
            raise _status_error(NotFound, 404, "NotFound", f'workflowruns "{name}" not found')
        updated = copy.deepcopy(current)
        annotations = updated["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        updated["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[name] = updated
        self._emit("MODIFIED", updated)
        return copy.deepcopy(updated)

    async def delete(self, name: str) -> None:
        obj = self.objects.pop(name, None)
        if obj is None:
            raise _status_error(NotFound, 404, "NotFound", f'workflowruns "{name}" not found')
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", obj)

    async def patch_workflow_status(self, status: JSON) -> None:
        self.workflow_status = merge_patch(self.workflow_status, status)
        self.workflow_writes += 1

    def writes_of(self, name: str) -> list[JSON]:
        """The statuses (or, from :meth:`merge_status`, the patches) written to one run, in order."""
        return [status for written, status in self.status_writes if written == name]


# --------------------------------------------------------------------------------------------
# The batched status writer
# --------------------------------------------------------------------------------------------

Verdict = Literal["retry", "finished", "lost"]
ConflictHandler = Callable[[JSON], Verdict]
"""Given the run as it is now (after a 409): ``retry`` (still ours), ``finished`` (someone else ended
it: keep their phase), ``lost`` (someone else owns it now: write nothing more)."""


class StatusWriter:
    """Writes one run's status as it progresses: batched, rate-limited, size-bounded and conflict-safe.

    It keeps the run's whole status as last written (or read) and replaces it with every write, guarded
    by the resourceVersion. :meth:`node` records a node's log entry and schedules a write at most once
    per ``interval`` (the claim counts as the first write); :meth:`finish` writes the final fields at
    once; the claim is renewed (``claimedAt``) with every write and, when nothing else was written,
    every ``renew_every`` seconds.
    """

    def __init__(
        self,
        store: RunStore,
        name: str,
        resource_version: str,
        *,
        status: JSON,
        interval: float = 0.5,
        renew_every: float = 20.0,
        budget: int = 256 * 1024,
        clock: Clock = system_clock,
        on_conflict: ConflictHandler | None = None,
        metrics: RuntimeMetrics | None = None,
        known_versions: set[str] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.resource_version = resource_version
        self.status = dict(status)
        """The run's status as last written or read."""
        self.interval = interval
        self.renew_every = renew_every
        self.budget = budget
        self.clock = clock
        self.on_conflict = on_conflict
        self.metrics = metrics
        self.known_versions = known_versions if known_versions is not None else set()
        self.known_versions.add(resource_version)
        self.writes = 0
        self.lost = False
        self.finished_by_other: JSON | None = None
        """The run as another writer ended it (a cancel), once a conflict showed it."""
        self._nodes: dict[str, JSON] = {
            str(entry.get("nodeId")): dict(entry) for entry in status.get("nodes") or []
        }
        self._dirty = False
        self._closed = False
        self._writing_task: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._last_write = loop.time()
        self._flusher: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = (
            loop.create_task(self._renew_loop()) if renew_every > 0 else None
        )

    @property
    def nodes(self) -> list[JSON]:
        return list(self._nodes.values())

    def node(self, entry: JSON) -> None:
        """Record a node's log entry (replacing the previous one of the same node)."""
        self._nodes[str(entry.get("nodeId"))] = entry
        self._dirty = True
        self._schedule()

    def _schedule(self) -> None:
        if self._closed or self.lost or (self._flusher is not None and not self._flusher.done()):
            return
        delay = max(0.0, self._last_write + self.interval - self._loop.time())
        self._flusher = self._loop.create_task(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self._write_progress()
        if self._dirty:
            self._flusher = None
            self._schedule()

    async def _renew_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(max(0.05, self._last_write + self.renew_every - self._loop.time()))
            if self._loop.time() - self._last_write >= self.renew_every * 0.95 and not self._closed:
                self._dirty = True
                await self._write_progress()

    async def _write_progress(self) -> None:
        async with self._lock:
            if self._closed or self.lost or not self._dirty or self.finished_by_other is not None:
                return
            self._dirty = False
            fields = {"nodes": self.nodes}
            if not await self._send(fields, final=False):
                self._dirty = not self.lost and self.finished_by_other is None

    async def _stop_background(self) -> None:
        self._closed = True
        tasks = [task for task in (self._renewer, self._flusher) if task is not None and not task.done()]
        for task in tasks:
            if task is not self._writing_task:  # a write in flight completes: its outcome must be known
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def finish(self, fields: JSON, *, final_attempts: int = 8) -> bool:
        """Write the final ``fields`` (``None`` removes one) after any write in flight.

        ``False`` when the run is not ours any more, or the write kept failing.
        """
        await self._stop_background()
        async with self._lock:
            if self.lost:
                return False
            return await self._send(fields, final=True, final_attempts=final_attempts)

    async def close(self) -> None:
        """Stop writing without a final status (the run was lost or handed back by someone else)."""
        await self._stop_background()

    def _compose(self, fields: JSON, final: bool) -> JSON:
        fields = {**fields, "claimedAt": timestamp(self.clock())} if "claimedAt" not in fields else fields
        if final and self.finished_by_other is not None:
            theirs = self.finished_by_other.get("status") or {}
            fields = {**fields, **{key: theirs.get(key) for key in ("phase", "error", "completedAt")}}
        return fit_status(compose_status(self.status, fields), self.budget)

    async def _send(self, fields: JSON, *, final: bool, final_attempts: int = 8) -> bool:
        failures = 0
        conflicts = 0
        while True:
            status = self._compose(fields, final)
            self._last_write = self._loop.time()
            self._writing_task = asyncio.current_task()
            try:
                written = await self.store.replace_status(self.name, status, self.resource_version)
            except Conflict:
                self._writing_task = None
                self._count("conflict")
                conflicts += 1
                try:
                    current = await self.store.get(self.name)
                except NotFound:
                    self.lost = True
                    return False
                self.resource_version = _rv(current)
                self.known_versions.add(self.resource_version)
                self.status = dict(current.get("status") or {})  # rebase on what others wrote
                verdict: Verdict = "retry" if self.on_conflict is None else self.on_conflict(current)
                if verdict == "lost":
                    self.lost = True
                    return False
                if verdict == "finished":
                    self.finished_by_other = current
                    if not final:
                        return False
                if conflicts > 20:
                    logger.error("run %s: giving up a status write after %d conflicts", self.name, conflicts)
                    return False
                continue
            except NotFound:
                self._writing_task = None
                self.lost = True
                return False
            except (KubeError, httpx.HTTPError, OSError) as exc:
                self._writing_task = None
                self._count("error")
                failures += 1
                if not final or failures >= final_attempts:
                    logger.warning("run %s: status write failed: %s", self.name, exc)
                    return False
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            self._writing_task = None
            self.resource_version = _rv(written)
            self.known_versions.add(self.resource_version)
            self.status = dict(written.get("status") or {})
            self.writes += 1
            self._count("ok")
            return True

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.status_write(result)


# --------------------------------------------------------------------------------------------
# The run manager
# --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """Where a run ended up, for whoever waits on it (a sync trigger, a webhook)."""

    name: str
    phase: RunPhase
    output: Any = None
    error: str | None = None
    duration_seconds: float | None = None
    awaiting: list[JSON] | None = None
    response: WebhookResponse | None = None

    def to_json(self) -> JSON:
        body: JSON = {"runId": self.name, "phase": self.phase.value}
        if self.phase is RunPhase.AWAITING_INTERACTION:
            body["awaiting"] = self.awaiting or []
        else:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        if self.duration_seconds is not None:
            body["durationSeconds"] = self.duration_seconds
        return body


@dataclass(eq=False)
class _View:
    """What the claimer knows of a Pending or Running run."""

    obj: JSON
    phase: RunPhase
    first_seen: float
    retry_at: float = 0.0
    queued: bool = False
    """Whether the claim heap holds an entry for it."""

    @property
    def name(self) -> str:
        return _name(self.obj)

    @property
    def status(self) -> JSON:
        return dict(self.obj.get("status") or {})

    @property
    def sort_key(self) -> tuple[int, str, str]:
        spec = self.obj.get("spec") or {}
        raw = spec.get("priority")
        priority = raw if isinstance(raw, int) else 0
        created = str((self.obj.get("metadata") or {}).get("creationTimestamp") or "")
        return (-priority, created, self.name)


async def _cancel_soon(execution: Execution, reason: str) -> None:
    """Cancel an execution a few turns of the loop from now.

    Node tasks the engine has just created but not yet started would otherwise be cancelled before they
    run their ``finally``, and the engine would wait for them forever (see docs/runtime.md); a few turns
    of the loop let them start. :data:`CANCEL_GRACE_SECONDS` bounds what is left of that race.
    """
    for _ in range(3):
        await asyncio.sleep(0)
    execution.cancel(reason)


class _Index:
    """The Pending and Running runs a replica knows of; Pending ones also in a heap, in claim order.

    Running runs are other replicas' (a claim of this process moves the run out): few, so every claim
    pass checks their leases; Pending runs can be many, so a pass pops them from the heap in order.
    """

    def __init__(self) -> None:
        self.views: dict[str, _View] = {}
        self.running: set[str] = set()
        self.heap: list[tuple[tuple[int, str, str], str]] = []
        self.pending = 0

    def __len__(self) -> int:
        return len(self.views)

    def get(self, name: str) -> _View | None:
        return self.views.get(name)

    def put(self, obj: JSON, phase: RunPhase, now: float) -> _View:
        name = _name(obj)
        view = self.views.get(name)
        if view is None:
            view = self.views[name] = _View(obj, phase, now)
        else:
            if view.phase is RunPhase.PENDING:
                self.pending -= 1
            view.obj, view.phase, view.retry_at = obj, phase, 0.0
        if phase is RunPhase.PENDING:
            self.pending += 1
            self.running.discard(name)
            self.enqueue(view)
        else:
            self.running.add(name)
        return view

    def enqueue(self, view: _View) -> None:
        if not view.queued and view.phase is RunPhase.PENDING and self.views.get(view.name) is view:
            heapq.heappush(self.heap, (view.sort_key, view.name))
            view.queued = True

    def remove(self, name: str) -> None:
        view = self.views.pop(name, None)  # its heap entry, if any, is dropped when it comes up
        if view is not None and view.phase is RunPhase.PENDING:
            self.pending -= 1
        self.running.discard(name)


@dataclass(eq=False)
class _Local:
    """A run this process executes."""

    name: str
    writer: StatusWriter
    known_versions: set[str]
    execution: Execution | None = None
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    cancel_requested: asyncio.Event = field(default_factory=asyncio.Event)
    canceller: asyncio.Task[None] | None = None
    handing_back: bool = False
    lost: bool = False

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel_requested.set()
        if self.execution is not None and self.canceller is None:
            self.canceller = asyncio.get_running_loop().create_task(
                _cancel_soon(self.execution, self.cancel_reason)
            )

    def lose(self) -> None:
        self.lost = True
        self.writer.lost = True
        self.cancel("another runtime owns the run now")

    def hand_back(self) -> None:
        self.handing_back = True
        self.cancel("the runtime is shutting down; the run was handed back")


@dataclass(frozen=True)
class _Stopped:
    """An execution that did not stop within :data:`CANCEL_GRACE_SECONDS` of being cancelled."""

    reason: str


@dataclass(eq=False)
class _Waiter:
    future: asyncio.Future[RunOutcome | None]
    want_response: bool


@dataclass
class _Done:
    versions: set[str]
    at: float


EngineFactory = Callable[[WorkflowDefinition], WorkflowEngine]


@dataclass
class ManagerOptions:
    """Tuning of a :class:`RunManager` (the runtime fills it from :class:`RuntimeSettings`)."""

    max_concurrent_runs: int = 16
    lease_seconds: float = 60.0
    status_interval: float = 0.5
    status_budget: int = 256 * 1024
    origin_grace: float = 2.0
    tick_seconds: float = 1.0
    parallel_claims: int = 1
    """Claims in flight at once (each is one write); they are started in claim order."""


class RunManager:
    """Creates, claims, executes and records the runs of one workflow (see the module docstring)."""

    def __init__(
        self,
        store: RunStore,
        engine: WorkflowEngine | None,
        *,
        workflow: str,
        pod_name: str,
        options: ManagerOptions | None = None,
        clock: Clock = system_clock,
        metrics: RuntimeMetrics | None = None,
        on_activity: Callable[[], None] | None = None,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        if engine is None and engine_factory is None:
            raise ValueError("a run manager without an engine needs an engine_factory")
        self.store = store
        self.engine = engine
        """``None`` when the workflow's own definition is unusable: only runs that carry their own
        ``spec.definition`` (draft runs) are claimed then; the others wait for a runtime that has one."""
        self.workflow = workflow
        self.pod_name = pod_name
        self.options = options or ManagerOptions()
        self.clock = clock
        self.metrics = metrics
        self.on_activity = on_activity
        self._engine_factory = engine_factory
        self.watching = False
        self.draining = False
        self.claimed: list[str] = []
        """Names of the runs this manager claimed, in order (for tests and diagnostics)."""
        self._index = _Index()
        self._executing: dict[str, _Local] = {}
        self._claiming: set[str] = set()
        self._done: dict[str, _Done] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._claims: set[asyncio.Task[None]] = set()
        self._cancelling: dict[str, asyncio.Task[None]] = {}  # requested cancels being written
        self._closed = False
        self._watch_ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """List and watch the workflow's runs, and start claiming."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._watch_loop(), name="runs-watch"),
            loop.create_task(self._claim_loop(), name="runs-claim"),
            loop.create_task(self._tick_loop(), name="runs-tick"),
        ]

    async def wait_watching(self) -> None:
        """Wait until the first list has been read and the watch runs."""
        await self._watch_ready.wait()

    @property
    def in_flight(self) -> int:
        return len(self._executing)

    def executing(self) -> list[str]:
        return list(self._executing)

    async def drain(self, seconds: float) -> None:
        """Stop claiming; let runs in flight finish for ``seconds``, then hand the rest back."""
        self.draining = True
        self._wake.set()
        tasks = [local.task for local in self._executing.values() if local.task is not None]
        if tasks and seconds > 0:
            await asyncio.wait(tasks, timeout=seconds)
        for local in list(self._executing.values()):
            local.hand_back()
        tasks = [local.task for local in self._executing.values() if local.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        for name in list(self._waiters):
            self._resolve(name, None)

    async def close(self) -> None:
        """Hand back what still runs and stop every background task."""
        if self._closed:
            return
        if self._executing:
            await self.drain(0)
        self._closed = True
        background = [*self._tasks, *self._claims, *self._cancelling.values()]
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name in list(self._waiters):
            self._resolve(name, None)

    # -- watching ----------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        resource_version: str | None = None
        backoff = 0.2
        while True:
            try:
                if resource_version is None:
                    items, resource_version = await self.store.list_runs()
                    seen = {_name(item) for item in items}
                    for name in [name for name in self._index.views if name not in seen]:
                        self._index.remove(name)
                    for item in items:
                        self._observe(item)
                    self.watching = True
                    self._watch_ready.set()
                async for event in self.store.watch(resource_version):
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            logger.info("run watch expired (410); listing again")
                            resource_version = None
                            break
                        raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                    resource_version = _rv(obj) or resource_version
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._observe(obj, deleted=kind == "DELETED")
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.watching = False
                logger.warning("watching runs failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                resource_version = None

    def _observe(self, obj: JSON, *, deleted: bool = False) -> None:
        """Take in the state of a run (from the list, a watch event or a response)."""
        name = _name(obj)
        if not name:
            return
        version = _rv(obj)
        phase = phase_of(obj)
        status = obj.get("status") or {}
        local = self._executing.get(name)
        if local is not None:
            if version in local.known_versions:
                return
            local.known_versions.add(version)
            if (
                deleted
                or phase is None
                or phase in (RunPhase.PENDING, RunPhase.AWAITING_INTERACTION)
                or status.get("claimedBy") != self.pod_name
            ):
                local.lose()
            elif phase.finished:
                local.cancel(f"run {phase.value.lower()} by request")
            elif (reason := cancel_request(obj)) is not None:
                local.cancel(reason)
            return
        done = self._done.get(name)
        if done is not None and version in done.versions:
            return
        if ((obj.get("spec") or {}).get("workflowRef") or {}).get("name") != self.workflow:
            return  # labelled for this workflow but a run of another one: not ours to run
        if deleted or phase is None:
            self._index.remove(name)
            if deleted:
                self._resolve(name, RunOutcome(name, RunPhase.CANCELLED, error="the run was deleted"))
            return
        if self._cancellable(obj, phase):
            self._index.remove(name)
            self._cancel_soon(obj)
            self._update_queue_depth()
            return
        if phase in (RunPhase.PENDING, RunPhase.RUNNING):
            self._index.put(obj, phase, asyncio.get_running_loop().time())
            self._wake.set()
        else:
            self._index.remove(name)
            outcome = self._outcome_from(obj)
            if outcome is not None:
                self._resolve(name, outcome)
        self._update_queue_depth()

    def _update_queue_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.set_queue_depth(self._index.pending)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_seconds)
            if self._index:
                self._wake.set()
            if self._executing and self.on_activity is not None:
                self.on_activity()
            now = asyncio.get_running_loop().time()
            for name in [name for name, done in self._done.items() if now - done.at > 300]:
                del self._done[name]
            self._update_queue_depth()

    def poke(self) -> None:
        """Look for claimable runs now (tests call this after moving the clock)."""
        self._wake.set()

    # -- requested cancels -------------------------------------------------------------------

    def _cancellable(self, obj: JSON, phase: RunPhase) -> bool:
        """A run with a cancel request that nobody executes: this replica writes it Cancelled.

        Pending and awaiting runs, and Running ones whose claim is this pod's (a previous process) or
        has expired. A Running run another replica holds is that replica's to cancel.
        """
        if cancel_request(obj) is None or _name(obj) in self._executing:
            return False
        if phase in (RunPhase.PENDING, RunPhase.AWAITING_INTERACTION):
            return True
        if phase is not RunPhase.RUNNING:
            return False
        status = obj.get("status") or {}
        if status.get("claimedBy") == self.pod_name:
            return True
        try:
            claimed_at = parse_time(str(status.get("claimedAt")))
        except ValueError:
            return True
        return self.clock() - claimed_at > timedelta(seconds=self.options.lease_seconds)

    def _cancel_soon(self, obj: JSON) -> None:
        name = _name(obj)
        if name not in self._cancelling and not self._closed:
            task = asyncio.get_running_loop().create_task(self._write_cancel(obj), name=f"cancel-{name}")
            self._cancelling[name] = task

    async def _write_cancel(self, obj: JSON) -> None:
        """Write Cancelled (guarded by the resourceVersion) on a run with a cancel request nobody runs.

        On a 409 the run is read again and decided again; an unreachable API server is retried with
        back-off until the write is done or no longer wanted (the run ended, the request was withdrawn,
        a replica claimed it and will cancel it itself).
        """
        name = _name(obj)
        backoff = 0.2
        current: JSON | None = obj
        try:
            while True:
                try:
                    if current is None:
                        current = await self.store.get(name)
                    phase = phase_of(current)
                    reason = cancel_request(current)
                    if phase is None or reason is None or not self._cancellable(current, phase):
                        break
                    fields = {
                        "phase": RunPhase.CANCELLED.value,
                        "completedAt": timestamp(self.clock()),
                        "error": reason,
                    }
                    current = await self.store.replace_status(
                        name, compose_status(current.get("status"), fields), _rv(current)
                    )
                    logger.info("run %s cancelled as requested: %s", name, reason)
                    break
                except Conflict:
                    current = None  # changed in between: read it again and decide again
                except NotFound:
                    current = None
                    self._index.remove(name)
                    return
                except Exception as exc:
                    logger.warning("cancelling run %s failed (%s); retrying in %.1fs", name, exc, backoff)
                    current = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            self._cancelling.pop(name, None)
        if current is not None:
            self._observe(current)

    # -- claiming ----------------------------------------------------------------------------

    def _claimable(self, view: _View, now: datetime, loop_now: float) -> bool:
        if view.name in self._executing or view.name in self._claiming or loop_now < view.retry_at:
            return False
        status = view.status
        if self.engine is None and not isinstance((view.obj.get("spec") or {}).get("definition"), dict):
            return False  # only a runtime with the workflow's own definition can run it: leave it
        if view.phase is RunPhase.PENDING:
            origin = ((view.obj.get("metadata") or {}).get("annotations") or {}).get(ORIGIN_ANNOTATION)
            return not (
                origin
                and origin != self.pod_name
                and not status
                and loop_now < view.first_seen + self.options.origin_grace
            )
        if view.phase is RunPhase.RUNNING:
            if status.get("claimedBy") == self.pod_name:
                return True  # the previous process of this pod died with the run
            try:
                claimed_at = parse_time(str(status.get("claimedAt")))
            except ValueError:
                return True
            return now - claimed_at > timedelta(seconds=self.options.lease_seconds)
        return False

    def _next_candidate(self) -> _View | None:
        """The run to claim next: the first claimable one in (priority, age, name) order."""
        now = self.clock()
        loop_now = asyncio.get_running_loop().time()
        index = self._index
        best: _View | None = None
        for name in index.running:
            running = index.views[name]
            if self._claimable(running, now, loop_now) and (best is None or running.sort_key < best.sort_key):
                best = running
        held: list[_View] = []
        while index.heap:
            key, name = index.heap[0]
            if best is not None and key > best.sort_key:
                break
            heapq.heappop(index.heap)
            view = index.views.get(name)
            if view is None or view.phase is not RunPhase.PENDING or not view.queued:
                continue  # an entry left behind by a run that changed or went
            view.queued = False
            if self._claimable(view, now, loop_now):
                best = view
                break
            held.append(view)  # not yet (another replica's fresh run, a retry later): keep it queued
        for view in held:
            index.enqueue(view)
        return best

    async def _claim_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (
                not self.draining
                and not self._closed
                and len(self._executing) + len(self._claiming) < self.options.max_concurrent_runs
                and len(self._claiming) < self.options.parallel_claims
            ):
                view = self._next_candidate()
                if view is None:
                    break
                self._claiming.add(view.name)  # before the task runs: the next pass must skip it
                task = asyncio.get_running_loop().create_task(self._claim(view, view.obj))
                self._claims.add(task)
                task.add_done_callback(self._claims.discard)

    def _claim_status(self, obj: JSON, now: datetime) -> JSON:
        status = obj.get("status") or {}
        phase = phase_of(obj)
        reclaim = phase is RunPhase.RUNNING
        count = _claim_count(status) + 1
        previous = status.get("claimedBy")
        message = f"claim {count} by {self.pod_name}"
        if reclaim:
            message += (
                "; the previous process of this pod ended"
                if previous == self.pod_name
                else f"; the claim of {previous} expired"
            )
        generation = (obj.get("metadata") or {}).get("generation")
        condition: JSON = {
            "type": CLAIMED_CONDITION,
            "status": "True",
            "reason": "Reclaimed" if reclaim else "Claimed",
            "message": message,
            "lastTransitionTime": timestamp(now),
        }
        claim: JSON = {
            "phase": RunPhase.RUNNING.value,
            "claimedBy": self.pod_name,
            "claimedAt": timestamp(now),
            "conditions": _with_condition(status, condition),
        }
        if isinstance(generation, int):
            condition["observedGeneration"] = generation
            claim["observedGeneration"] = generation
        if _resuming(status):
            claim["startedAt"] = status.get("startedAt") or timestamp(now)
        else:
            claim.update(
                startedAt=timestamp(now),
                nodes=None,
                output=None,
                error=None,
                completedAt=None,
                durationSeconds=None,
            )
        return claim

    async def _claim(self, view: _View, selected: JSON) -> None:
        """Claim the run as it was when it was selected (``selected``).

        Never from ``view.obj``, which watch events update in place while the claim waits its turn: a
        claim built from a newer state (another replica's fresh claim) would pass its precondition.
        """
        name = view.name
        phase = phase_of(selected)
        version = _rv(selected)
        if phase is not None and self._cancellable(selected, phase):
            self._index.remove(name)
            self._claiming.discard(name)
            self._cancel_soon(selected)
            self._wake.set()
            return
        self._claiming.add(name)
        try:
            try:
                status = compose_status(selected.get("status"), self._claim_status(selected, self.clock()))
                claimed = await self.store.replace_status(name, status, version)
            except Conflict:
                self._count_claim("conflict")
                logger.debug("claim of run %s at resourceVersion %s lost (409)", name, version)
                await self._refresh(name)
                return
            except NotFound:
                self._index.remove(name)
                return
            except Exception as exc:
                self._count_claim("error")
                logger.warning("claiming run %s failed: %s", name, exc)
                view.retry_at = asyncio.get_running_loop().time() + 1.0
                self._index.enqueue(view)
                return
            self._count_claim("reclaimed" if phase is RunPhase.RUNNING else "won")
            logger.debug(
                "claimed run %s (%s at resourceVersion %s, now %s)",
                name,
                phase.value if phase else None,
                version,
                _rv(claimed),
            )
            self._index.remove(name)
            self.claimed.append(name)
            self._start_local(claimed, {version})
        finally:
            self._claiming.discard(name)
            self._update_queue_depth()
            self._wake.set()  # capacity for the next claim

    def _count_claim(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.claim(result)

    async def _refresh(self, name: str) -> None:
        try:
            obj = await self.store.get(name)
        except NotFound:
            self._index.remove(name)
            return
        except Exception as exc:
            logger.warning("reading run %s failed: %s", name, exc)
            view = self._index.get(name)
            if view is not None:
                view.retry_at = asyncio.get_running_loop().time() + 1.0
                self._index.enqueue(view)
            return
        self._observe(obj)

    # -- executing ---------------------------------------------------------------------------

    def _start_local(self, obj: JSON, known: set[str]) -> None:
        name = _name(obj)
        status = obj.get("status") or {}
        known.add(_rv(obj))
        writer = StatusWriter(
            self.store,
            name,
            _rv(obj),
            status=status,
            interval=self.options.status_interval,
            renew_every=self.options.lease_seconds / 3,
            budget=self.options.status_budget,
            clock=self.clock,
            on_conflict=lambda current: self._verdict(name, current),
            metrics=self.metrics,
            known_versions=known,
        )
        local = _Local(name, writer, known)
        self._executing[name] = local
        local.task = asyncio.get_running_loop().create_task(self._execute(local, obj), name=f"run-{name}")
        if self.metrics is not None:
            self.metrics.set_in_flight(len(self._executing))
        if self.on_activity is not None:
            self.on_activity()

    def _verdict(self, name: str, current: JSON) -> Verdict:
        local = self._executing.get(name)
        status = current.get("status") or {}
        phase = phase_of(current)
        if (
            phase in (RunPhase.PENDING, RunPhase.AWAITING_INTERACTION, None)
            or status.get("claimedBy") != self.pod_name
        ):
            if local is not None:
                local.lose()
            return "lost"
        if phase is not None and phase.finished:
            if local is not None:
                local.cancel(f"run {phase.value.lower()} by request")
            return "finished"
        reason = cancel_request(current)
        if reason is not None and local is not None:
            local.cancel(reason)  # the annotation moved the resourceVersion: still ours, but to stop
        return "retry"

    def _engine_for(self, spec: WorkflowRunSpec) -> WorkflowEngine:
        if spec.definition is None:
            if self.engine is None:
                raise WorkflowDefinitionError(
                    [ValidationIssue(path="spec.definition", message=NO_DEFINITION_MESSAGE)]
                )
            return self.engine
        if self._engine_factory is not None:
            return self._engine_factory(spec.definition)
        assert self.engine is not None  # the constructor requires one of the two
        return WorkflowEngine(
            spec.definition,
            services=self.engine.services,
            workflow=self.engine.workflow,
            namespace=self.engine.namespace,
            run_timeout_seconds=self.engine.run_timeout_seconds,
        )

    def _trigger_event(self, obj: JSON, spec: WorkflowRunSpec) -> TriggerEvent:
        metadata: JSON = {}
        raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_ANNOTATION)
        if raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
                if isinstance(parsed, dict):
                    metadata = parsed
        if spec.scheduled_time is not None:
            metadata["scheduledTime"] = timestamp(spec.scheduled_time)
        return TriggerEvent(
            type=spec.trigger_type.value, inputs=spec.inputs, run_id=_name(obj), metadata=metadata
        )

    def _progress(self, local: _Local, event: ProgressEvent) -> None:
        node = event.node
        if node is not None and not local.lost:
            local.writer.node(node.to_dict())
            if (
                event.kind is ProgressKind.NODE_FINISHED
                and self.metrics is not None
                and node.started_at is not None
                and node.finished_at is not None
            ):
                seconds = (node.finished_at - node.started_at).total_seconds()
                self.metrics.node_finished(node.component_id or "", node.status.value, seconds)
        if event.kind is ProgressKind.RESPONSE and event.response is not None:
            self._resolve(
                local.name,
                RunOutcome(local.name, RunPhase.RUNNING, response=event.response),
                response_only=True,
            )

    async def _execute(self, local: _Local, obj: JSON) -> None:
        name = local.name
        try:
            try:
                result = await self._run(local, obj)
            except Exception as exc:  # a bug: fail the run rather than leave it to be reclaimed forever
                logger.exception("run %s: internal error", name)
                result = f"internal error: {type(exc).__name__}: {exc}"
            if local.lost:
                await local.writer.close()
            elif local.handing_back:
                await self._hand_back(local, obj)
            elif isinstance(result, str):
                await self._write_final(local, self._failed_status(local, obj, result), None)
            elif isinstance(result, _Stopped):
                status = self._failed_status(local, obj, result.reason, RunPhase.CANCELLED)
                await self._write_final(local, status, None)
            else:
                await self._write_final(local, self._final_status(local, obj, result), result)
        except Exception:
            logger.exception("run %s: unexpected error in the runtime", name)
            await local.writer.close()
        finally:
            self._executing.pop(name, None)
            self._done[name] = _Done(local.known_versions, asyncio.get_running_loop().time())
            if self.metrics is not None:
                self.metrics.set_in_flight(len(self._executing))
            if self.on_activity is not None:
                self.on_activity()
            self._wake.set()

    async def _run(self, local: _Local, obj: JSON) -> RunResult | str | _Stopped:
        """Execute (or resume) the run; a string is why it could not start."""
        status = obj.get("status") or {}
        try:
            spec = WorkflowRunSpec.model_validate(obj.get("spec") or {})
        except ValidationError as exc:
            return f"invalid run spec: {exc.errors()[0]['msg'] if exc.errors() else exc}"
        try:
            engine = self._engine_for(spec)
        except WorkflowDefinitionError as exc:
            return str(exc)

        def progress(event: ProgressEvent) -> None:
            self._progress(local, event)

        if _resuming(status):
            output = status["output"]
            try:
                execution = engine.prepare_resume(
                    output["snapshot"], output["decision"], on_progress=progress
                )
            except ResumeError as exc:
                return f"cannot resume: {exc}"
        else:
            execution = engine.prepare(self._trigger_event(obj, spec), on_progress=progress)
        local.execution = execution
        if local.cancel_reason is not None:
            execution.cancel(local.cancel_reason)  # before run(): nothing has started, nothing will
        running = asyncio.ensure_future(execution.run())
        requested = asyncio.ensure_future(local.cancel_requested.wait())
        try:
            await asyncio.wait([running, requested], return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                await asyncio.wait([running], timeout=CANCEL_GRACE_SECONDS)
            if not running.done():
                logger.error(
                    "run %s: the engine did not stop within %gs of being cancelled",
                    local.name,
                    CANCEL_GRACE_SECONDS,
                )
                return _Stopped(local.cancel_reason or "cancelled")
            return running.result()
        finally:
            requested.cancel()
            if not running.done():
                running.cancel()

    def _final_status(self, local: _Local, obj: JSON, result: RunResult) -> JSON:
        status: JSON = {
            "phase": result.phase.value,
            "claimedBy": self.pod_name,
            "claimedAt": timestamp(self.clock()),
            "startedAt": timestamp(result.started_at),
            "durationSeconds": round(result.duration_seconds, 6),
            "error": result.error,
            "nodes": [entry.to_dict() for entry in result.nodes],
        }
        if result.phase is RunPhase.AWAITING_INTERACTION:
            snapshot = result.snapshot or {}
            limit = int(self.options.status_budget * SNAPSHOT_SHARE)
            size = _size(snapshot)
            if size > limit:
                status.update(
                    phase=RunPhase.FAILED.value,
                    error=f"the paused run's snapshot is {size} bytes, more than the {limit} a run can "
                    "store; make the outputs before the approval smaller",
                    output=None,
                    completedAt=timestamp(self.clock()),
                )
                return status
            awaiting = [
                {"nodeId": item.node_id, "type": item.node_type, "request": dict(item.request)}
                for item in result.awaiting
            ]
            status.update(output={"awaiting": awaiting, "snapshot": snapshot}, completedAt=None)
        else:
            completed = result.completed_at or self.clock()
            status.update(output=result.output, completedAt=timestamp(completed))
        return status

    def _failed_status(self, local: _Local, obj: JSON, error: str, phase: RunPhase = RunPhase.FAILED) -> JSON:
        now = self.clock()
        started = (obj.get("status") or {}).get("startedAt") or timestamp(now)
        return {
            "phase": phase.value,
            "claimedBy": self.pod_name,
            "claimedAt": timestamp(now),
            "startedAt": started,
            "completedAt": timestamp(now),
            "durationSeconds": 0.0,
            "error": _truncate_error(error),
            "output": None,
        }

    async def _write_final(self, local: _Local, status: JSON, result: RunResult | None) -> None:
        # The writer fits the status in the budget; it never truncates a snapshot (at most SNAPSHOT_SHARE
        # of the budget), the rest shrinks.
        written = await local.writer.finish(status)
        theirs = local.writer.finished_by_other
        phase = RunPhase(status["phase"])
        if theirs is not None:
            phase = phase_of(theirs) or phase
        if not written:
            if local.writer.lost:
                return  # the new owner's status will resolve the waiters through the watch
            logger.error("run %s: the final status (%s) could not be written", local.name, phase.value)
        if self.metrics is not None:
            self.metrics.run_finished(phase.value)
        outcome = RunOutcome(
            local.name,
            phase,
            output=result.output if result is not None and theirs is None else status.get("output"),
            error=status.get("error") if theirs is None else (theirs.get("status") or {}).get("error"),
            duration_seconds=status.get("durationSeconds"),
            awaiting=(status.get("output") or {}).get("awaiting")
            if phase is RunPhase.AWAITING_INTERACTION
            else None,
            response=result.response if result is not None else None,
        )
        self._resolve(local.name, outcome)

    async def _hand_back(self, local: _Local, obj: JSON) -> None:
        status = local.writer.status
        now = self.clock()
        condition = {
            "type": CLAIMED_CONDITION,
            "status": "False",
            "reason": "HandedBack",
            "message": f"claim {_claim_count(status)} handed back by {self.pod_name} (shutting down)",
            "lastTransitionTime": timestamp(now),
        }
        back: JSON = {
            "phase": RunPhase.PENDING.value,
            "claimedBy": None,
            "claimedAt": None,
            "conditions": _with_condition(status, condition),
        }
        if not _resuming(status):
            back.update(startedAt=None, nodes=None)
        if await local.writer.finish(back, final_attempts=3):
            logger.info("run %s handed back", local.name)
        self._resolve(local.name, None)

    # -- waiting -----------------------------------------------------------------------------

    def _resolve(self, name: str, outcome: RunOutcome | None, *, response_only: bool = False) -> None:
        waiters = self._waiters.get(name)
        if not waiters:
            return
        keep: list[_Waiter] = []
        for waiter in waiters:
            if response_only and not waiter.want_response:
                keep.append(waiter)
            elif not waiter.future.done():
                waiter.future.set_result(outcome)
        if keep:
            self._waiters[name] = keep
        else:
            self._waiters.pop(name, None)

    def _outcome_from(self, obj: JSON) -> RunOutcome | None:
        phase = phase_of(obj)
        if phase is None or not (phase.finished or phase is RunPhase.AWAITING_INTERACTION):
            return None
        status = obj.get("status") or {}
        output = status.get("output")
        response = None
        for entry in status.get("nodes") or []:
            if entry.get("componentId") == "respond" and entry.get("status") == "completed":
                body = entry.get("output")
                if isinstance(body, Mapping) and isinstance(body.get("status"), int):
                    headers = body.get("headers") if isinstance(body.get("headers"), Mapping) else {}
                    response = WebhookResponse(body["status"], dict(headers or {}), body.get("body"))
                    break
        return RunOutcome(
            _name(obj),
            phase,
            output=None if phase is RunPhase.AWAITING_INTERACTION else output,
            error=status.get("error"),
            duration_seconds=status.get("durationSeconds"),
            awaiting=(output or {}).get("awaiting") if phase is RunPhase.AWAITING_INTERACTION else None,
            response=response,
        )

    async def wait(
        self, name: str, seconds: float, *, response: bool = False, check_store: bool = True
    ) -> RunOutcome | None:
        """Wait until the run ends or pauses (or, with ``response``, sets a webhook reply).

        ``None`` when ``seconds`` pass first or the runtime drains. ``check_store`` reads the run first,
        for a run that may already be over (a repeated idempotent request).
        """
        future: asyncio.Future[RunOutcome | None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, response)
        self._waiters.setdefault(name, []).append(waiter)
        try:
            if check_store and name not in self._executing:
                outcome = self._outcome_from(await self.store.get(name))
                if outcome is not None:
                    return outcome
            try:
                return await asyncio.wait_for(asyncio.shield(future), seconds)
            except TimeoutError:
                return None
        finally:
            waiters = self._waiters.get(name)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[name]

    # -- requests ----------------------------------------------------------------------------

    async def create_run(
        self,
        *,
        trigger_type: str,
        inputs: Mapping[str, Any] | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        trigger_metadata: Mapping[str, Any] | None = None,
    ) -> tuple[JSON, bool]:
        """Store a new Pending run; with a key already used, the existing run and ``False``."""
        for _ in range(5):
            name = (
                idempotent_run_name(self.workflow, idempotency_key)
                if idempotency_key
                else random_run_name(self.workflow)
            )
            body = new_run(
                self.workflow,
                name=name,
                trigger_type=trigger_type,
                inputs=inputs,
                priority=priority,
                idempotency_key=idempotency_key,
                trigger_metadata=trigger_metadata,
                origin_pod=self.pod_name,
            )
            try:
                created = await self.store.create(body)
            except Conflict:
                if not idempotency_key:
                    continue  # a random name that is taken: draw another
                try:
                    existing = await self.store.get(name)
                except NotFound:
                    continue  # deleted in between: create it again
                spec = existing.get("spec") or {}
                if (
                    spec.get("idempotencyKey") != idempotency_key
                    or (spec.get("workflowRef") or {}).get("name") != self.workflow
                ):
                    raise RunStateError(409, f"run {name} exists and is not the run of this key") from None
                return existing, False
            self._observe(created)
            if self.on_activity is not None:
                self.on_activity()
            return created, True
        raise RunStateError(503, "could not find a free run name")

    def phase_hint(self, name: str) -> RunPhase | None:
        """What this replica knows of a run's phase without asking the store (``None``: nothing)."""
        if name in self._executing:
            return RunPhase.RUNNING
        view = self._index.get(name)
        return view.phase if view is not None else None

    async def get(self, name: str) -> JSON:
        try:
            obj = await self.store.get(name)
        except NotFound:
            raise RunStateError(404, f"run {name} not found") from None
        if ((obj.get("spec") or {}).get("workflowRef") or {}).get("name") != self.workflow:
            raise RunStateError(404, f"run {name} is not a run of workflow {self.workflow}")
        return obj

    async def cancel(self, name: str, reason: str = "cancelled by request") -> JSON:
        """Cancel a run that has not finished; the replica executing it stops it."""
        local = self._executing.get(name)
        if local is not None:
            local.cancel(reason)
            if local.task is not None:
                await asyncio.wait([local.task], timeout=10)
            return await self.get(name)
        for _ in range(10):
            obj = await self.get(name)
            phase = phase_of(obj)
            if phase is None or phase.finished:
                ended = (obj.get("status") or {}).get("phase")
                raise RunStateError(409, f"run {name} has already ended ({ended})")
            fields = {
                "phase": RunPhase.CANCELLED.value,
                "completedAt": timestamp(self.clock()),
                "error": reason,
            }
            try:
                updated = await self.store.replace_status(
                    name, compose_status(obj.get("status"), fields), _rv(obj)
                )
            except Conflict:
                continue
            self._observe(updated)
            return updated
        raise RunStateError(409, f"run {name} keeps changing; try again")

    async def decide(self, name: str, decision: Mapping[str, Any]) -> JSON:
        """Record an approval decision on a paused run and make it Pending again, to be resumed."""
        if self.draining:
            raise RunStateError(503, "the runtime is shutting down")
        for _ in range(10):
            obj = await self.get(name)
            status = obj.get("status") or {}
            phase = phase_of(obj)
            output = status.get("output")
            if phase is not RunPhase.AWAITING_INTERACTION:
                raise RunStateError(409, f"run {name} is not awaiting interaction (phase {phase})")
            if not isinstance(output, Mapping) or not isinstance(output.get("snapshot"), Mapping):
                raise RunStateError(409, f"run {name} has no resume snapshot")
            try:
                spec = WorkflowRunSpec.model_validate(obj.get("spec") or {})
                self._engine_for(spec).prepare_resume(output["snapshot"], decision)
            except (ResumeError, ValidationError, WorkflowDefinitionError) as exc:
                raise RunStateError(422, str(exc)) from None
            recorded = {key: value for key, value in decision.items() if value is not None}
            recorded["decidedAt"] = timestamp(self.clock())
            fields = {
                "phase": RunPhase.PENDING.value,
                "output": {**output, "decision": recorded},
                "claimedBy": None,
                "claimedAt": None,
            }
            try:
                updated = await self.store.replace_status(name, compose_status(status, fields), _rv(obj))
            except Conflict:
                continue
            self._observe(updated)
            return updated
        raise RunStateError(409, f"run {name} keeps changing; try again")
