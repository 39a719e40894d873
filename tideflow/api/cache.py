"""A watch-fed cache of each organization's Workflows, so listing them does not read every object each time.

Like a client-go informer: per namespace, one list, then one watch from its ``resourceVersion``; a
watch that ends is resumed from the last version seen, one answered 410 (compacted) lists again. The
cache starts on the first request for a namespace and holds no state a restart would lose: it is
rebuilt from the cluster.

Only routes that list Workflows read it (list, stats, templates, discover, events); reading one workflow
always asks the cluster. Writes this process makes are applied to the cache at once (:meth:`observe`,
:meth:`observe_deleted`), so a client sees its own create, change or delete in the next list from the
same API process; another process's writes appear when their watch event arrives (milliseconds). A
watch event older than what the cache holds (by ``resourceVersion``) never replaces it, and a
deleted workflow is not brought back by a late event from before its deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from tideflow.core.kube import WORKFLOWS, KubeClient

__all__ = ["WorkflowCache"]

logger = logging.getLogger(__name__)
JSON = dict[str, Any]


def _version(obj: JSON) -> int | None:
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def _newer(candidate: JSON, held: JSON | None) -> bool:
    """Whether ``candidate`` may replace ``held`` (versions that are not numbers always may)."""
    if held is None:
        return True
    new, old = _version(candidate), _version(held)
    return new is None or old is None or new >= old


@dataclass
class _Namespace:
    objects: dict[str, JSON] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)  # name -> version it was deleted at
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    tried: asyncio.Event = field(default_factory=asyncio.Event)  # the first list answered, or failed
    task: asyncio.Task[None] | None = None

    def apply(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        version = _version(obj)
        tomb = self.tombstones.get(name)
        if tomb is not None and version is not None and version <= tomb:
            return  # an event from before the deletion we already applied
        if _newer(obj, self.objects.get(name)):
            self.objects[name] = obj
            self.tombstones.pop(name, None)

    def delete(self, obj: JSON) -> None:
        name = str(obj["metadata"]["name"])
        held = self.objects.get(name)
        if held is not None and not _newer(obj, held):
            return  # a deletion of an older incarnation than the one held
        self.objects.pop(name, None)
        version = _version(obj)
        if version is not None:
            self.tombstones[name] = version
        if len(self.tombstones) > 10_000:
            self.tombstones.clear()


class WorkflowCache:
    """Workflows by namespace, kept current by list and watch; :meth:`list` waits for the first list."""

    def __init__(self, kube: KubeClient, *, ready_seconds: float = 10.0, watch_seconds: int = 290) -> None:
        self.kube = kube
        self.ready_seconds = ready_seconds
        self.watch_seconds = watch_seconds
        self._namespaces: dict[str, _Namespace] = {}

    def _space(self, namespace: str) -> _Namespace:
        space = self._namespaces.get(namespace)
        if space is None:
            space = self._namespaces[namespace] = _Namespace()
            space.task = asyncio.get_running_loop().create_task(
                self._follow(namespace, space), name=f"workflow-cache:{namespace}"
            )
        return space

    async def list(self, namespace: str) -> list[JSON]:
        """Every Workflow of the namespace; read from the cluster while the cache cannot list."""
        space = self._space(namespace)
        if not space.tried.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(space.tried.wait()), self.ready_seconds)
        if not space.ready.is_set():
            return await self.kube.list_all(WORKFLOWS, namespace)
        return list(space.objects.values())

    def observe(self, obj: JSON) -> None:
        """A Workflow this process just created or replaced (the API server's answer)."""
        space = self._namespaces.get(str(obj["metadata"].get("namespace") or ""))
        if space is not None and space.ready.is_set():
            space.apply(obj)

    def observe_deleted(self, namespace: str, name: str) -> None:
        """A Workflow this process just deleted."""
        space = self._namespaces.get(namespace)
        if space is not None:
            held = space.objects.pop(name, None)
            version = _version(held) if held is not None else None
            if version is not None:
                space.tombstones[name] = version

    async def close(self) -> None:
        tasks = [space.task for space in self._namespaces.values() if space.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _follow(self, namespace: str, space: _Namespace) -> None:
        delay = 0.5
        version: str | None = None
        while True:
            try:
                if version is None:
                    page = await self.kube.list_objects(WORKFLOWS, namespace)
                    fresh = _Namespace()
                    for obj in page.get("items") or ():
                        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
                        fresh.apply(obj)
                    space.objects, space.tombstones = fresh.objects, {}
                    version = str((page.get("metadata") or {}).get("resourceVersion") or "") or None
                    space.ready.set()
                    space.tried.set()
                version = await self._watch(namespace, space, version)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("workflow cache of %s: %s; listing again in %.1fs", namespace, exc, delay)
                space.tried.set()
                version = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _watch(self, namespace: str, space: _Namespace, version: str | None) -> str | None:
        """Apply watch events until the watch ends; the version to resume from (``None``: list again)."""
        async for event in self.kube.watch(
            WORKFLOWS, namespace, resource_version=version, timeout_seconds=self.watch_seconds
        ):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                return None  # 410 Gone (compacted) or another error: list again
            seen = str((obj.get("metadata") or {}).get("resourceVersion") or "") or version
            if kind in ("ADDED", "MODIFIED"):
                space.apply(obj)
            elif kind == "DELETED":
                space.delete(obj)
            version = seen
        return version
