"""Run retention: which finished WorkflowRuns to delete, as a pure function, and the loop that does it.

Every run is kept while it can still change (no phase, Pending, Running, AwaitingInteraction) and for
``min_age`` after it was created: that is how long an idempotency key is remembered (the API promises
24 hours). Past that, a finished run (Completed, Failed, Cancelled) is deleted when it finished more
than ``max_age`` ago, or when its workflow has more than ``max_runs`` finished runs newer than it.
Scheduled runs can be deleted too: the workflow's ``status.scheduleCheckpoint`` has moved past their
fire times long before, so none is created again. One pass deletes at most ``batch`` runs, so a large
backlog is worked off over several passes instead of in one burst.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tideflow.core import kube, names
from tideflow.core.clock import parse_time
from tideflow.core.kube import KubeClient, KubeError, NotFound

__all__ = ["Retention", "prune", "prune_forever"]

logger = logging.getLogger(__name__)
JSON = dict[str, Any]
_FINISHED = frozenset({"Completed", "Failed", "Cancelled"})


@dataclass(frozen=True)
class Retention:
    """How long and how many finished runs are kept."""

    max_age: dt.timedelta = dt.timedelta(days=7)
    max_runs: int = 1000
    min_age: dt.timedelta = dt.timedelta(hours=24)
    batch: int = 500


def _time(value: object) -> dt.datetime | None:
    try:
        return parse_time(str(value)) if value else None
    except ValueError:
        return None


def prune(runs: Iterable[Mapping[str, Any]], now: dt.datetime, retention: Retention) -> list[str]:
    """The names of the runs to delete, oldest first, at most ``retention.batch``."""
    finished: dict[str, list[tuple[dt.datetime, dt.datetime, str]]] = defaultdict(list)
    for run in runs:
        meta = run.get("metadata") or {}
        status = run.get("status") or {}
        created = _time(meta.get("creationTimestamp"))
        if status.get("phase") not in _FINISHED or created is None or now - created < retention.min_age:
            continue
        ended = _time(status.get("completedAt")) or created
        workflow = str((meta.get("labels") or {}).get(names.LABEL_WORKFLOW) or "")
        finished[workflow].append((ended, created, str(meta.get("name"))))
    doomed: list[tuple[dt.datetime, str]] = []
    for entries in finished.values():
        entries.sort(reverse=True)  # newest first
        for index, (ended, _created, name) in enumerate(entries):
            if index >= retention.max_runs or now - ended > retention.max_age:
                doomed.append((ended, name))
    doomed.sort()
    return [name for _, name in doomed[: retention.batch]]


async def prune_namespace(
    client: KubeClient, namespace: str | None, now: dt.datetime, retention: Retention
) -> int:
    """Delete what :func:`prune` picks among the runs of a namespace (``None``: every namespace)."""
    runs = await client.list_all(kube.WORKFLOWRUNS, namespace)
    by_name = {str(run["metadata"]["name"]): run for run in runs}
    deleted = 0
    for name in prune(runs, now, retention):
        run_namespace = str(by_name[name]["metadata"].get("namespace") or namespace)
        try:
            await client.delete(kube.WORKFLOWRUNS, run_namespace, name)
            deleted += 1
        except NotFound:
            continue  # deleted by someone else meanwhile
    return deleted


async def prune_forever(
    client: KubeClient,
    namespaces: list[str | None],
    active: Callable[[str | None], Awaitable[bool]],
    clock: Callable[[], dt.datetime],
    retention: Retention,
    interval: float,
) -> None:
    """Prune every ``interval`` seconds in the namespaces where this replica is the active one."""
    while True:
        for namespace in namespaces:
            try:
                if await active(namespace):
                    deleted = await prune_namespace(client, namespace, clock(), retention)
                    if deleted:
                        logger.info("pruned %d finished run(s) in %s", deleted, namespace or "all namespaces")
            except KubeError as exc:
                logger.warning("run retention in %s: %s", namespace or "all namespaces", exc)
        await asyncio.sleep(interval)
