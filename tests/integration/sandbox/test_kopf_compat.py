"""kopf, the framework Tideflow's operator is written in, runs unchanged against the sandbox.

The operator process lists and watches Workflows, handles create and update, patches the status
subresource and posts Events, which is everything Tideflow's operator needs from an API server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.integration.conftest import Sandbox
from tests.support import wait_for

OPERATOR = Path(__file__).with_name("kopf_probe_operator.py")


@pytest.fixture
def kopf_operator(sandbox: Sandbox, namespace: str) -> Iterator[subprocess.Popen[bytes]]:
    log = (sandbox.state_dir / f"kopf-{namespace}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", str(OPERATOR), "--standalone", "--namespace", namespace],
        env={**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_kopf_handles_creates_and_updates_and_writes_status(
    kopf_operator: subprocess.Popen[bytes], api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    custom: Any = kubernetes.client.CustomObjectsApi(api_client)  # its results are untyped dicts
    core = kubernetes.client.CoreV1Api(api_client)
    args = ("tideflow.io", "v1alpha1", namespace, "workflows")
    custom.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "probe"},
            "spec": {"nodes": [{"id": "n1", "type": "manual_trigger"}]},
        },
    )

    def status_generation() -> Any:
        obj = custom.get_namespaced_custom_object(*args, "probe")
        return obj.get("status", {}).get("observedGeneration")

    assert wait_for(status_generation, timeout=30, what="kopf to handle the creation") == 1
    custom.patch_namespaced_custom_object(*args, "probe", {"spec": {"description": "changed"}})
    assert wait_for(lambda: status_generation() == 2, timeout=30, what="kopf to handle the update")
    obj = custom.get_namespaced_custom_object(*args, "probe")
    assert obj["status"]["deploymentStatus"] == "Starting"
    assert obj["metadata"]["generation"] == 2  # kopf's own annotations did not bump the generation

    def events() -> list[str]:
        listed = core.list_namespaced_event(namespace, field_selector="involvedObject.name=probe")
        return [str(e.message) for e in listed.items if e.reason == "Observed"]

    assert wait_for(
        lambda: {"generation 1", "generation 2"} <= set(events()), timeout=30, what="kopf's events"
    )
    assert kopf_operator.poll() is None
