"""A standby operator: two peered replicas; the higher priority reconciles, the other takes over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.conftest import ROOT, Sandbox
from tests.integration.operator.conftest import Kube, Operator, is_true, workflow_manifest
from tests.integration.sandbox import installed_crd
from tests.support import wait_for

PEERING_CRDS = ROOT / "charts" / "tideflow" / "crds" / "kopf.dev_peerings.yaml"


@pytest.fixture
def peering(sandbox: Sandbox, namespace: str) -> Iterator[None]:
    """kopf's KopfPeering CRD (as the chart installs it) and the peering object of the namespace."""
    crds = [doc for doc in yaml.safe_load_all(PEERING_CRDS.read_text()) if doc]
    namespaced = next(crd for crd in crds if crd["spec"]["names"]["kind"] == "KopfPeering")
    with installed_crd(sandbox, namespaced) as base, httpx.Client(base_url=sandbox.url, timeout=30) as client:
        created = client.post(
            f"{base}/namespaces/{namespace}/kopfpeerings",
            json={"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "tideflow"}},
        )
        assert created.status_code == 201, created.text
        yield


def _replica(sandbox: Sandbox, namespace: str, runtime_port: int, name: str) -> Operator:
    replica = Operator(sandbox, namespace, runtime_port)
    replica.log_path = Path(str(replica.log_path).replace(".log", f".{name}.log"))
    return replica


def _reconciled_by(replica: Operator, name: str) -> bool:
    """Whether the replica wrote the Workflow's status (the reconcile's own write, logged by httpx)."""
    return any("PATCH" in line and f"/workflows/{name}/status" in line for line in replica.log().splitlines())


@pytest.mark.usefixtures("peering")
def test_the_standby_waits_while_the_active_replica_reconciles_and_takes_over_when_it_dies(
    sandbox: Sandbox, namespace: str, runtime_port: int, kube: Kube
) -> None:
    active = _replica(sandbox, namespace, runtime_port, "active")
    standby = _replica(sandbox, namespace, runtime_port, "standby")
    try:
        peered = {"TIDEFLOW_STANDALONE": "false", "TIDEFLOW_PEERING_LIFETIME": "10"}
        active.start(**peered, TIDEFLOW_PEERING_PRIORITY="200")  # type: ignore[arg-type]
        standby.start(**peered, TIDEFLOW_PEERING_PRIORITY="100")  # type: ignore[arg-type]
        kube.create_workflow(workflow_manifest("first"))
        wait_for(lambda: is_true(kube.workflow("first"), "Ready"), timeout=60, what="first to be Ready")
        kube.patch_workflow("first", {"spec": {"description": "changed while the standby waits"}})
        wait_for(
            lambda: kube.must_workflow("first")["status"].get("observedGeneration") == 2,
            timeout=60,
            what="the change to be observed",
        )
        assert _reconciled_by(active, "first")
        assert not _reconciled_by(standby, "first"), "the standby reconciled while the active one lived"

        active.kill()
        wait_for(
            lambda: "Resuming operations after the pause" in standby.log(),
            timeout=60,
            what="the standby to resume once the active replica's keep-alive expired",
        )
        kube.create_workflow(workflow_manifest("second"))
        wait_for(lambda: is_true(kube.workflow("second"), "Ready"), timeout=60, what="second to be Ready")
        assert _reconciled_by(standby, "second")
    finally:
        active.stop()
        standby.stop()
