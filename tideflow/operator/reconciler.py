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
        self._instance = socket.gethostname()

    def forget(self, namespace: str, name: str) -> None:
        self._locks.pop((namespace, name), None)

    async def reconcile(self, namespace: str, name: str) -> None:
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:
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
            except KubeError as exc:
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
        patch = status_patch(workflow.get("status") or {}, result.status)
        if patch:
            patch_body = {
                "metadata": {"resourceVersion": workflow["metadata"]["resourceVersion"]},
                "status": patch,
            }
            await self.client.patch(kube.WORKFLOWS, namespace, name, patch_body, subresource="status")
        for event in result.events:
            await self._record(workflow, event)

    async def _observe(self, workflow: JSON) -> Observed:
        namespace, name = workflow["metadata"]["namespace"], workflow["metadata"]["name"]
        child = builders.child_name(name)
        config_map, deployment, service = await asyncio.gather(
            self.client.get_or_none(kube.CONFIGMAPS, namespace, child),
            self.client.get_or_none(kube.DEPLOYMENTS, namespace, child),
            self.client.get_or_none(kube.SERVICES, namespace, child),
        )
        pending = running = 0
        lifecycle_type = ((workflow.get("spec") or {}).get("lifecycle") or {}).get("type")
        if lifecycle_type in ("idle-shutdown", "on-demand"):
            runs = await self.client.list_all(
                kube.WORKFLOWRUNS, namespace, label_selector=f"{names.LABEL_WORKFLOW}={name}"
            )
            for run in runs:
                phase = (run.get("status") or {}).get("phase") or "Pending"
                pending += phase == "Pending"
                running += phase == "Running"
        return Observed(config_map, deployment, service, pending, running)

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
