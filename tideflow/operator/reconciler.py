"""The level-based reconcile: read a Workflow and what it owns, :func:`plan`, write the difference.

Every trigger (a Workflow, Deployment or WorkflowRun event, the periodic resync, an operator
restart) ends in :meth:`Reconciler.reconcile`, which is idempotent: run twice, the second run
writes nothing. Calls for one Workflow are serialised by a lock; a 409 from a concurrent writer
restarts the reconcile from a fresh read, a bounded number of times. A child is written only when
its ``tideflow.io/spec-hash`` (or, for the Deployment, its replicas) differs from the desired one,
so whoever edits a child by hand is reverted on the next reconcile.

Each Workflow has one timer (:mod:`tideflow.operator.requeue`): a reconcile that succeeds arms it for
the moment its plan names (a fire time, a lifecycle transition), exactly; one that fails arms it for
a retry with exponential back-off, so a failure at a fire time does not stall the schedule until the
next resync.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tideflow.core import kube, names
from tideflow.core.clock import Clock, format_time
from tideflow.core.kube import KubeClient, KubeError
from tideflow.operator import builders, metrics, requeue
from tideflow.operator.drafts import RunFailure
from tideflow.operator.planning import Event, Observed, plan, status_patch
from tideflow.operator.settings import OperatorSettings

logger = logging.getLogger("tideflow.operator")
JSON = dict[str, Any]
_KINDS = {"ConfigMap": kube.CONFIGMAPS, "Service": kube.SERVICES, "Deployment": kube.DEPLOYMENTS}
_CONFLICT_RETRIES = 5
REPLACED = "Replaced by a newer scheduled run (concurrencyPolicy Replace)."
"""The error of a run cancelled under ``concurrencyPolicy: Replace`` (and the cancel request's reason)."""


class Reconciler:
    """Reconciles Workflows one at a time each (concurrently across Workflows)."""

    def __init__(self, client: KubeClient, settings: OperatorSettings, clock: Clock) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # A reconcile asked for but not started yet, per Workflow: later requests join it.
        self._queued: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._failures: dict[tuple[str, str], int] = {}  # failed reconciles in a row
        self._idle_wakeups: dict[tuple[str, str], int] = {}  # timer wake-ups in a row that did nothing
        # The moment the last successful plan asked to be reconciled again at.
        self._planned: dict[tuple[str, str], dt.datetime | None] = {}
        # Pending or Running runs per Workflow, as the WorkflowRun watch last showed them: only a hint
        # that spares a Workflow without a runtime of its own a list of its runs on every resync.
        self._run_hints: dict[tuple[str, str], set[str]] = {}
        # Every reconcile, whatever triggered it (watch events, timers, the resync), shares one limit.
        self._slots = asyncio.Semaphore(settings.max_concurrent_reconciles)
        self._background: set[asyncio.Future[None]] = set()
        self._instance = socket.gethostname()

    def note_run(self, namespace: str, workflow: str, run: str, *, active: bool) -> None:
        """What the WorkflowRun watch showed of a run of ``workflow``: Pending or Running, or not."""
        key = (namespace, workflow)
        names = self._run_hints.setdefault(key, set())
        if active:
            names.add(run)
        else:
            names.discard(run)
            if not names:
                del self._run_hints[key]

    def may_have_active_runs(self, namespace: str, workflow: str) -> bool:
        return bool(self._run_hints.get((namespace, workflow)))

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._locks.pop(key, None)
        self._failures.pop(key, None)
        self._idle_wakeups.pop(key, None)
        self._planned.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    async def reconcile(self, namespace: str, name: str, *, woken: bool = False) -> None:
        """Reconcile one Workflow; ``woken`` when its own timer (not an event or the resync) asked.

        Requests that arrive while a reconcile of the same Workflow waits for its turn (the lock held
        by the one in flight, or a free slot) join that one instead of queueing another: it has not
        read anything yet, so it sees whatever they were about. A burst of watch events costs one
        reconcile, not one each.
        """
        key = (namespace, name)
        queued = self._queued.get(key)
        if queued is not None:
            metrics.RECONCILES_COALESCED.inc()
            await asyncio.shield(queued)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued[key] = turn
        try:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock, self._slots:
                if self._queued.get(key) is turn:
                    del self._queued[key]  # started: what happens from now on needs another reconcile
                await self._reconcile_once(key, woken=woken)
        finally:
            if self._queued.get(key) is turn:
                del self._queued[key]
            if not turn.done():
                turn.set_result(None)

    async def _reconcile_once(self, key: tuple[str, str], *, woken: bool) -> None:
        namespace, name = key
        started = time.perf_counter()
        outcome = "ok"
        acted, at = False, None
        try:
            at, acted, conflicts = await self._reconcile_fresh(namespace, name)
            outcome = "conflict" if conflicts else "ok"
        except (KubeError, httpx.HTTPError) as exc:  # transient: retried with back-off
            outcome = "error"
            logger.warning("reconcile of %s/%s failed: %s", namespace, name, exc)
        except Exception:
            outcome = "error"
            logger.exception("reconcile of %s/%s crashed", namespace, name)
        finally:
            metrics.RECONCILES.labels(outcome).inc()
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        if outcome == "error":
            self._retry_later(key)
            return
        self._failures.pop(key, None)
        idle = requeue.idle_wakeups(self._idle_wakeups.get(key, 0), woken=woken, acted=acted)
        self._idle_wakeups[key] = idle
        self._requeue(key, at, idle)

    async def _reconcile_fresh(self, namespace: str, name: str) -> tuple[dt.datetime | None, bool, int]:
        """:meth:`_reconcile`, restarted from a fresh read on a 409; also returns how many 409s."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                at, acted = await self._reconcile(namespace, name)
                return at, acted, attempt
            except kube.Conflict:
                if attempt == _CONFLICT_RETRIES - 1:
                    raise
                logger.debug("conflict reconciling %s/%s; retrying from a fresh read", namespace, name)
        raise AssertionError("unreachable: the last conflict is raised")

    async def _reconcile(self, namespace: str, name: str) -> tuple[dt.datetime | None, bool]:
        """One pass; returns when to come back on its own, and whether it wrote anything."""
        workflow = await self.client.get_or_none(kube.WORKFLOWS, namespace, name)
        if workflow is None or workflow["metadata"].get("deletionTimestamp"):
            return None, False  # its children are owned: the garbage collector removes them
        observed = await self._observe(workflow)
        result = plan(workflow, observed, self.clock(), self.settings)
        current = {
            "ConfigMap": observed.config_map,
            "Service": observed.service,
            "Deployment": observed.deployment,
        }
        acted = False
        if result.remove_children:
            for kind, child in current.items():
                if child is not None:
                    await self._delete(_KINDS[kind], namespace, child["metadata"]["name"])
                    acted = True
        for desired in result.children:
            acted = await self._apply(desired, current[desired["kind"]]) or acted
        # Runs first, the checkpoint (in the status) after: a crash in between re-creates nothing
        # but 409s, while the other order could lose a fire time.
        for run in result.create_runs:
            await self._create_run(run)
        for run_name in result.cancel_runs:
            await self._cancel_run(namespace, run_name)
        for failure in result.fail_runs:
            await self._fail_run(namespace, failure)
        acted = acted or bool(result.create_runs or result.cancel_runs or result.fail_runs)
        for skip in result.skipped:
            metrics.SCHEDULE_SKIPPED.labels(skip.reason).inc()
        patch = status_patch(workflow.get("status") or {}, result.status)
        if patch:
            patch_body = {
                "metadata": {"resourceVersion": workflow["metadata"]["resourceVersion"]},
                "status": patch,
            }
            await self.client.patch(kube.WORKFLOWS, namespace, name, patch_body, subresource="status")
            acted = True
        for event in result.events:
            await self._record(workflow, event)
        return result.requeue_at, acted

    def _requeue(self, key: tuple[str, str], at: dt.datetime | None, idle_wakeups: int) -> None:
        """Reconcile again at ``at`` (a fire time, a window boundary), not only at the next resync."""
        self._planned[key] = at
        if at is None:
            self._arm(key, None)
            return
        self._arm(key, requeue.wake_delay(at, self.clock(), idle_wakeups))

    def _retry_later(self, key: tuple[str, str]) -> None:
        """After a failed reconcile: try again with back-off (or at the planned moment, if sooner)."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = requeue.retry_wake_delay(failures, self._planned.get(key), self.clock())
        metrics.RECONCILE_RETRIES.inc()
        logger.info(  # the failure itself was logged as a warning, once
            "retrying the reconcile of %s/%s in %.2fs (%d failure(s) in a row)", *key, delay, failures
        )
        self._arm(key, delay)

    def _arm(self, key: tuple[str, str], delay: float | None) -> None:
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        if delay is None:
            return
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._wake, key)

    def _wake(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        task = asyncio.ensure_future(self.reconcile(*key, woken=True))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _create_run(self, run: JSON) -> None:
        try:
            await self.client.create(kube.WORKFLOWRUNS, run["metadata"]["namespace"], run)
            metrics.SCHEDULE_RUNS.inc()
        except kube.Conflict:
            pass  # already created for this fire time (a restart, another operator): exactly once

    async def _cancel_run(self, namespace: str, name: str) -> None:
        """concurrencyPolicy Replace: a Pending run is cancelled here, a Running one by its runtime.

        The runtime is asked with the ``tideflow.io/cancel-requested`` annotation, whose value is the
        reason it records as the run's error.
        """
        run = await self.client.get_or_none(kube.WORKFLOWRUNS, namespace, name)
        if run is None:
            return
        phase = (run.get("status") or {}).get("phase", "Pending")
        try:
            if phase == "Pending":
                now = format_time(self.clock())
                await self.client.patch(
                    kube.WORKFLOWRUNS,
                    namespace,
                    name,
                    {
                        "metadata": {"resourceVersion": run["metadata"]["resourceVersion"]},
                        "status": {
                            "phase": "Cancelled",
                            "completedAt": now,
                            "error": REPLACED,
                        },
                    },
                    subresource="status",
                )
            elif phase == "Running":
                await self.client.patch(
                    kube.WORKFLOWRUNS,
                    namespace,
                    name,
                    {"metadata": {"annotations": {names.ANNOTATION_CANCEL: REPLACED}}},
                )
        except kube.Conflict:
            await self.client.patch(
                kube.WORKFLOWRUNS,
                namespace,
                name,
                {"metadata": {"annotations": {names.ANNOTATION_CANCEL: REPLACED}}},
            )

    async def _fail_run(self, namespace: str, failure: RunFailure) -> None:
        """Mark a Pending run no runtime will execute Failed, if nobody changed it since it was read."""
        now = format_time(self.clock())
        body = {
            "metadata": {"resourceVersion": failure.resource_version},
            "status": {"phase": "Failed", "completedAt": now, "error": failure.error},
        }
        try:
            await self.client.patch(kube.WORKFLOWRUNS, namespace, failure.name, body, subresource="status")
            logger.info("run %s/%s failed: %s", namespace, failure.name, failure.error)
        except (kube.Conflict, kube.NotFound):
            pass  # changed (claimed, cancelled) or gone since: the next reconcile decides again

    async def _observe(self, workflow: JSON) -> Observed:
        namespace, name = workflow["metadata"]["namespace"], workflow["metadata"]["name"]
        child = builders.child_name(name)
        config_map, deployment, service = await asyncio.gather(
            self.client.get_or_none(kube.CONFIGMAPS, namespace, child),
            self.client.get_or_none(kube.DEPLOYMENTS, namespace, child),
            self.client.get_or_none(kube.SERVICES, namespace, child),
        )
        spec = workflow.get("spec") or {}
        lifecycle_type = (spec.get("lifecycle") or {}).get("type")
        scheduled = (spec.get("schedule") or {}).get("type", "manual") != "manual"
        # Runs count for demand-driven policies and schedules, and wherever no runtime of its own
        # serves them (not deployed, or nothing made yet): draft runs, or runs to fail (drafts.py).
        # There they are listed only when a draft runtime exists or the run watch saw an active run:
        # a thousand idle undeployed Workflows cost no list each per resync.
        unserved = (spec.get("deployed") is not True or deployment is None) and (
            deployment is not None or self.may_have_active_runs(namespace, name)
        )
        active: list[JSON] = []
        if scheduled or unserved or lifecycle_type in ("idle-shutdown", "on-demand"):
            runs = await self.client.list_all(
                kube.WORKFLOWRUNS, namespace, label_selector=f"{names.LABEL_WORKFLOW}={name}"
            )
            active = [
                run
                for run in runs
                if (run.get("status") or {}).get("phase", "Pending") in ("Pending", "Running")
            ]
        pending = sum(1 for run in active if (run.get("status") or {}).get("phase", "Pending") == "Pending")
        return Observed(config_map, deployment, service, pending, len(active) - pending, active)

    async def _apply(self, desired: JSON, existing: JSON | None) -> bool:
        """Create or replace the child when it differs; whether anything was written."""
        resource = _KINDS[desired["kind"]]
        namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if existing is None:
            await self.client.create(resource, namespace, desired)
            metrics.CHILD_WRITES.labels(desired["kind"], "create").inc()
            return True
        wanted_hash = desired["metadata"]["annotations"][builders.SPEC_HASH]
        have_hash = (existing["metadata"].get("annotations") or {}).get(builders.SPEC_HASH)
        replicas_drifted = desired["kind"] == "Deployment" and (
            existing.get("spec", {}).get("replicas") != desired["spec"]["replicas"]
        )
        if have_hash == wanted_hash and not replicas_drifted:
            return False
        body = {
            **desired,
            "metadata": {**desired["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]},
        }
        await self.client.replace(resource, namespace, name, body)
        metrics.CHILD_WRITES.labels(desired["kind"], "update").inc()
        return True

    async def _delete(self, resource: kube.Resource, namespace: str, name: str) -> None:
        try:
            await self.client.delete(resource, namespace, name)
        except kube.NotFound:
            return

    async def _record(self, workflow: JSON, event: Event) -> None:
        meta = workflow["metadata"]
        now = format_time(self.clock())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": names.API_VERSION,
                "kind": names.WORKFLOW_KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "tideflow-operator"},
            "reportingComponent": "tideflow-operator",
            "reportingInstance": self._instance,
        }
        try:
            await self.client.create(kube.EVENTS, meta["namespace"], body)
            metrics.EVENTS.labels(event.reason).inc()
        except KubeError as exc:  # an Event is best effort: never fail a reconcile for it
            logger.info(
                "could not record event %s on %s/%s: %s", event.reason, meta["namespace"], meta["name"], exc
            )


async def resync_forever(
    reconcile: Callable[[str, str], Awaitable[None]],
    list_workflows: Callable[[], Awaitable[list[JSON]]],
    interval: float,
    concurrency: int,
) -> None:
    """Reconcile every Workflow every ``interval`` seconds: time-driven transitions and missed events."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(workflow: JSON) -> None:
        async with semaphore:
            await reconcile(workflow["metadata"]["namespace"], workflow["metadata"]["name"])

    while True:
        try:
            workflows = await list_workflows()
            metrics.observe_workflows(workflows)
            await asyncio.gather(*(one(w) for w in workflows))
        except KubeError as exc:
            logger.warning("resync could not list workflows: %s", exc)
        await asyncio.sleep(interval)
