"""Fidelity of watches against the kube-apiserver contract (API concepts: efficient detection of changes).

A watch from a ``resourceVersion`` delivers exactly the changes after it; a watch without one starts
with synthetic ``ADDED`` events for the current state; once the history is compacted a watch from an
old version gets an ``ERROR`` event carrying a 410 ``Expired`` Status (and the ``kubernetes`` client
raises ``ApiException(410)``); label- and field-selector watches turn an object entering or leaving
the selection into ``ADDED``/``DELETED``; ``timeoutSeconds`` ends the stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from tests.integration.conftest import Sandbox

JSON = dict[str, Any]

MERGE = {"Content-Type": "application/merge-patch+json"}


def _new_watch() -> Any:
    """A ``kubernetes.watch.Watch`` (the class is untyped)."""
    factory: Any = kubernetes.watch.Watch
    return factory()


def _cm_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _create(
    http: httpx.Client, namespace: str, name: str, labels: dict[str, str] | None = None, **data: str
) -> JSON:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": dict(data),
    }
    response = http.post(_cm_path(namespace), json=body)
    assert response.status_code == 201, response.text
    result: JSON = response.json()
    return result


def _patch(http: httpx.Client, namespace: str, name: str, patch: JSON) -> JSON:
    response = http.patch(_cm_path(namespace, name), json=patch, headers=MERGE)
    assert response.status_code == 200, response.text
    result: JSON = response.json()
    return result


def _delete(http: httpx.Client, namespace: str, name: str) -> None:
    response = http.delete(_cm_path(namespace, name))
    assert response.status_code in (200, 202), response.text


def _list_rv(http: httpx.Client, namespace: str) -> str:
    rv: str = http.get(_cm_path(namespace)).json()["metadata"]["resourceVersion"]
    return rv


def _read_events(
    lines: Iterator[str], until: Callable[[list[JSON]], bool] | None = None
) -> tuple[list[JSON], bool]:
    """Read watch events until ``until(events)`` holds; return them and whether the stream ended."""
    events: list[JSON] = []
    for line in lines:
        if not line.strip():
            continue
        events.append(json.loads(line))
        if until is not None and until(events):
            return events, False
    return events, True


def _summary(events: list[JSON]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].get("metadata", {}).get("name", "")) for e in events]


def _watch(http: httpx.Client, namespace: str, **params: str | int) -> Any:
    return http.stream(
        "GET", _cm_path(namespace), params={"watch": "true", **params}, timeout=httpx.Timeout(15)
    )


def _has_sentinel(events: list[JSON]) -> bool:
    return any(e["object"].get("metadata", {}).get("name") == "sentinel" for e in events)


def test_watch_from_a_resource_version_resumes_with_exactly_the_later_events(
    http: httpx.Client, namespace: str
) -> None:
    labels = {"suite": "resume"}
    first = _create(http, namespace, "a", labels, v="1")
    start = first["metadata"]["resourceVersion"]
    modified = _patch(http, namespace, "a", {"data": {"v": "2"}})
    added = _create(http, namespace, "b", labels)
    _delete(http, namespace, "a")
    _create(http, namespace, "sentinel", labels)

    with _watch(
        http, namespace, resourceVersion=start, labelSelector="suite=resume", timeoutSeconds=10
    ) as resp:
        assert resp.status_code == 200, resp.read()
        lines = resp.iter_lines()
        events, _ = _read_events(lines, _has_sentinel)

    assert _summary(events) == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a"), ("ADDED", "sentinel")]
    assert events[0]["object"]["metadata"]["resourceVersion"] == modified["metadata"]["resourceVersion"]
    assert events[0]["object"]["data"] == {"v": "2"}
    assert events[1]["object"]["metadata"]["resourceVersion"] == added["metadata"]["resourceVersion"]
    # A deletion is a write of its own: the DELETED object carries a newer resourceVersion.
    versions = [e["object"]["metadata"]["resourceVersion"] for e in events]
    assert len(set(versions)) == len(versions), versions
    for event in events:
        assert event["object"]["kind"] == "ConfigMap"
        assert event["object"]["apiVersion"] == "v1"


def test_watch_from_a_list_resource_version_skips_the_listed_state(
    http: httpx.Client, namespace: str
) -> None:
    labels = {"suite": "listwatch"}
    _create(http, namespace, "old-1", labels)
    _create(http, namespace, "old-2", labels)
    rv = _list_rv(http, namespace)
    _create(http, namespace, "new", labels)
    _patch(http, namespace, "old-1", {"data": {"k": "v"}})
    _create(http, namespace, "sentinel", labels)

    with _watch(
        http, namespace, resourceVersion=rv, labelSelector="suite=listwatch", timeoutSeconds=10
    ) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, _ = _read_events(lines, _has_sentinel)

    assert _summary(events) == [("ADDED", "new"), ("MODIFIED", "old-1"), ("ADDED", "sentinel")]


def test_watch_response_headers_arrive_before_any_event(http: httpx.Client, namespace: str) -> None:
    # kube-apiserver writes and flushes the 200 response as soon as the watch is established, so a
    # client learns that its watch is running even when nothing changes.
    rv = _list_rv(http, namespace)
    started = time.monotonic()
    with _watch(http, namespace, resourceVersion=rv, timeoutSeconds=5) as resp:
        waited = time.monotonic() - started
        assert resp.status_code == 200
        _create(http, namespace, "live")
        lines = resp.iter_lines()
        events, _ = _read_events(lines, lambda evs: True)
    assert waited < 2, (
        f"the response headers took {waited:.1f}s: they were held back until an event or the timeout"
    )
    assert _summary(events) == [("ADDED", "live")]


def test_watch_without_resource_version_starts_with_synthetic_added_events(
    http: httpx.Client, namespace: str
) -> None:
    labels = {"suite": "initial"}
    _create(http, namespace, "one", labels)
    _create(http, namespace, "two", labels)
    _patch(http, namespace, "one", {"data": {"k": "v"}})

    with _watch(http, namespace, labelSelector="suite=initial", timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        initial, _ = _read_events(lines, lambda events: len(events) >= 2)
        _delete(http, namespace, "two")
        _create(http, namespace, "sentinel", labels)
        live, _ = _read_events(lines, _has_sentinel)

    assert sorted(_summary(initial)) == [("ADDED", "one"), ("ADDED", "two")]
    assert _summary(live) == [("DELETED", "two"), ("ADDED", "sentinel")]


def test_watch_from_resource_version_zero_starts_with_the_current_state(
    http: httpx.Client, namespace: str
) -> None:
    _create(http, namespace, "zero", {"suite": "zero"})
    with _watch(http, namespace, resourceVersion="0", labelSelector="suite=zero", timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, _ = _read_events(lines, lambda evs: True)
    assert _summary(events) == [("ADDED", "zero")]


def test_noop_writes_emit_no_watch_event(http: httpx.Client, namespace: str) -> None:
    labels = {"suite": "noop"}
    created = _create(http, namespace, "same", labels, k="v")
    rv = created["metadata"]["resourceVersion"]
    _patch(http, namespace, "same", {"data": {"k": "v"}})
    put = http.put(_cm_path(namespace, "same"), json=created)
    assert put.status_code == 200, put.text
    _patch(http, namespace, "same", {"data": {"k": "w"}})
    _create(http, namespace, "sentinel", labels)

    with _watch(http, namespace, resourceVersion=rv, labelSelector="suite=noop", timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, _ = _read_events(lines, _has_sentinel)
    assert _summary(events) == [("MODIFIED", "same"), ("ADDED", "sentinel")]
    assert events[0]["object"]["data"] == {"k": "w"}


def test_watch_from_a_compacted_resource_version_gets_a_410_error_event(
    http: httpx.Client, namespace: str
) -> None:
    old = _create(http, namespace, "c", {"suite": "compact"})["metadata"]["resourceVersion"]
    for i in range(3):
        _patch(http, namespace, "c", {"data": {"i": str(i)}})
    compact = http.post("/_sandbox/compact")
    assert compact.status_code == 200, compact.text

    with _watch(http, namespace, resourceVersion=old, timeoutSeconds=5) as resp:
        assert resp.status_code == 200, resp.read()
        lines = resp.iter_lines()
        events, _ = _read_events(lines, lambda evs: True)
    assert events[0]["type"] == "ERROR", events
    status = events[0]["object"]
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["code"] == 410
    assert status["reason"] == "Expired"

    # A fresh list gives a resourceVersion that can be watched from again.
    rv = _list_rv(http, namespace)
    _create(http, namespace, "sentinel")
    with _watch(http, namespace, resourceVersion=rv, timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, _ = _read_events(lines, _has_sentinel)
    assert _summary(events) == [("ADDED", "sentinel")]


def test_kubernetes_client_watch_raises_410_after_compaction(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str
) -> None:
    old = _create(http, namespace, "c")["metadata"]["resourceVersion"]
    _patch(http, namespace, "c", {"data": {"k": "v"}})
    assert http.post("/_sandbox/compact").status_code == 200

    core: Any = kubernetes.client.CoreV1Api(api_client)
    watcher = _new_watch()
    with pytest.raises(kubernetes.client.ApiException) as caught:
        for _ in watcher.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=old,
            timeout_seconds=5,
            _request_timeout=15,
        ):
            pass
    assert caught.value.status == 410


def test_label_selector_watch_turns_label_changes_into_added_and_deleted(
    http: httpx.Client, namespace: str
) -> None:
    rv = _list_rv(http, namespace)
    _create(http, namespace, "x")
    _patch(http, namespace, "x", {"metadata": {"labels": {"colour": "blue"}}})
    _patch(http, namespace, "x", {"data": {"k": "v"}})
    _patch(http, namespace, "x", {"metadata": {"labels": {"colour": "red"}}})
    _patch(http, namespace, "x", {"data": {"k": "w"}})
    _delete(http, namespace, "x")
    _create(http, namespace, "sentinel", {"colour": "blue"})

    with _watch(http, namespace, resourceVersion=rv, labelSelector="colour=blue", timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, _ = _read_events(lines, _has_sentinel)

    assert _summary(events) == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x"), ("ADDED", "sentinel")]
    assert events[0]["object"]["metadata"]["labels"] == {"colour": "blue"}


def test_field_selector_watch_sees_only_the_named_object(http: httpx.Client, namespace: str) -> None:
    _create(http, namespace, "other")
    _create(http, namespace, "target")
    with _watch(http, namespace, fieldSelector="metadata.name=target", timeoutSeconds=10) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        initial, _ = _read_events(lines, lambda evs: True)
        _patch(http, namespace, "other", {"data": {"k": "v"}})
        _patch(http, namespace, "target", {"data": {"k": "v"}})
        _delete(http, namespace, "other")
        _delete(http, namespace, "target")
        live, _ = _read_events(lines, lambda evs: evs[-1]["type"] == "DELETED")
    assert _summary(initial) == [("ADDED", "target")]
    assert _summary(live) == [("MODIFIED", "target"), ("DELETED", "target")]


def test_streaming_list_ends_its_initial_events_with_a_bookmark(http: httpx.Client, namespace: str) -> None:
    # sendInitialEvents=true: synthetic ADDED events for the current state, then a BOOKMARK annotated
    # k8s.io/initial-events-end, then ordinary events (client-go reflectors and kubectl rely on it).
    labels = {"suite": "stream"}
    _create(http, namespace, "one", labels)
    _create(http, namespace, "two", labels)
    params: dict[str, str | int] = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "labelSelector": "suite=stream",
        "timeoutSeconds": 3,
    }
    with _watch(http, namespace, **params) as resp:
        assert resp.status_code == 200, resp.read()
        lines = resp.iter_lines()
        initial, _ = _read_events(lines, lambda evs: evs[-1]["type"] == "BOOKMARK")
        _create(http, namespace, "sentinel", labels)
        live, _ = _read_events(lines, _has_sentinel)
    assert initial, "no event at all"
    assert initial[-1]["type"] == "BOOKMARK", f"no BOOKMARK ended the initial events: {_summary(initial)}"
    assert sorted(_summary(initial[:-1])) == [("ADDED", "one"), ("ADDED", "two")]
    bookmark = initial[-1]["object"]
    assert bookmark["kind"] == "ConfigMap"
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert bookmark["metadata"]["resourceVersion"]
    assert next(e for e in live if e["type"] != "BOOKMARK")["object"]["metadata"]["name"] == "sentinel"


def test_kubectl_wait_for_a_condition(sandbox: Sandbox, http: httpx.Client, namespace: str) -> None:
    path = f"/apis/tideflow.io/v1alpha1/namespaces/{namespace}/workflows"
    workflow = {
        "apiVersion": "tideflow.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {},
    }
    assert http.post(path, json=workflow).status_code == 201
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = {"type": "Ready", "status": "True", "reason": "Running", "message": "", "lastTransitionTime": now}
    status = http.patch(f"{path}/w/status", json={"status": {"conditions": [ready]}}, headers=MERGE)
    assert status.status_code == 200, status.text
    # The condition already holds: on a cluster kubectl returns at once.
    result = sandbox.kubectl(
        "wait", "--for=condition=Ready", "wf/w", "-n", namespace, "--timeout=5s", check=False
    )
    assert result.returncode == 0, result.stderr
    assert "condition met" in result.stdout


def test_timeout_seconds_ends_the_stream(http: httpx.Client, namespace: str) -> None:
    _create(http, namespace, "present")
    started = time.monotonic()
    with _watch(http, namespace, timeoutSeconds=1) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        events, ended = _read_events(lines)
    elapsed = time.monotonic() - started
    assert ended
    assert 0.5 <= elapsed < 5, elapsed
    assert _summary(events) == [("ADDED", "present")]


def test_kubernetes_client_watch_stream_yields_typed_events(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str
) -> None:
    rv = _list_rv(http, namespace)
    _create(http, namespace, "typed", {"suite": "typed"}, k="v")
    core: Any = kubernetes.client.CoreV1Api(api_client)
    watcher = _new_watch()
    seen = []
    for event in watcher.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        label_selector="suite=typed",
        timeout_seconds=5,
        _request_timeout=15,
    ):
        seen.append(event)
        watcher.stop()
    assert [e["type"] for e in seen] == ["ADDED"]
    assert isinstance(seen[0]["object"], kubernetes.client.V1ConfigMap)
    assert seen[0]["object"].data == {"k": "v"}
