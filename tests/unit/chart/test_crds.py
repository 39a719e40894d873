"""The chart's CRDs are the repository's crds/, byte for byte, plus kopf's peering CRDs.

Helm installs a chart's crds/ before its templates and never templates them, so the chart carries
copies: ``make chart-crds`` refreshes them after ``make crds``, and this test fails until it is run.
"""

from __future__ import annotations

import yaml
from kopf._cogs.structs import references  # the peering resources kopf itself looks for

from tests.unit.chart.rendering import CHART, ROOT, crd_objects

KOPF_PEERING_FILE = "kopf.dev_peerings.yaml"


def test_the_chart_crds_are_the_repository_crds_byte_for_byte() -> None:
    repository = {path.name: path.read_bytes() for path in (ROOT / "crds").glob("*.yaml")}
    chart = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert repository, "no CRDs in crds/"
    assert set(chart) - {KOPF_PEERING_FILE} == set(repository), "run `make chart-crds`"
    for name, content in repository.items():
        assert chart[name] == content, (
            f"charts/tideflow/crds/{name} differs from crds/{name}: run `make chart-crds`"
        )


def test_the_chart_installs_the_workflow_crds_and_the_peering_crds_kopf_looks_for() -> None:
    names = {crd["metadata"]["name"] for crd in crd_objects()}
    assert names == {
        "workflows.tideflow.io",
        "workflowruns.tideflow.io",
        f"{references.CLUSTER_PEERINGS_K.any_name}.{references.CLUSTER_PEERINGS_K.group}",
        f"{references.NAMESPACED_PEERINGS_K.any_name}.{references.NAMESPACED_PEERINGS_K.group}",
    }


def test_the_peering_crds_have_the_scope_and_version_kopf_expects() -> None:
    documents = list(yaml.safe_load_all((CHART / "crds" / KOPF_PEERING_FILE).read_text()))
    by_plural = {crd["spec"]["names"]["plural"]: crd for crd in documents}
    for selector, scope in (
        (references.CLUSTER_PEERINGS_K, "Cluster"),
        (references.NAMESPACED_PEERINGS_K, "Namespaced"),
    ):
        crd = by_plural[str(selector.any_name)]
        assert crd["spec"]["scope"] == scope
        assert (crd["spec"]["group"], crd["spec"]["versions"][0]["name"]) == (
            selector.group,
            selector.version,
        )
        # kopf keeps each peer's keep-alive under status; without this the API server would prune it.
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True
