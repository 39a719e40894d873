"""kopf wiring: thin handlers that route every event to the one level-based reconcile.

Only ``on.event`` handlers are used: they need no finalizer and store nothing on the objects, so a
Workflow can always be deleted (its children go through owner references) and nothing but the
status is ever written to it. Time-driven transitions (idle timeouts, windows) and missed events
are covered by a resync loop that reconciles every Workflow every ``resync_seconds``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from typing import Any

import kopf
import prometheus_client

from tideflow.core import kube, names
from tideflow.core.clock import file_clock, system_clock
from tideflow.core.kube import KubeClient
from tideflow.operator import metrics, peering
from tideflow.operator.reconciler import Reconciler, resync_forever
from tideflow.operator.retention import Retention, prune_forever
from tideflow.operator.settings import OperatorSettings

logger = logging.getLogger("tideflow.operator")


def peering_priority(config: OperatorSettings) -> int:
    """The configured peering priority, else a random one in 1..2**31-1.

    kopf pauses every operator of a peering in which two live ones share the highest priority, so a
    standby replica needs a priority of its own: random ones collide with odds of one in two billion.
    """
    if config.peering_priority is not None:
        return config.peering_priority
    return random.SystemRandom().randint(1, 2**31 - 1)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorSettings.from_env()
    settings.posting.enabled = False  # the reconciler records its own Events, on transitions only
    if not config.standalone:
        settings.peering.priority = peering_priority(config)
        settings.peering.lifetime = config.peering_lifetime
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    client = KubeClient.from_environment(user_agent="tideflow-operator")
    clock = file_clock(config.clock_file) if config.clock_file else system_clock
    reconciler = Reconciler(client, config, clock)
    if config.metrics_port:
        prometheus_client.start_http_server(config.metrics_port)

    priority = settings.peering.priority

    async def active(namespace: str | None) -> bool:
        """Standalone, or the active replica of the namespace's peering (kopf pauses the others)."""
        if config.standalone:
            return True
        # kopf writes keep-alives with the real time, so liveness is judged by it (not a test clock).
        now = datetime.datetime.now(datetime.UTC)
        return await peering.is_active(client, config.peering_name, namespace, priority, now)

    async def list_workflows() -> list[dict[str, Any]]:
        """The Workflows the resync loop reconciles: those of the namespaces this replica is active in."""
        if not config.namespaces:
            return await client.list_all(kube.WORKFLOWS) if await active(None) else []
        serving = [ns for ns in config.namespaces if await active(ns)]
        listed = await asyncio.gather(*(client.list_all(kube.WORKFLOWS, ns) for ns in serving))
        return [w for items in listed for w in items]

    retention = Retention(
        max_age=datetime.timedelta(hours=config.run_retention_max_age_hours),
        max_runs=config.run_retention_max_runs,
        min_age=datetime.timedelta(hours=config.run_retention_min_age_hours),
    )
    memo.prune = asyncio.create_task(
        prune_forever(
            client,
            list(config.namespaces) or [None],
            active,
            clock,
            retention,
            config.run_prune_seconds,
        )
    )
    memo.config = config
    memo.client = client
    memo.reconciler = reconciler
    memo.resync = asyncio.create_task(
        resync_forever(
            reconciler.reconcile, list_workflows, config.resync_seconds, config.max_concurrent_reconciles
        )
    )
    logger.info("tideflow operator started (resync every %ss)", config.resync_seconds)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    memo.prune.cancel()
    await asyncio.gather(memo.resync, memo.prune, return_exceptions=True)
    await memo.client.close()


@kopf.on.event(names.GROUP, names.VERSION, names.WORKFLOW_PLURAL)
async def workflow_event(
    event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    if namespace is None:
        return
    if event["type"] == "DELETED":
        memo.reconciler.forget(namespace, name)
        return
    await memo.reconciler.reconcile(namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_WORKFLOW: kopf.PRESENT})
async def deployment_event(labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    if namespace is not None:
        await memo.reconciler.reconcile(namespace, labels[names.LABEL_WORKFLOW])


@kopf.on.event(names.GROUP, names.VERSION, names.WORKFLOWRUN_PLURAL)
async def run_event(
    event: kopf.RawEvent,
    spec: kopf.Spec,
    status: kopf.Status,
    uid: str,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    metrics.observe_lateness(uid, spec.get("scheduledTime"), status.get("startedAt"))
    workflow = (spec.get("workflowRef") or {}).get("name")
    if namespace is not None and isinstance(workflow, str) and workflow:
        active = event["type"] != "DELETED" and status.get("phase", "Pending") in ("Pending", "Running")
        memo.reconciler.note_run(namespace, workflow, name, active=active)
        await memo.reconciler.reconcile(namespace, workflow)
