"""Whether this replica is the active one of its kopf peering, for the work kopf itself does not pause.

kopf pauses its watch-driven handlers on a standby replica (a live peer has a higher priority), but
the operator's own resync loop is not a kopf handler. It asks :func:`leads` before reconciling a
namespace's workflows, reading the same peering object kopf keeps (a ``KopfPeering`` per watched
namespace, or the ``ClusterKopfPeering`` when every namespace is watched), with kopf's rule: a peer
is alive until ``lastseen + lifetime``, and the replica with the highest live priority is active.
Reconciling is idempotent, so when in doubt (the peering cannot be read) a replica reconciles.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from tideflow.core.kube import KubeClient, KubeError, Resource

__all__ = ["CLUSTER_PEERINGS", "PEERINGS", "is_active", "leads"]

logger = logging.getLogger(__name__)

PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings")
CLUSTER_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)


def _alive(info: Mapping[str, Any], now: dt.datetime) -> bool:
    try:
        seen = dt.datetime.fromisoformat(str(info["lastseen"]))
        lifetime = float(info.get("lifetime", 60))
    except (KeyError, TypeError, ValueError):
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=dt.UTC)
    return now < seen + dt.timedelta(seconds=lifetime)


def leads(status: Mapping[str, Any], priority: int, now: dt.datetime) -> bool:
    """Whether no live peer in a peering's ``status`` has a higher priority than ``priority``."""
    for info in status.values():
        if isinstance(info, Mapping) and _alive(info, now) and int(info.get("priority", 0)) > priority:
            return False
    return True


async def is_active(
    client: KubeClient, name: str, namespace: str | None, priority: int, now: dt.datetime
) -> bool:
    """:func:`leads` for the peering ``name`` of ``namespace`` (``None``: the cluster-wide one)."""
    resource = PEERINGS if namespace is not None else CLUSTER_PEERINGS
    try:
        peering = await client.get(resource, namespace, name)
    except KubeError as exc:
        logger.warning("cannot read the peering %s (%s): reconciling anyway", name, exc)
        return True
    return leads(peering.get("status") or {}, priority, now)
