"""The level-based reconcile: read a Workflow and what it owns, :func:`plan`, write the difference.

Every trigger (a Workflow, Deployment or WorkflowRun event, the periodic resync, an operator
restart) ends in :meth:`Reconciler.reconcile`, which is idempotent: run twice, the second run
writes nothing. Calls for one Workflow are serialised by a lock; a 409 from a concurrent writer
restarts the reconcile from a fresh read, a bounded number of times. A child is written only when
its ``tideflow.io/spec-hash`` (or, for the Deployment, its replicas) differs from the desired one,
so whoever edits a child by hand is reverted on the next reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tideflow.core import kube, names
from tideflow.core.clock import Clock, format_time
from tideflow.core.kube import KubeClient, KubeError
from tideflow.operator import builders, metrics
from tideflow.operator.planning import Event, Observed, plan, status_patch
from tideflow.operator.settings import OperatorSettings

logger = logging.getLogger("tideflow.operator")
JSON = dict[str, Any]
_KINDS = {"ConfigMap": kube.CONFIGMAPS, "Service": kube.SERVICES, "Deployment": kube.DEPLOYMENTS}
_CONFLICT_RETRIES = 5


class Reconciler:
    """Reconciles Workflows one at a time each (concurrently across Workflows)."""

    def __init__(self, client: KubeClient, settings: OperatorSettings, clock: Clock) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        # Every reconcile, whatever triggered it (watch events, timers, the resync), shares one limit.
        self._slots = asyncio.Semaphore(settings.max_concurrent_reconciles)
        self._background: set[asyncio.Future[None]] = set()
        self._instance = socket.gethostname()

    def forget(self, namespace: str, name: str) -> None:
        self._locks.pop((namespace, name), None)
        timer = self._timers.pop((namespace, name), None)
        if timer is not None:
            timer.cancel()

    async def reconcile(self, namespace: str, name: str) -> None:
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock, self._slots:
            started = time.perf_counter()
            outcome = "ok"
            try:
                for attempt in range(_CONFLICT_RETRIES):
                    try:
                        await self._reconcile(namespace, name)
                        return
                    except kube.Conflict:
                        outcome = "conflict"
                        if attempt == _CONFLICT_RETRIES - 1:
                            raise
                        logger.debug(
                            "conflict reconciling %s/%s; retrying from a fresh read", namespace, name
                        )
            except (KubeError, httpx.HTTPError) as exc:  # transient: the next event or resync retries
                outcome = "error"
                logger.warning("reconcile of %s/%s failed: %s", namespace, name, exc)
            except Exception:
                outcome = "error"
                logger.exception("reconcile of %s/%s crashed", namespace, name)
            finally:
                metrics.RECONCILES.labels(outcome).inc()
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _reconcile(self, namespace: str, name: str) -> None:
        workflow = await self.client.get_or_none(kube.WORKFLOWS, namespace, name)
        if workflow is None or workflow["metadata"].get("deletionTimestamp"):
            return  # its children go with it: they are owned, the garbage collector removes them
        observed = await self._observe(workflow)
        result = plan(workflow, observed, self.clock(), self.settings)
        current = {
            "ConfigMap": observed.config_map,
            "Service": observed.service,
            "Deployment": observed.deployment,
        }
        if result.remove_children:
            for kind, child in current.items():
                if child is not None:
                    await self._delete(_KINDS[kind], namespace, child["metadata"]["name"])
        for desired in result.children:
            await self._apply(desired, current[desired["kind"]])
        # Runs first, the checkpoint (in the status) after: a crash in between re-creates nothing
        # but 409s, while the other order could lose a fire time.
        for run in result.create_runs:
            await self._create_run(run)
        for run_name in result.cancel_runs:
            await self._cancel_run(namespace, run_name)
        for skip in result.skipped:
            metrics.SCHEDULE_SKIPPED.labels(skip.reason).inc()
        patch = status_patch(workflow.get("status") or {}, result.status)
        if patch:
            patch_body = {
                "metadata": {"resourceVersion": workflow["metadata"]["resourceVersion"]},
                "status": patch,
            }
            await self.client.patch(kube.WORKFLOWS, namespace, name, patch_body, subresource="status")
        for event in result.events:
            await self._record(workflow, event)
        self._requeue(namespace, name, result.requeue_at)

    def _requeue(self, namespace: str, name: str, at: Any) -> None:
        """Reconcile again at ``at`` (a fire time, a window boundary), not only at the next resync."""
        previous = self._timers.pop((namespace, name), None)
        if previous is not None:
            previous.cancel()
        if at is None:
            return
        delay = min(max((at - self.clock()).total_seconds(), 0.5), 3600.0)
        loop = asyncio.get_running_loop()
        self._timers[(namespace, name)] = loop.call_later(
            delay, lambda: self._background.add(asyncio.ensure_future(self.reconcile(namespace, name)))
        )

    async def _create_run(self, run: JSON) -> None:
        try:
            await self.client.create(kube.WORKFLOWRUNS, run["metadata"]["namespace"], run)
            metrics.SCHEDULE_RUNS.inc()
        except kube.Conflict:
            pass  # already created for this fire time (a restart, another operator): exactly once

    async def _cancel_run(self, namespace: str, name: str) -> None:
        """concurrencyPolicy Replace: a Pending run is cancelled here, a Running one by its runtime."""
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
                            "error": "Replaced by a newer scheduled run (concurrencyPolicy Replace).",
                        },
                    },
                    subresource="status",
                )
            elif phase == "Running":
                await self.client.patch(
                    kube.WORKFLOWRUNS,
                    namespace,
                    name,
                    {"metadata": {"annotations": {names.ANNOTATION_CANCEL: "true"}}},
                )
        except kube.Conflict:
            await self.client.patch(
                kube.WORKFLOWRUNS,
                namespace,
                name,
                {"metadata": {"annotations": {names.ANNOTATION_CANCEL: "true"}}},
            )

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
        active: list[JSON] = []
        if scheduled or lifecycle_type in ("idle-shutdown", "on-demand"):
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

    async def _apply(self, desired: JSON, existing: JSON | None) -> None:
        resource = _KINDS[desired["kind"]]
        namespace, name = desired["metadata"]["namespace"], desired["metadata"]["name"]
        if existing is None:
            await self.client.create(resource, namespace, desired)
            metrics.CHILD_WRITES.labels(desired["kind"], "create").inc()
            return
        wanted_hash = desired["metadata"]["annotations"][builders.SPEC_HASH]
        have_hash = (existing["metadata"].get("annotations") or {}).get(builders.SPEC_HASH)
        replicas_drifted = desired["kind"] == "Deployment" and (
            existing.get("spec", {}).get("replicas") != desired["spec"]["replicas"]
        )
        if have_hash == wanted_hash and not replicas_drifted:
            return
        body = {
            **desired,
            "metadata": {**desired["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]},
        }
        await self.client.replace(resource, namespace, name, body)
        metrics.CHILD_WRITES.labels(desired["kind"], "update").inc()

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
