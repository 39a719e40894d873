"""The Workflow cache with a scripted cluster: list, watch, resume, relist on 410, own writes, ordering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from tideflow.api.cache import WorkflowCache

JSON = dict[str, Any]


def wf(name: str, version: int, **spec: Any) -> JSON:
    return {"metadata": {"name": name, "namespace": "org", "resourceVersion": str(version)}, "spec": spec}


class ScriptedCluster:
    """``list_objects`` answers the current objects; each ``watch`` replays the next scripted stream."""

    def __init__(self, objects: list[JSON], version: int) -> None:
        self.objects = objects
        self.version = version
        self.lists = 0
        self.watches: list[str | None] = []
        self.streams: asyncio.Queue[list[JSON] | None] = asyncio.Queue()

    async def list_objects(self, resource: object, namespace: str, **_: Any) -> JSON:
        self.lists += 1
        return {
            "items": [dict(obj) for obj in self.objects],
            "metadata": {"resourceVersion": str(self.version)},
        }

    async def list_all(self, resource: object, namespace: str, **_: Any) -> list[JSON]:
        return [dict(obj) for obj in self.objects]

    async def watch(self, resource: object, namespace: str, **kwargs: Any) -> AsyncIterator[JSON]:
        self.watches.append(kwargs.get("resource_version"))
        events = await self.streams.get()
        if events is None:
            await asyncio.Event().wait()  # a watch that stays open with nothing to say
        for event in events or ():
            yield event


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the cache's task run until ``condition`` holds (no fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "the cache did not get there"
        await asyncio.sleep(0)


def names(objects: list[JSON]) -> dict[str, str]:
    return {obj["metadata"]["name"]: obj["metadata"]["resourceVersion"] for obj in objects}


async def test_list_then_watch_then_resume_from_the_last_version() -> None:
    cluster = ScriptedCluster([wf("a", 1), wf("b", 2)], version=2)
    cache = WorkflowCache(cluster)  # type: ignore[arg-type]
    assert names(await cache.list("org")) == {"a": "1", "b": "2"}
    await cluster.streams.put(
        [
            {"type": "ADDED", "object": wf("c", 3)},
            {"type": "MODIFIED", "object": wf("a", 4)},
            {"type": "DELETED", "object": wf("b", 5)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
        ]
    )
    await cluster.streams.put(None)
    await until(lambda: len(cluster.watches) == 2)  # the first stream is over: all of it was applied
    assert names(await cache.list("org")) == {"a": "4", "c": "3"}
    assert cluster.watches == ["2", "7"]  # the second watch resumed after the bookmark, no second list
    assert cluster.lists == 1
    await cache.close()


async def test_a_410_lists_again() -> None:
    cluster = ScriptedCluster([wf("a", 1)], version=1)
    cache = WorkflowCache(cluster)  # type: ignore[arg-type]
    await cache.list("org")
    cluster.objects = [wf("z", 9)]
    cluster.version = 9
    await cluster.streams.put([{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}])
    await cluster.streams.put(None)
    await until(lambda: len(cluster.watches) == 2)
    assert names(await cache.list("org")) == {"z": "9"}
    assert cluster.lists == 2
    await cache.close()


async def test_own_writes_show_at_once_and_late_events_never_undo_them() -> None:
    cluster = ScriptedCluster([wf("a", 1), wf("b", 2)], version=2)
    cache = WorkflowCache(cluster)  # type: ignore[arg-type]
    await cache.list("org")
    cache.observe(wf("a", 10, description="new"))
    cache.observe(wf("n", 11))
    cache.observe_deleted("org", "b")
    assert names(await cache.list("org")) == {"a": "10", "n": "11"}
    # The watch now delivers what happened before those writes: none of it may win.
    late = [
        {"type": "MODIFIED", "object": wf("a", 5)},
        {"type": "MODIFIED", "object": wf("b", 2)},
        {"type": "MODIFIED", "object": wf("a", 10, description="new")},
    ]
    await cluster.streams.put(late)
    await cluster.streams.put(None)
    await until(lambda: len(cluster.watches) == 2)
    assert names(await cache.list("org")) == {"a": "10", "n": "11"}
    await cache.close()


async def test_a_cluster_it_cannot_list_is_read_directly() -> None:
    class Refusing(ScriptedCluster):
        async def list_objects(self, resource: object, namespace: str, **_: Any) -> JSON:
            raise PermissionError("forbidden")

    cluster = Refusing([wf("a", 1)], version=1)
    cache = WorkflowCache(cluster, ready_seconds=5)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert names(await cache.list("org")) == {"a": "1"}
    assert loop.time() - started < 1  # no waiting for a cache that failed
    await cache.close()
