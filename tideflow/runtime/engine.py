"""The workflow engine: executes a workflow graph for one trigger, in pure asyncio.

No Kubernetes and no HTTP server here: the runtime hands the engine a definition and a trigger and
writes what comes back (and what the progress callback reports) into the WorkflowRun.

Scheduling. Every connection is *undecided* until its source finishes, then *live* (the source
continued on the connection's port) or *dead*. A node runs once all its incoming connections are
decided and at least one is live; if all are dead it is ``skipped`` and its own connections die, so
a branch not taken is skipped transitively and a join waits exactly for the branches that can still
arrive. Ready nodes run concurrently, one asyncio task each; a task that finishes a node continues
with one of the nodes that became ready (a chain runs in a single task) and starts tasks for the rest.

A node's input is the merge of the outputs (objects) of the nodes on its live incoming connections,
then its ``passThroughValues``, then its ``inputMappings`` (each a template over the run's scope).
Its config is then rendered (except the type's expression keys), checked against the catalog schema
and given the schema defaults. Each attempt runs under the node's time limit (``timeoutSeconds`` of
the node, else of the settings); a failed attempt is retried, when the failure is retryable, up to
the node's ``maxRetries`` (or the settings' when ``retryOnFailure``), after a full-jitter exponential
backoff (:func:`backoff_delay`). The first node that fails for good fails the run: the nodes still
running are cancelled. A run time limit and :meth:`Execution.cancel` cancel the running nodes too.

An ``approval`` node pauses: when nothing else can run, the result has phase AwaitingInteraction
and a JSON-serialisable ``snapshot`` (the finished nodes' outputs and ports, the waiting nodes'
requests and inputs, the trigger); :meth:`WorkflowEngine.resume` continues from it with a decision.

Everything external is injected through :class:`~tideflow.runtime.nodes.base.Services` (sleep, wall
clock, random source, secrets, HTTP), so tests never sleep, and time limits use the event loop's
clock, so tests run the engine on a virtual-time loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from tideflow.core.catalog import CATALOG, NodeType, apply_defaults, check_config, format_field_path
from tideflow.core.models import (
    MAX_ERROR_LENGTH,
    Node,
    NodeRunLog,
    NodeRunStatus,
    RunPhase,
    ValidationIssue,
    WorkflowDefinition,
    WorkflowSettings,
)
from tideflow.core.templating import TemplateError, contains_template, render_value, to_text
from tideflow.core.validation import validate_workflow
from tideflow.runtime.nodes.base import (
    Decision,
    Interaction,
    NodeContext,
    NodeError,
    NodeImplementation,
    NodeOutcome,
    NodeResumer,
    Services,
    WebhookResponse,
)
from tideflow.runtime.nodes.registry import IMPLEMENTATIONS

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "SNAPSHOT_VERSION",
    "Execution",
    "PendingInteraction",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressKind",
    "ResumeError",
    "RunLogEntry",
    "RunResult",
    "TriggerEvent",
    "WorkflowDefinitionError",
    "WorkflowEngine",
    "backoff_delay",
]

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS: Final = 60.0
"""Upper bound of one retry delay."""
SNAPSHOT_VERSION: Final = 1

_LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_UNDECIDED: Final = 0
_LIVE: Final = 1
_DEAD: Final = 2


def backoff_delay(failed_attempt: int, base_seconds: float, rng: random.Random) -> float:
    """Delay before the retry that follows attempt ``failed_attempt`` (1-based): full jitter.

    Uniform in ``[0, min(MAX_BACKOFF_SECONDS, base_seconds * 2 ** (failed_attempt - 1))]``.
    """
    return rng.uniform(0.0, min(MAX_BACKOFF_SECONDS, base_seconds * 2.0 ** (failed_attempt - 1)))


class WorkflowDefinitionError(ValueError):
    """The definition does not pass :func:`~tideflow.core.validation.validate_workflow`."""

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        listed = "; ".join(f"{issue.path}: {issue.message}" for issue in issues[:5])
        more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
        super().__init__(f"invalid workflow: {listed}{more}")


class ResumeError(ValueError):
    """A snapshot or decision that cannot be resumed; nothing has run when this is raised."""


@dataclass(frozen=True)
class TriggerEvent:
    """What started the run: its trigger type (``WorkflowRun.spec.triggerType``), inputs and id."""

    type: str = "manual"
    inputs: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """What the runtime recorded about the event (webhook ``method``, ``headers``, ...); merged into
    the payload under the standard keys."""

    def payload(self) -> dict[str, Any]:
        """The trigger nodes' output and ``{{ trigger }}``."""
        return {
            **self.metadata,
            "inputs": dict(self.inputs),
            "triggerType": self.type,
            "runId": self.run_id,
            "run_id": self.run_id,
        }


class ProgressKind(StrEnum):
    """What a progress event reports."""

    NODE_STARTED = "node_started"
    NODE_RETRYING = "node_retrying"
    NODE_WAITING = "node_waiting"
    NODE_FINISHED = "node_finished"
    """Completed, failed, skipped or cancelled: see the log's status."""
    RESPONSE = "response"
    LOG = "log"


@dataclass(frozen=True, slots=True)
class RunLogEntry:
    """A line of the run log (``log`` nodes, retries, failures)."""

    at: datetime
    level: str
    message: str
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """Reported to the progress callback as the run advances."""

    kind: ProgressKind
    node: NodeRunLog | None = None
    response: WebhookResponse | None = None
    log: RunLogEntry | None = None


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class PendingInteraction:
    """A node waiting for a decision."""

    node_id: str
    node_type: str
    request: Mapping[str, Any]


@dataclass(frozen=True)
class RunResult:
    """The outcome of one execution (or of one resumption)."""

    run_id: str
    phase: RunPhase
    nodes: list[NodeRunLog]
    """Per-node log in execution order; nodes that never started are last, ``pending``."""
    output: dict[str, Any]
    """Output of every completed node the run ended at (none of its connections live), by node id."""
    error: str | None
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: float
    response: WebhookResponse | None
    logs: list[RunLogEntry]
    awaiting: list[PendingInteraction]
    snapshot: dict[str, Any] | None
    """Set when the phase is AwaitingInteraction: pass it to :meth:`WorkflowEngine.resume`."""


# --------------------------------------------------------------------------------------------
# Compiled definition
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Edge:
    source: int
    port: str
    target: int


@dataclass(slots=True)
class _CompiledNode:
    index: int
    node: Node
    type: NodeType
    implementation: NodeImplementation
    timeout: float
    retries: int
    string_keys: frozenset[str]
    static_config: dict[str, Any] | None
    """The final config when it contains no template (checked once, here)."""
    incoming: list[int] = field(default_factory=list)
    outgoing: list[int] = field(default_factory=list)
    connected_ports: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Compiled:
    nodes: list[_CompiledNode]
    by_id: dict[str, int]
    edges: list[_Edge]
    triggers: list[int]
    topological: list[int]
    settings: WorkflowSettings


def _compile(definition: WorkflowDefinition, implementations: Mapping[str, NodeImplementation]) -> _Compiled:
    settings = definition.settings
    nodes: list[_CompiledNode] = []
    missing: list[ValidationIssue] = []
    for index, node in enumerate(definition.nodes):
        implementation = implementations.get(node.type)
        if implementation is None:
            missing.append(
                ValidationIssue(
                    path=f"spec.nodes[{index}].type",
                    message=f"this runtime cannot run {node.type}",
                    node_id=node.id,
                )
            )
            continue
        node_type = CATALOG[node.type]  # validate_workflow has checked that it exists
        static = {key: value for key, value in node.config.items() if key not in node_type.expression_keys}
        properties: Mapping[str, Any] = node_type.config_schema.get("properties", {})
        retries = node.max_retries
        if retries is None:
            retries = settings.max_retries if settings.retry_on_failure else 0
        nodes.append(
            _CompiledNode(
                index=index,
                node=node,
                type=node_type,
                implementation=implementation,
                timeout=float(node.timeout_seconds or settings.timeout_seconds),
                retries=retries,
                string_keys=frozenset(
                    key for key, schema in properties.items() if schema.get("type") == "string"
                ),
                static_config=None if contains_template(static) else apply_defaults(node_type, node.config),
            )
        )
    if missing:
        raise WorkflowDefinitionError(missing)
    by_id = {compiled.node.id: compiled.index for compiled in nodes}
    edges: list[_Edge] = []
    for connection in definition.connections:
        edge = _Edge(by_id[connection.source], connection.source_port, by_id[connection.target])
        nodes[edge.source].outgoing.append(len(edges))
        nodes[edge.target].incoming.append(len(edges))
        edges.append(edge)
    for compiled in nodes:
        compiled.connected_ports = frozenset(edges[e].port for e in compiled.outgoing)
    remaining = [len(compiled.incoming) for compiled in nodes]
    topological = [compiled.index for compiled in nodes if not compiled.incoming]
    for index in topological:  # the list grows while it is walked (Kahn's algorithm)
        for e in nodes[index].outgoing:
            remaining[edges[e].target] -= 1
            if remaining[edges[e].target] == 0:
                topological.append(edges[e].target)
    triggers = [compiled.index for compiled in nodes if compiled.type.is_trigger]
    return _Compiled(nodes, by_id, edges, triggers, topological, settings)


class _Scope(Mapping[str, Any]):
    """What templates see: ``trigger``, ``run``, ``nodes``, ``input`` and every finished node by id."""

    __slots__ = ("_fixed", "_input", "_views")

    def __init__(self, fixed: dict[str, Any], views: dict[str, Any], node_input: dict[str, Any]) -> None:
        self._fixed = fixed
        self._views = views
        self._input = node_input

    def __getitem__(self, key: str) -> Any:
        if key == "input":
            return self._input
        if key in self._views:  # only a trigger node can shadow a fixed name ("trigger"), with a superset
            return self._views[key]
        return self._fixed[key]

    def __contains__(self, key: object) -> bool:
        return key == "input" or key in self._fixed or key in self._views

    def __iter__(self) -> Iterator[str]:
        yield "input"
        yield from self._fixed
        yield from self._views

    def __len__(self) -> int:
        return 1 + len(self._fixed) + len(self._views)


def _node_view(output: Any) -> dict[str, Any]:
    """``{{ n1.output.x }}`` and, for an object output, ``{{ n1.x }}``."""
    if isinstance(output, Mapping):
        return {**output, "output": output}
    return {"output": output}


def _truncate(message: str) -> str:
    return (
        message if len(message) <= MAX_ERROR_LENGTH else message[: MAX_ERROR_LENGTH - 15] + "... (truncated)"
    )


# --------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _RestoredNode:
    port: str
    output: Any
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(slots=True)
class _RestoredWaiting:
    request: dict[str, Any]
    node_input: dict[str, Any]
    attempts: int
    started_at: datetime | None


@dataclass(slots=True)
class _Restored:
    trigger: TriggerEvent
    started_at: datetime
    completed: dict[int, _RestoredNode]
    waiting: dict[int, _RestoredWaiting]
    response: WebhookResponse | None
    decision: Decision
    decided: int
    resume: NodeResumer


def _timestamp(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _restore(
    compiled: _Compiled, snapshot: Mapping[str, Any], decision: Decision | Mapping[str, Any]
) -> _Restored:
    """Check and read a snapshot and a decision; raise :class:`ResumeError` if either is unusable."""
    if not isinstance(decision, Decision):
        try:
            decision = Decision.from_mapping(decision)
        except ValueError as exc:
            raise ResumeError(str(exc)) from None
    if not isinstance(snapshot, Mapping) or snapshot.get("version") != SNAPSHOT_VERSION:
        raise ResumeError(f"not a version {SNAPSHOT_VERSION} run snapshot")

    def locate(node_id: str, node_type: str) -> int:
        index = compiled.by_id.get(node_id)
        if index is None or compiled.nodes[index].type.id != node_type:
            raise ResumeError(
                f"node {node_id!r} ({node_type}) of the snapshot is not in the workflow any more"
            )
        return index

    try:
        trigger = snapshot["trigger"]
        event = TriggerEvent(
            type=str(trigger["type"]),
            inputs=dict(trigger["inputs"]),
            run_id=str(trigger["runId"]),
            metadata=dict(trigger["metadata"]),
        )
        completed = {
            locate(node_id, entry["type"]): _RestoredNode(
                port=str(entry["port"]),
                output=entry["output"],
                attempts=int(entry["attempts"]),
                started_at=_timestamp(entry["startedAt"]),
                finished_at=_timestamp(entry["finishedAt"]),
            )
            for node_id, entry in snapshot["nodes"].items()
        }
        waiting = {
            locate(node_id, entry["type"]): _RestoredWaiting(
                request=dict(entry["request"]),
                node_input=dict(entry["input"]),
                attempts=int(entry["attempts"]),
                started_at=_timestamp(entry["startedAt"]),
            )
            for node_id, entry in snapshot["waiting"].items()
        }
        response_data = snapshot["response"]
        response = None if response_data is None else WebhookResponse(**response_data)
        started_at = datetime.fromisoformat(snapshot["startedAt"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResumeError(f"malformed run snapshot: {type(exc).__name__}: {exc}") from None
    waiting_ids = [compiled.nodes[index].node.id for index in waiting]
    if decision.node_id is not None:
        if decision.node_id not in waiting_ids:
            raise ResumeError(
                f"node {decision.node_id!r} is not waiting for a decision (waiting: {waiting_ids})"
            )
        decided = compiled.by_id[decision.node_id]
    elif len(waiting) == 1:
        decided = next(iter(waiting))
    else:
        raise ResumeError(f"the decision must name the node it is for (waiting: {waiting_ids})")
    resume = compiled.nodes[decided].implementation.resume
    if resume is None:
        raise ResumeError(f"node {compiled.nodes[decided].node.id!r} cannot be resumed")
    return _Restored(event, started_at, completed, waiting, response, decision, decided, resume)


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


class Execution:
    """One run of a workflow (or one resumption of a paused run). Create it with the engine; run it once."""

    def __init__(
        self,
        engine: WorkflowEngine,
        trigger: TriggerEvent,
        on_progress: ProgressCallback | None,
        restored: _Restored | None = None,
    ) -> None:
        compiled = engine._compiled
        count = len(compiled.nodes)
        self._compiled = compiled
        self._services = engine.services
        self._run_timeout = engine.run_timeout_seconds
        self._trigger = trigger
        self._on_progress = on_progress
        self._restored = restored
        self._status = [NodeRunStatus.PENDING] * count
        self._attempts = [0] * count
        self._output: list[Any] = [None] * count
        self._port: list[str | None] = [None] * count
        self._error: list[str | None] = [None] * count
        self._started: list[datetime | None] = [None] * count
        self._finished: list[datetime | None] = [None] * count
        self._edge_state = [_UNDECIDED] * len(compiled.edges)
        self._undecided = [len(node.incoming) for node in compiled.nodes]
        self._live = [0] * count
        self._order: list[int] = []
        self._views: dict[str, Any] = {}
        self._waiting: dict[int, _RestoredWaiting] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._abort_reason: str | None = None
        self._abort_phase = RunPhase.FAILED
        self._internal_error: BaseException | None = None
        self._response: WebhookResponse | None = None
        self._logs: list[RunLogEntry] = []
        self._replaying = False
        self._ran = False
        self._started_at = self._services.now() if restored is None else restored.started_at
        self._fixed: dict[str, Any] = {
            "trigger": trigger.payload(),
            "run": {
                "id": trigger.run_id,
                "workflow": engine.workflow,
                "namespace": engine.namespace,
                "triggerType": trigger.type,
                "startedAt": self._started_at.isoformat(),
            },
            "nodes": self._views,
        }

    @property
    def run_id(self) -> str:
        return self._trigger.run_id

    def cancel(self, reason: str = "run cancelled") -> None:
        """Stop the run: running nodes are cancelled and :meth:`run` returns phase Cancelled."""
        self._abort(reason, RunPhase.CANCELLED)

    async def run(self) -> RunResult:
        if self._ran:
            raise RuntimeError("an Execution runs once; ask the engine for another")
        self._ran = True
        ready = self._replay(self._restored) if self._restored is not None else self._start()
        if self._abort_reason is None:
            for index in ready:
                self._spawn(index)
        if self._active:
            try:
                async with asyncio.timeout(self._run_timeout):
                    await self._idle.wait()
            except TimeoutError:
                self._abort(f"run timed out after {self._run_timeout:g}s", RunPhase.FAILED)
                await self._idle.wait()
            except asyncio.CancelledError:
                self._abort("run cancelled", RunPhase.CANCELLED)
                await self._idle.wait()
                raise
        if self._internal_error is not None:
            raise self._internal_error
        return self._result()

    # -- graph bookkeeping -------------------------------------------------------------------

    def _start(self) -> list[int]:
        """Fire the trigger nodes matching the trigger type (all of them when none matches)."""
        compiled = self._compiled
        fired = {
            index
            for index in compiled.triggers
            if self._trigger.type in compiled.nodes[index].type.trigger_types
        }
        fired = fired or set(compiled.triggers)
        ready: list[int] = []
        for node in compiled.nodes:
            if node.incoming:
                continue
            if node.index in fired:
                ready.append(node.index)
            else:
                self._mark_skipped(node.index)
                self._decide(node.index, None, ready)
        return ready

    def _mark_skipped(self, index: int) -> None:
        self._status[index] = NodeRunStatus.SKIPPED
        self._order.append(index)
        self._emit(ProgressKind.NODE_FINISHED, index)

    def _decide(self, index: int, live_port: str | None, ready: list[int]) -> None:
        """Decide a finished node's connections (live on ``live_port``); skip what can no longer run."""
        compiled = self._compiled
        pending: list[tuple[int, str | None]] = [(index, live_port)]
        while pending:
            source, port = pending.pop()
            for e in compiled.nodes[source].outgoing:
                edge = compiled.edges[e]
                live = edge.port == port
                self._edge_state[e] = _LIVE if live else _DEAD
                target = edge.target
                self._undecided[target] -= 1
                if live:
                    self._live[target] += 1
                if self._undecided[target] == 0:
                    if self._live[target]:
                        ready.append(target)
                    else:
                        self._mark_skipped(target)
                        pending.append((target, None))

    def _replay(self, restored: _Restored) -> list[int]:
        """Rebuild the state of a paused run, then apply the decision; return the nodes ready to run."""
        self._replaying = True
        ready = set(self._start())
        for index in self._compiled.topological:
            entry = restored.completed.get(index)
            if entry is None:
                continue
            self._status[index] = NodeRunStatus.COMPLETED
            self._output[index] = entry.output
            self._port[index] = entry.port
            self._attempts[index] = entry.attempts
            self._started[index] = entry.started_at
            self._finished[index] = entry.finished_at
            self._views[self._compiled.nodes[index].node.id] = _node_view(entry.output)
            self._order.append(index)
            ready.discard(index)
            newly: list[int] = []
            self._decide(index, entry.port, newly)
            ready.update(newly)
        for index, waiting in restored.waiting.items():
            self._status[index] = NodeRunStatus.RUNNING
            self._attempts[index] = waiting.attempts
            self._started[index] = waiting.started_at
            self._waiting[index] = waiting
            self._order.append(index)
            ready.discard(index)
        self._response = restored.response
        self._replaying = False
        index = restored.decided
        node = self._compiled.nodes[index]
        waiting = self._waiting.pop(index)
        interaction = Interaction(
            node_id=node.node.id,
            request=waiting.request,
            input=waiting.node_input,
            connected_ports=node.connected_ports,
            decided_at=self._services.now(),
        )
        try:
            outcome = restored.resume(interaction, restored.decision)
        except NodeError as exc:
            self._fail(index, exc.message)
            return []
        ready.update(self._record(index, outcome, waiting.node_input))
        return sorted(ready)

    # -- running nodes -----------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        self._active += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._worker(index))
        self._tasks.add(task)
        task.add_done_callback(self._worker_done)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        """Count a worker down when its task ends, also when it was cancelled before it started
        (a ``finally`` inside the coroutine would never run then, and ``run()`` would wait forever)."""
        self._tasks.discard(task)
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    async def _worker(self, index: int) -> None:
        current: int | None = index
        try:
            while current is not None:
                current = await self._run_node(current)
        except Exception as exc:  # a bug in the engine: surfaced by run(), not hidden in a task
            self._internal_error = exc
            self._abort(f"internal error: {exc!r}", RunPhase.FAILED)

    async def _run_node(self, index: int) -> int | None:
        """Run one node; return a node that became ready for this task to run next, if any."""
        node = self._compiled.nodes[index]
        self._status[index] = NodeRunStatus.RUNNING
        self._started[index] = self._services.now()
        self._order.append(index)
        self._emit(ProgressKind.NODE_STARTED, index)
        try:
            try:
                node_input, config, scope = self._prepare(node)
            except (TemplateError, NodeError) as exc:
                self._attempts[index] = 1
                self._fail(index, exc.message if isinstance(exc, NodeError) else str(exc))
                return None
            outcome = await self._attempt(node, node_input, config, scope)
        except asyncio.CancelledError:
            self._error[index] = self._abort_reason or "cancelled"
            self._finish(index, NodeRunStatus.CANCELLED)
            return None
        except NodeError as exc:
            self._fail(index, exc.message)
            return None
        ready = self._record(index, outcome, node_input)
        if not ready or self._abort_reason is not None:
            return None
        for other in ready[1:]:
            self._spawn(other)
        return ready[0]

    def _prepare(self, node: _CompiledNode) -> tuple[dict[str, Any], dict[str, Any], _Scope]:
        node_input: dict[str, Any] = {}
        for e in node.incoming:
            if self._edge_state[e] == _LIVE:
                output = self._output[self._compiled.edges[e].source]
                if isinstance(output, Mapping):
                    node_input.update(output)
        node_input.update(node.node.pass_through_values)
        scope = _Scope(self._fixed, self._views, node_input)
        if node.node.input_mappings:
            mapped = {
                key: render_value(value, scope, format_field_path("inputMappings", [key]))
                for key, value in node.node.input_mappings.items()
            }
            node_input.update(mapped)
        if node.static_config is not None:
            return node_input, dict(node.static_config), scope
        rendered: dict[str, Any] = {}
        for key, value in node.node.config.items():
            if key in node.type.expression_keys:
                rendered[key] = value
                continue
            value = render_value(value, scope, format_field_path("config", [key]))
            rendered[key] = (
                to_text(value) if key in node.string_keys and not isinstance(value, str) else value
            )
        issues = check_config(node.type, rendered)
        if issues:
            described = "; ".join(
                f"{format_field_path('config', issue.path)} {issue.message}" for issue in issues
            )
            raise NodeError(f"invalid config after rendering: {described}")
        return node_input, apply_defaults(node.type, rendered), scope

    async def _attempt(
        self, node: _CompiledNode, node_input: dict[str, Any], config: dict[str, Any], scope: _Scope
    ) -> NodeOutcome:
        """Run the executor until an attempt succeeds, a failure is not retryable or retries run out."""
        index = node.index
        node_id = node.node.id
        attempt = 0
        while True:
            attempt += 1
            self._attempts[index] = attempt
            context = NodeContext(
                node_id=node_id,
                node_type=node.type,
                config=config,
                input=node_input,
                trigger=self._fixed["trigger"],
                scope=scope,
                attempt=attempt,
                connected_ports=node.connected_ports,
                services=self._services,
                emit_log=lambda level, message: self._log(level, message, node_id),
                set_response=lambda response: self._set_response(response, node_id),
            )
            try:
                async with asyncio.timeout(node.timeout):
                    return await node.implementation.execute(context)
            except NodeError as exc:
                error, retryable = exc.message, exc.retryable
            except TemplateError as exc:
                error, retryable = str(exc), False
            except TimeoutError:
                error, retryable = f"timed out after {node.timeout:g}s", True
            except Exception as exc:
                logger.debug("node %s raised", node_id, exc_info=True)
                error, retryable = f"{type(exc).__name__}: {exc}", True
            if not retryable or attempt > node.retries:
                raise NodeError(error)
            delay = backoff_delay(attempt, self._compiled.settings.retry_backoff_seconds, self._services.rng)
            self._log("warning", f"attempt {attempt} failed: {error}; retrying in {delay:.3f}s", node_id)
            self._emit(ProgressKind.NODE_RETRYING, index)
            await self._services.sleep(delay)

    def _record(self, index: int, outcome: NodeOutcome, node_input: dict[str, Any]) -> list[int]:
        """Record a finished executor's outcome; return the nodes it made ready."""
        node = self._compiled.nodes[index]
        if outcome.interaction is not None:
            self._waiting[index] = _RestoredWaiting(
                dict(outcome.interaction), node_input, self._attempts[index], self._started[index]
            )
            self._emit(ProgressKind.NODE_WAITING, index)
            return []
        self._output[index] = outcome.output
        self._port[index] = outcome.port
        self._views[node.node.id] = _node_view(outcome.output)
        self._finish(index, NodeRunStatus.COMPLETED)
        ready: list[int] = []
        self._decide(index, outcome.port, ready)
        return ready

    def _finish(self, index: int, status: NodeRunStatus) -> None:
        self._status[index] = status
        self._finished[index] = self._services.now()
        self._emit(ProgressKind.NODE_FINISHED, index)

    def _fail(self, index: int, message: str) -> None:
        node_id = self._compiled.nodes[index].node.id
        self._error[index] = message
        self._finish(index, NodeRunStatus.FAILED)
        self._log("error", message, node_id)
        self._abort(f"node {node_id!r} failed: {message}", RunPhase.FAILED)

    def _abort(self, reason: str, phase: RunPhase) -> None:
        """Fail or cancel the run (the first reason wins) and cancel every running node."""
        if self._abort_reason is None:
            self._abort_reason = reason
            self._abort_phase = phase
        current = asyncio.current_task() if self._tasks else None
        for task in self._tasks:
            if task is not current:
                task.cancel()

    # -- reporting ---------------------------------------------------------------------------

    def _set_response(self, response: WebhookResponse, node_id: str) -> None:
        if self._response is not None:
            self._log("warning", "the webhook response was already set; this one is ignored", node_id)
            return
        self._response = response
        self._notify(ProgressEvent(ProgressKind.RESPONSE, response=response))

    def _log(self, level: str, message: str, node_id: str | None = None) -> None:
        entry = RunLogEntry(self._services.now(), level, message, node_id)
        self._logs.append(entry)
        logger.log(
            _LOG_LEVELS.get(level, logging.INFO),
            "run %s node %s: %s",
            self.run_id,
            node_id,
            message,
        )
        self._notify(ProgressEvent(ProgressKind.LOG, log=entry))

    def _emit(self, kind: ProgressKind, index: int) -> None:
        if self._on_progress is not None and not self._replaying:
            self._notify(ProgressEvent(kind, node=self._node_log(index)))

    def _notify(self, event: ProgressEvent) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(event)
        except Exception:
            logger.exception("progress callback failed for run %s", self.run_id)

    def _node_log(self, index: int) -> NodeRunLog:
        node = self._compiled.nodes[index]
        error = self._error[index]
        return NodeRunLog(
            node_id=node.node.id,
            component_id=node.type.id,
            status=self._status[index],
            attempts=self._attempts[index],
            output=self._output[index],
            error=None if error is None else _truncate(error),
            started_at=self._started[index],
            finished_at=self._finished[index],
        )

    def _result(self) -> RunResult:
        now = self._services.now()
        if self._abort_reason is not None:
            phase, error = self._abort_phase, self._abort_reason
            for index in self._waiting:
                self._error[index] = self._abort_reason
                self._finish(index, NodeRunStatus.CANCELLED)
            self._waiting.clear()
        elif self._waiting:
            phase, error = RunPhase.AWAITING_INTERACTION, None
        else:
            phase, error = RunPhase.COMPLETED, None
        seen = set(self._order)
        order = self._order + [node.index for node in self._compiled.nodes if node.index not in seen]
        output = {
            node.node.id: self._output[node.index]
            for node in self._compiled.nodes
            if self._status[node.index] is NodeRunStatus.COMPLETED
            and not any(self._edge_state[e] == _LIVE for e in node.outgoing)
        }
        awaiting = [
            PendingInteraction(
                self._compiled.nodes[index].node.id, self._compiled.nodes[index].type.id, waiting.request
            )
            for index, waiting in self._waiting.items()
        ]
        completed_at = None if phase is RunPhase.AWAITING_INTERACTION else now
        return RunResult(
            run_id=self.run_id,
            phase=phase,
            nodes=[self._node_log(index) for index in order],
            output=output,
            error=None if error is None else _truncate(error),
            started_at=self._started_at,
            completed_at=completed_at,
            duration_seconds=max(0.0, (now - self._started_at).total_seconds()),
            response=self._response,
            logs=list(self._logs),
            awaiting=awaiting,
            snapshot=self._snapshot() if phase is RunPhase.AWAITING_INTERACTION else None,
        )

    def _snapshot(self) -> dict[str, Any]:
        nodes = self._compiled.nodes
        response = self._response
        return {
            "version": SNAPSHOT_VERSION,
            "runId": self.run_id,
            "startedAt": self._started_at.isoformat(),
            "trigger": {
                "type": self._trigger.type,
                "inputs": dict(self._trigger.inputs),
                "runId": self._trigger.run_id,
                "metadata": dict(self._trigger.metadata),
            },
            "nodes": {
                nodes[index].node.id: {
                    "type": nodes[index].type.id,
                    "port": self._port[index],
                    "output": self._output[index],
                    "attempts": self._attempts[index],
                    "startedAt": _iso(self._started[index]),
                    "finishedAt": _iso(self._finished[index]),
                }
                for index in self._order
                if self._status[index] is NodeRunStatus.COMPLETED
            },
            "waiting": {
                nodes[index].node.id: {
                    "type": nodes[index].type.id,
                    "request": waiting.request,
                    "input": waiting.node_input,
                    "attempts": waiting.attempts,
                    "startedAt": _iso(waiting.started_at),
                }
                for index, waiting in self._waiting.items()
            },
            "response": None
            if response is None
            else {"status": response.status, "headers": response.headers, "body": response.body},
        }


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------


class WorkflowEngine:
    """Executes one workflow definition, any number of times and concurrently.

    The definition is validated once here (:class:`WorkflowDefinitionError` if invalid). ``services``
    may be shared between engines; whoever creates it closes it. ``run_timeout_seconds`` bounds one
    execution (or one resumption); ``None`` leaves only the per-node limits.
    """

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        services: Services | None = None,
        implementations: Mapping[str, NodeImplementation] | None = None,
        workflow: str = "",
        namespace: str = "",
        run_timeout_seconds: float | None = None,
    ) -> None:
        result = validate_workflow(definition)
        if not result.valid:
            raise WorkflowDefinitionError(result.errors)
        self._compiled = _compile(definition, IMPLEMENTATIONS if implementations is None else implementations)
        self.services = services or Services()
        self.workflow = workflow
        self.namespace = namespace
        self.run_timeout_seconds = run_timeout_seconds

    def prepare(self, trigger: TriggerEvent, *, on_progress: ProgressCallback | None = None) -> Execution:
        """An execution for ``trigger``, to ``run()`` (and possibly ``cancel()`` from another task)."""
        return Execution(self, trigger, on_progress)

    async def run(self, trigger: TriggerEvent, *, on_progress: ProgressCallback | None = None) -> RunResult:
        return await self.prepare(trigger, on_progress=on_progress).run()

    def prepare_resume(
        self,
        snapshot: Mapping[str, Any],
        decision: Decision | Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> Execution:
        """An execution continuing a paused run; :class:`ResumeError` now if it cannot be resumed."""
        restored = _restore(self._compiled, snapshot, decision)
        return Execution(self, restored.trigger, on_progress, restored)

    async def resume(
        self,
        snapshot: Mapping[str, Any],
        decision: Decision | Mapping[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> RunResult:
        return await self.prepare_resume(snapshot, decision, on_progress=on_progress).run()
