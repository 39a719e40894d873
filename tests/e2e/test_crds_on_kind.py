"""On a real API server: the CRDs install, every example applies, and the schema's rules hold.

The sandbox emulates kube-apiserver's CRD handling; this checks the same manifests against the
real thing, so a difference between the two shows up here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import kubectl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_crds_install_and_every_example_applies(kind_kubeconfig: Path) -> None:
    installed = kubectl(kind_kubeconfig, "apply", "-f", str(ROOT / "crds"))
    assert installed.returncode == 0, installed.stderr
    for crd in ("workflows.tideflow.io", "workflowruns.tideflow.io"):
        established = kubectl(
            kind_kubeconfig, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s"
        )
        assert established.returncode == 0, established.stderr
    kubectl(kind_kubeconfig, "create", "namespace", "e2e-examples")
    applied = kubectl(kind_kubeconfig, "apply", "-n", "e2e-examples", "-f", str(ROOT / "examples"))
    assert applied.returncode == 0, applied.stderr
    listed = kubectl(kind_kubeconfig, "get", "wf", "-n", "e2e-examples", "-o", "name")
    expected = {
        f"workflow.tideflow.io/{yaml.safe_load(p.read_text())['metadata']['name']}"
        for p in (ROOT / "examples").glob("*.yaml")
    }
    assert set(listed.stdout.split()) == expected


def test_a_cel_rule_refuses_a_bad_lifecycle_with_its_field_path(kind_kubeconfig: Path) -> None:
    kubectl(kind_kubeconfig, "apply", "-f", str(ROOT / "crds"))
    manifest = yaml.safe_dump(
        {
            "apiVersion": "tideflow.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "bad", "namespace": "default"},
            "spec": {"lifecycle": {"type": "idle-shutdown"}},
        }
    )
    refused = kubectl(kind_kubeconfig, "apply", "-f", "-", input=manifest)
    assert refused.returncode != 0
    assert "spec.lifecycle.idleTimeoutMinutes" in refused.stderr
