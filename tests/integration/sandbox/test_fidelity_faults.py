"""Fault injection through ``/_sandbox/faults``: injected errors reach clients exactly ``times`` times.

An injected status (500, 409, ...) answers the next ``times`` requests that match its method and path
regex, with a ``Status`` body as kube-apiserver would send, and then the real answer comes back;
requests that do not match are served normally. A ``{"watch": "drop"}`` fault ends the next matching
watch early (a client then sees an early end of stream, as after an apiserver restart) while plain
GETs are unaffected, and a ``{"watch": "gone"}`` fault answers it with a 410 ``ERROR`` event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

JSON = dict[str, Any]

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(autouse=True)
def _clear_faults(http: httpx.Client) -> Iterator[None]:
    yield
    assert http.delete("/_sandbox/faults").status_code == 200


def _inject(http: httpx.Client, **fault: Any) -> None:
    """Arm a fault; ``path`` is a regular expression that the whole request path must match."""
    response = http.post("/_sandbox/faults", json=fault)
    assert response.status_code in (200, 201), response.text


def _new_watch() -> Any:
    """A ``kubernetes.watch.Watch`` (the class is untyped)."""
    factory: Any = kubernetes.watch.Watch
    return factory()


def _cm_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _create(http: httpx.Client, namespace: str, name: str) -> JSON:
    response = http.post(
        _cm_path(namespace),
        json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"n": "0"}},
    )
    assert response.status_code == 201, response.text
    result: JSON = response.json()
    return result


def test_injected_500_is_returned_exactly_times_then_the_real_answer(
    http: httpx.Client, namespace: str
) -> None:
    _create(http, namespace, "target")
    _create(http, namespace, "bystander")
    _inject(
        http, method="PATCH", path=f"/api/v1/namespaces/{namespace}/configmaps/target", status=500, times=2
    )

    for attempt in (1, 2):
        failed = http.patch(_cm_path(namespace, "target"), json={"data": {"n": str(attempt)}}, headers=MERGE)
        assert failed.status_code == 500, failed.text
        assert failed.json()["kind"] == "Status"
        assert failed.json()["code"] == 500
        # Other requests are not affected while the fault is armed.
        assert http.get(_cm_path(namespace, "target")).json()["data"] == {"n": "0"}
        other = http.patch(_cm_path(namespace, "bystander"), json={"data": {"n": "x"}}, headers=MERGE)
        assert other.status_code == 200, other.text

    succeeded = http.patch(_cm_path(namespace, "target"), json={"data": {"n": "3"}}, headers=MERGE)
    assert succeeded.status_code == 200, succeeded.text
    assert http.get(_cm_path(namespace, "target")).json()["data"] == {"n": "3"}
    again = http.patch(_cm_path(namespace, "target"), json={"data": {"n": "4"}}, headers=MERGE)
    assert again.status_code == 200, again.text


def test_injected_error_on_create_creates_nothing(http: httpx.Client, namespace: str) -> None:
    _inject(http, method="POST", path=f"/api/v1/namespaces/{namespace}/configmaps", status=503, times=1)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "retried"}}
    failed = http.post(_cm_path(namespace), json=body)
    assert failed.status_code == 503, failed.text
    assert http.get(_cm_path(namespace, "retried")).status_code == 404
    assert http.post(_cm_path(namespace), json=body).status_code == 201


def test_injected_409_reaches_the_kubernetes_client_once(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str
) -> None:
    _create(http, namespace, "target")
    core: Any = kubernetes.client.CoreV1Api(api_client)
    _inject(http, method="PUT", path=f"/api/v1/namespaces/{namespace}/configmaps/target", status=409, times=1)

    current = core.read_namespaced_config_map("target", namespace)
    current.data = {"n": "1"}
    with pytest.raises(kubernetes.client.ApiException) as caught:
        core.replace_namespaced_config_map("target", namespace, current)
    assert caught.value.status == 409
    assert json.loads(caught.value.body or "{}")["reason"] == "Conflict"
    assert core.read_namespaced_config_map("target", namespace).data == {"n": "0"}

    replaced = core.replace_namespaced_config_map("target", namespace, current)
    assert replaced.data == {"n": "1"}


def _assert_watch_dropped(http: httpx.Client, namespace: str) -> None:
    started = time.monotonic()
    params: dict[str, str | int] = {"watch": "true", "timeoutSeconds": 8}
    with http.stream("GET", _cm_path(namespace), params=params, timeout=httpx.Timeout(15)) as resp:
        lines = [line for line in resp.iter_lines() if line.strip()]
    assert time.monotonic() - started < 4, "the dropped watch should end long before its timeoutSeconds"
    assert lines == []


def test_injected_dropped_watch_ends_the_stream_early_and_a_new_watch_works(
    http: httpx.Client, namespace: str
) -> None:
    _create(http, namespace, "before-drop")
    # The regular expression must match the whole request path (kmock matches it in full).
    _inject(
        http, method="GET", path=f"/api/v1/namespaces/{namespace}/configmaps(\\?.*)?", watch="drop", times=1
    )
    _assert_watch_dropped(http, namespace)

    params: dict[str, str | int] = {"watch": "true", "timeoutSeconds": 10}
    with http.stream("GET", _cm_path(namespace), params=params, timeout=httpx.Timeout(15)) as resp:
        assert resp.status_code == 200
        first = json.loads(next(line for line in resp.iter_lines() if line.strip()))
    assert first["type"] == "ADDED"
    assert first["object"]["metadata"]["name"] == "before-drop"


def test_watch_fault_is_not_spent_or_disarmed_by_plain_requests(http: httpx.Client, namespace: str) -> None:
    _create(http, namespace, "present")
    _inject(
        http, method="GET", path=f"/api/v1/namespaces/{namespace}/configmaps(\\?.*)?", watch="drop", times=1
    )
    listing = http.get(_cm_path(namespace))
    assert listing.status_code == 200
    assert [i["metadata"]["name"] for i in listing.json()["items"]] == ["present"]
    _assert_watch_dropped(http, namespace)


def test_fault_path_is_matched_against_the_url_path_without_the_query(
    http: httpx.Client, namespace: str
) -> None:
    # The documented contract: "path" is a regular expression on the URL path. A query string
    # (?watch=true, ?fieldManager=...) is not part of the path.
    _create(http, namespace, "target")
    _inject(
        http, method="PATCH", path=f"/api/v1/namespaces/{namespace}/configmaps/target", status=500, times=1
    )
    response = http.patch(
        _cm_path(namespace, "target"),
        params={"fieldManager": "tests"},
        json={"data": {"n": "1"}},
        headers=MERGE,
    )
    assert response.status_code == 500, response.text
    assert http.get(_cm_path(namespace, "target")).json()["data"] == {"n": "0"}


def test_injected_gone_watch_raises_410_in_the_kubernetes_client(
    api_client: kubernetes.client.ApiClient, http: httpx.Client, namespace: str
) -> None:
    rv = http.get(_cm_path(namespace)).json()["metadata"]["resourceVersion"]
    _inject(
        http, method="GET", path=f"/api/v1/namespaces/{namespace}/configmaps(\\?.*)?", watch="gone", times=1
    )
    core: Any = kubernetes.client.CoreV1Api(api_client)
    watcher = _new_watch()
    with pytest.raises(kubernetes.client.ApiException) as caught:
        for _ in watcher.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=rv,
            timeout_seconds=5,
            _request_timeout=15,
        ):
            pass
    assert caught.value.status == 410

    # The fault is spent: the next watch from the same resourceVersion is served normally.
    _create(http, namespace, "after-gone")
    names = []
    for event in watcher.stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=rv,
        timeout_seconds=5,
        _request_timeout=15,
    ):
        names.append((event["type"], event["object"].metadata.name))
        watcher.stop()
    assert names == [("ADDED", "after-gone")]
